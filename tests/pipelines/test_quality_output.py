"""The output privacy gate: exact columns, pseudonyms, no PII-looking values, no small cells."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pandas as pd
import pytest

from pipelines.quality import validate_output
from pipelines.quality.mentions import KeyIndex
from pipelines.quality.output_suite import Columns, RowValues
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


def _rows(frame: pd.DataFrame, kept: frozenset[str] = frozenset()) -> RowValues:
    """Each row's own child: a name, a birth date and a guardian (the row's index picks)."""
    n = len(frame)
    values = pd.DataFrame(
        {
            "first_name": [NAMES[i % 2] for i in range(n)],
            "last_name": [NAMES[1 + i % 2 * 2] for i in range(n)],
            "birth_date": [dt.date(2022, 3, 14)] * n,
            "guardian_first_name": ["Rosalind"] * n,
        }
    )
    return RowValues(values, kept, [frozenset()] * n, KeyIndex.of([]))


def test_statements_are_not_searched_for_pii_patterns() -> None:
    frame = pd.DataFrame({"Statement": ["call (802) 555-0100, pat@example.org, 123-45-6789"]})
    columns = Columns(statements=("Statement",))
    result = validate_output(
        frame, expected_columns=["Statement"], columns=columns, rows=_rows(frame)
    )
    assert result.ok, result.failures


def test_pattern_exempt_lifts_only_the_named_shape() -> None:
    frame = pd.DataFrame({"phone": ["802-555-0100", "123-45-6789"]})
    columns = Columns(pattern_exempt={"phone": frozenset({"phone_like"})})
    result = validate_output(frame, expected_columns=["phone"], columns=columns)
    assert result.failures == ["ssn_like on column phone: 1 of 2 rows"]


def test_names_are_compared_with_the_rows_own_child_in_text_columns_only() -> None:
    frame = pd.DataFrame(
        {
            "note": ["Marisol", "marisol", "Rosalind", "ok"],
            "site": ["Marisol", "Quenneville", "Rosalind", "x"],
        }
    )
    columns = Columns(text=("note",))
    result = validate_output(
        frame, expected_columns=["note", "site"], columns=columns, rows=_rows(frame)
    )
    # Row 0 is Marisol's own name, row 1 another child's (not this row's), row 2 the guardian's.
    assert result.failures == ["child_value on column note: 2 of 4 rows"]


def test_a_kept_value_is_not_protected_in_its_row() -> None:
    frame = pd.DataFrame({"note": ["Marisol", "Thaddeus"]})
    columns = Columns(text=("note",))
    result = validate_output(
        frame,
        expected_columns=["note"],
        columns=columns,
        rows=_rows(frame, kept=frozenset({"first_name"})),
    )
    assert result.ok, result.failures


def test_generalized_column_must_not_hold_the_full_value() -> None:
    frame = pd.DataFrame({"birth_month": ["2022-03", "2022-03-14", "03/14/2022", "3/14/2022"]})
    columns = Columns(generalized={"birth_month": "birth_date"})
    result = validate_output(
        frame, expected_columns=["birth_month"], columns=columns, rows=_rows(frame)
    )
    assert result.failures == ["full_value on column birth_month: 3 of 4 rows"]


def test_columns_the_agreement_does_not_send_must_be_empty() -> None:
    frame = pd.DataFrame({"middle": [None, "James", None]})
    result = validate_output(frame, expected_columns=["middle"], columns=Columns(empty=("middle",)))
    assert result.failures == ["not_permitted on column middle: 1 of 3 rows"]


def test_row_wise_rules_without_rows_is_a_caller_error() -> None:
    frame = pd.DataFrame({"note": ["x"]})
    with pytest.raises(ValueError, match="RowValues"):
        validate_output(frame, expected_columns=["note"], columns=Columns(text=("note",)))


def test_a_column_named_like_a_helper_fails_closed() -> None:
    frame = pd.DataFrame({"\x00row:first_name:0": ["x"]})
    result = validate_output(frame, expected_columns=list(frame.columns))
    assert not result.ok


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


def test_a_passed_combined_rule_is_reported_per_column_without_a_count() -> None:
    result = check(clean_batch())
    rows = result.report["expectations"]
    pii = [row["column"] for row in rows if row["name"] == "pii_like"]
    assert len(pii) > 1 and None not in pii  # one expectation ran; each column is listed
    assert len(pii) == len(set(pii))
    assert all(row["unexpected_count"] is None for row in rows if row["name"] == "pii_like")


def test_a_failed_combined_rule_is_reported_by_its_columns_with_their_counts() -> None:
    frame = clean_batch()
    frame["site_code"] = frame["site_code"].astype(object)
    frame.at[2, "site_code"] = "802-555-0142"
    rows = check(frame).report["expectations"]
    pii = {row["column"]: row for row in rows if row["name"] == "pii_like"}
    assert None not in pii
    assert pii["site_code"]["success"] is False and pii["site_code"]["unexpected_count"] == 1
    assert all(row["success"] for column, row in pii.items() if column != "site_code")
