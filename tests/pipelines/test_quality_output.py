"""The output privacy gate: exact columns, pseudonyms, no PII-looking values, no small cells."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pandas as pd
import pytest

from pipelines.quality import validate_output
from privacy.transforms import PSEUDONYM_PATTERN

COLUMNS = ["student_id", "state_student_id", "birth_month", "sex", "site_code", "entry_date"]
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
NAMES = ["Marisol", "Quenneville", "Thaddeus", "Abernathy"]


def clean_batch(rows: int = 12) -> pd.DataFrame:
    """A record-level outgoing batch that passes every output rule."""
    return pd.DataFrame(
        {
            "student_id": [f"vtaoe2026-ABCDEFGH234567{B32[i]}{B32[-i]}" for i in range(rows)],
            "state_student_id": [f"{1000000000 + i}" for i in range(rows)],
            "birth_month": ["2022-03"] * rows,
            "sex": ["female", "male"] * (rows // 2),
            "site_code": ["SITE-1"] * rows,
            "entry_date": [dt.date(2024, 9, 3)] * rows,
        }
    )


def check(frame: pd.DataFrame, **kwargs: object):  # type: ignore[no-untyped-def]
    options: dict[str, object] = {
        "expected_columns": COLUMNS,
        "pseudonym_columns": ["student_id"],
        "pseudonym_pattern": PSEUDONYM_PATTERN,
        "forbidden_values": NAMES,
        "numeric_id_columns": ["state_student_id"],
    }
    options.update(kwargs)
    return validate_output(frame, **options)  # type: ignore[arg-type]


def test_clean_batch_passes_and_its_pseudonyms_match_the_contract_pattern() -> None:
    frame = clean_batch()
    assert frame["student_id"].str.fullmatch(PSEUDONYM_PATTERN.strip("^$")).all()
    result = check(frame)
    assert result.ok, result.failures
    assert result.failures == []
    assert all(item["success"] for item in result.report["expectations"])


Mutation = Callable[[pd.DataFrame], pd.DataFrame]


def _cell(row: int, column: str, value: object) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame[column] = frame[column].astype(object)
        frame.at[row, column] = value
        return frame

    return mutate


CASES: dict[str, tuple[Mutation, str]] = {
    "extra_column": (
        lambda f: f.assign(first_name="x"),
        "columns_match: expected " + str(COLUMNS) + "; unexpected ['first_name']",
    ),
    "missing_column": (
        lambda f: f.drop(columns=["sex"]),
        "columns_match: expected " + str(COLUMNS) + "; missing ['sex']",
    ),
    "wrong_order": (
        lambda f: f[[COLUMNS[1], COLUMNS[0], *COLUMNS[2:]]],
        "columns_match: expected " + str(COLUMNS) + "; order differs",
    ),
    "malformed_pseudonym": (
        _cell(3, "student_id", "L00003"),
        "pseudonym_format on column student_id: 1 of 12 rows",
    ),
    "dashed_ssn_in_code_column": (
        _cell(2, "site_code", "123-45-6789"),
        "ssn_like on column site_code: 1 of 12 rows",
    ),
    "bare_ssn_in_code_column": (
        _cell(2, "site_code", "123456789"),
        "ssn_like on column site_code: 1 of 12 rows",
    ),
    "dashed_ssn_in_numeric_id_column": (
        _cell(2, "state_student_id", "123-45-6789"),
        "ssn_like on column state_student_id: 1 of 12 rows",
    ),
    "phone": (
        _cell(5, "site_code", "(802) 555-0100"),
        "phone_like on column site_code: 1 of 12 rows",
    ),
    "email": (
        _cell(6, "birth_month", "pat.doe@example.org"),
        "email_like on column birth_month: 1 of 12 rows",
    ),
    "source_name_in_code_column": (
        lambda f: _cell(7, "sex", "Quenneville")(_cell(8, "sex", " Marisol ")(f)),
        "source_name on column sex: 2 of 12 rows",
    ),
}


@pytest.mark.parametrize(("mutate", "failure"), list(CASES.values()), ids=list(CASES))
def test_when_batch_breaks_rule_then_not_ok_and_failure_names_rule_column_count(
    mutate: Mutation, failure: str
) -> None:
    result = check(mutate(clean_batch()))
    assert not result.ok
    assert result.failures == [failure]


FLAGGED = {
    "ssn_dashed": ("123-45-6789", "ssn_like"),
    "ssn_spaced": ("123 45 6789", "ssn_like"),
    "ssn_bare": ("123456789", "ssn_like"),
    "ssn_in_text": ("ssn 123-45-6789 on file", "ssn_like"),
    "phone_dashed": ("802-555-0100", "phone_like"),
    "phone_parens": ("(802) 555-0100", "phone_like"),
    "phone_dots": ("802.555.0100", "phone_like"),
    "phone_country": ("+1 802 555 0100", "phone_like"),
    "phone_bare": ("8025550100", "phone_like"),
    "email_plain": ("pat@example.org", "email_like"),
    "email_subdomain": ("Pat.Doe+x@mail.k12.vt.us", "email_like"),
}
NOT_FLAGGED = {
    "iso_date": "2024-01-15",
    "iso_month": "2024-01",
    "iso_datetime": "2024-01-15 10:30:00",
    "zip_plus_4": "05401-1234",
    "zip": "05401",
    "program_code": "VT-HS-01",
    "pseudonym": "vtaoe2026-ABCDEFGH23456723",
    "pseudonym_digits_after_dash": "k1-234567234567ABCD",
    "local_id": "C00001234",
    "twelve_digits": "123456789012",
    "decimal": "123.45",
    "age_bucket": "36-48",
}


def test_pii_patterns_flag_each_shape_in_its_own_rule() -> None:
    frame = pd.DataFrame({name: ["clean", value] for name, (value, _) in FLAGGED.items()})
    result = validate_output(frame, expected_columns=list(frame.columns))
    assert sorted(result.failures) == sorted(
        f"{rule} on column {name}: 1 of 2 rows" for name, (_, rule) in FLAGGED.items()
    )


def test_pii_patterns_leave_dates_ids_zips_and_pseudonyms_alone() -> None:
    frame = pd.DataFrame({name: [value] for name, value in NOT_FLAGGED.items()})
    frame["date_object"] = [dt.date(2024, 1, 15)]
    frame["count"] = [123]
    result = validate_output(frame, expected_columns=list(frame.columns))
    assert result.ok, result.failures


def test_bare_digits_are_allowed_only_in_declared_numeric_id_columns() -> None:
    frame = pd.DataFrame({"sasid": ["123456789", "8025550100"], "other": ["123456789", "x"]})
    result = validate_output(
        frame, expected_columns=["sasid", "other"], numeric_id_columns=["sasid"]
    )
    assert result.failures == ["ssn_like on column other: 1 of 2 rows"]


def test_ssn_in_an_integer_column_is_flagged() -> None:
    frame = pd.DataFrame({"n": [12, 123456789]})
    result = validate_output(frame, expected_columns=["n"])
    assert result.failures == ["ssn_like on column n: 1 of 2 rows"]


def test_source_name_is_allowed_in_declared_name_columns_only() -> None:
    frame = pd.DataFrame({"first_name": ["Marisol", "Thaddeus"], "note": ["Thaddeus", "ok"]})
    result = validate_output(
        frame,
        expected_columns=["first_name", "note"],
        name_columns=["first_name"],
        forbidden_values=NAMES,
    )
    assert result.failures == ["source_name on column note: 1 of 2 rows"]


def test_code_values_equal_to_a_capitalised_surname_are_not_names() -> None:
    frame = pd.DataFrame({"race": ["white", "black"]})
    result = validate_output(frame, expected_columns=["race"], forbidden_values=["White", "Black"])
    assert result.ok, result.failures


@pytest.mark.parametrize(
    ("counts", "small", "negative"),
    [
        ([0, 10, 250, None], 0, 0),
        ([0, 9, 10, None], 1, 0),
        ([1, 2, 3, 40], 3, 0),
        ([-1, 10, 12, 15], 0, 1),
    ],
    ids=["zeros_and_suppressed_pass", "nine_fails", "several_small", "negative_fails"],
)
def test_aggregate_count_cells_under_threshold_fail_except_zero_and_suppressed(
    counts: list[int | None], small: int, negative: int
) -> None:
    frame = pd.DataFrame({"site": ["a", "b", "c", "d"], "n": pd.array(counts, dtype="Int64")})
    result = validate_output(
        frame, expected_columns=["site", "n"], aggregate_count_column="n", min_cell_size=10
    )
    expected = []
    if small:
        expected.append(f"small_cell on column n: {small} of 4 rows")
    if negative:
        expected.append(f"negative_count on column n: {negative} of 4 rows")
    assert result.failures == expected
    assert result.ok is (not expected)


def test_aggregate_count_column_that_is_not_numeric_fails() -> None:
    frame = pd.DataFrame({"site": ["a"], "n": ["3"]})
    result = validate_output(frame, expected_columns=["site", "n"], aggregate_count_column="n")
    assert result.failures == ["count_numeric on column n: not a numeric column"]


def test_duplicate_column_names_fail() -> None:
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    result = validate_output(frame, expected_columns=["a", "a"])
    assert not result.ok and result.failures == ["columns_match: duplicate column names"]


def test_pseudonym_columns_without_pattern_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="pseudonym_pattern"):
        validate_output(clean_batch(), expected_columns=COLUMNS, pseudonym_columns=["student_id"])


def test_compiled_pseudonym_pattern_is_accepted() -> None:
    result = check(clean_batch(), pseudonym_pattern=re.compile(PSEUDONYM_PATTERN))
    assert result.ok, result.failures
