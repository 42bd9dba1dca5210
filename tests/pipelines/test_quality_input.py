"""The input gate quarantines exactly the rows that break a rule, and stops bad batches."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pandas as pd
import pytest

from pipelines.quality import InputRule, QualityError, validate_input
from pipelines.quality.input_suite import CODE_SETS, MAX_LENGTHS, REQUIRED
from schemas import codes
from schemas.records import Child, Guardian, Program, Site
from tests.pipelines.quality_frames import RUN_DATE, clean_extract

D = dt.date
Mutation = Callable[[pd.DataFrame], None]


def _set(row: int, **values: object) -> Mutation:
    def mutate(frame: pd.DataFrame) -> None:
        for column, value in values.items():
            frame.at[row, column] = value

    return mutate


def _quarantined(frame: pd.DataFrame, **kwargs: object) -> set[tuple[int, str, str]]:
    result = validate_input(frame, RUN_DATE, max_failure_share=1.0, **kwargs)
    q = result.quarantined
    return set(zip(q["child_id"], q["rule"], q["field"], strict=True))


def _id(frame: pd.DataFrame, row: int) -> int:
    return int(frame.at[row, "child_id"])


def test_when_extract_is_clean_then_every_row_passes() -> None:
    frame = clean_extract(20)
    result = validate_input(frame, RUN_DATE)
    assert not result.stopped
    assert result.quarantined.empty
    assert list(result.quarantined.columns) == [
        "child_id",
        "program_code",
        "child_local_id",
        "field",
        "rule",
        "message",
    ]
    pd.testing.assert_frame_equal(result.passed, frame)
    assert result.report["success"] and result.report["passed_rows"] == 20


R = InputRule
CASES: dict[str, tuple[Mutation, set[tuple[int, str, str]]]] = {
    "future_birth_date": (
        _set(3, birth_date=D(2027, 1, 5), entry_date=D(2027, 2, 1)),
        {(3, R.BIRTH_DATE_FUTURE, "birth_date")},
    ),
    "child_six_on_run_date": (
        _set(3, birth_date=D(2020, 11, 27)),
        {(3, R.BIRTH_DATE_OVER_AGE, "birth_date")},
    ),
    "birth_before_1900": (
        _set(3, birth_date=D(1899, 12, 31)),
        {(3, R.BIRTH_DATE_OVER_AGE, "birth_date"), (3, R.BIRTH_DATE_BEFORE_1900, "birth_date")},
    ),
    "typo_year_0201_birth": (
        _set(3, birth_date=D(201, 3, 4)),
        {(3, R.BIRTH_DATE_OVER_AGE, "birth_date"), (3, R.BIRTH_DATE_BEFORE_1900, "birth_date")},
    ),
    "birth_after_entry": (
        _set(3, birth_date=D(2023, 5, 1), entry_date=D(2023, 4, 30), exit_date=None),
        {(3, R.BIRTH_AFTER_ENTRY, "birth_date")},
    ),
    "exit_before_entry": (
        _set(4, exit_date=D(2020, 1, 1)),
        {(4, R.EXIT_BEFORE_ENTRY, "exit_date")},
    ),
    "home_language_spelled_out": (
        _set(5, home_language="english"),
        {(5, R.BAD_FORMAT, "home_language")},
    ),
    "home_language_two_letters": (
        _set(5, home_language="en"),
        {(5, R.BAD_FORMAT, "home_language")},
    ),
    "first_name_too_long": (
        _set(6, first_name="A" * 76),
        {(6, R.TOO_LONG, "first_name")},
    ),
    "address_state_too_long": (
        _set(6, address_state="VTX"),
        {(6, R.TOO_LONG, "address_state")},
    ),
    "duplicate_local_id_in_program": (
        _set(7, child_local_id="L00002"),
        {(2, R.DUPLICATE_ID, "child_local_id"), (7, R.DUPLICATE_ID, "child_local_id")},
    ),
    "several_rules_on_several_rows": (
        lambda f: (_set(1, sex="x")(f), _set(9, exit_date=D(2000, 1, 1), race=None)(f)),
        {(1, R.UNKNOWN_CODE, "sex"), (9, R.EXIT_BEFORE_ENTRY, "exit_date")},
    ),
}
for _name in REQUIRED:
    CASES[f"missing_{_name}"] = (_set(8, **{_name: None}), {(8, R.MISSING_REQUIRED, _name)})
for _name in CODE_SETS:
    CASES[f"unknown_{_name}"] = (_set(2, **{_name: "bogus"}), {(2, R.UNKNOWN_CODE, _name)})


BLOCK = 20
FIRST_ID = 1000  # clean_extract's first child_id


@pytest.fixture(scope="module")
def all_cases() -> tuple[pd.DataFrame, set[tuple[int, str, str]]]:
    """Every case in one batch (one program per case, child ids offset), validated once."""
    blocks = []
    for n, (mutate, _) in enumerate(CASES.values()):
        block = clean_extract(BLOCK, program_code=f"P-{n:03d}")
        mutate(block)
        block["child_id"] = block["child_id"] + n * 1000
        blocks.append(block)
    frame = pd.concat(blocks, ignore_index=True)
    return frame, _quarantined(frame)


@pytest.mark.parametrize("case", list(CASES))
def test_when_row_breaks_rule_then_exactly_that_row_is_quarantined_for_it(
    case: str, all_cases: tuple[pd.DataFrame, set[tuple[int, str, str]]]
) -> None:
    _, found = all_cases
    offset = FIRST_ID + list(CASES).index(case) * 1000
    mine = {(c, rule, f) for c, rule, f in found if offset <= c < offset + BLOCK}
    _, expected = CASES[case]
    assert mine == {(offset + row, str(rule), field) for row, rule, field in expected}


def test_passed_rows_are_exactly_the_rows_never_quarantined(
    all_cases: tuple[pd.DataFrame, set[tuple[int, str, str]]],
) -> None:
    frame, found = all_cases
    result = validate_input(frame, RUN_DATE, max_failure_share=1.0)
    bad = {c for c, _, _ in found}
    assert set(result.passed["child_id"]) == set(frame["child_id"]) - bad
    assert result.report["quarantined_rows"] == len(bad)


BLANKS = {
    "spaces": ("first_name", "   "),
    "empty": ("last_name", ""),
    "tab": ("child_local_id", " \t"),
}
BOUNDARIES: dict[str, Mutation] = {
    "one_day_short_of_six": _set(3, birth_date=D(2020, 11, 28)),
    "birth_on_entry_day": _set(
        3, entry_date=D(2023, 1, 1), birth_date=D(2023, 1, 1), exit_date=None
    ),
    "exit_on_entry_day": _set(4, exit_date=D(2023, 1, 2), entry_date=D(2023, 1, 2)),
    "upper_case_language": _set(5, home_language="SPA"),
    "name_at_max_length": _set(6, first_name="A" * 75),
    "optional_codes_missing": _set(
        7, race=None, ethnicity=None, exit_reason=None, income_band=None
    ),
    "enum_members_as_values": _set(8, sex=codes.Sex.FEMALE, race=codes.Race.WHITE),
    "padded_code": _set(9, sex=" male "),
}


def test_when_required_text_is_blank_then_it_counts_as_missing() -> None:
    frame = clean_extract(10)
    for row, (column, value) in enumerate(BLANKS.values()):
        frame.at[row, column] = value
    expected = {
        (_id(frame, row), "missing_required", column)
        for row, (column, _) in enumerate(BLANKS.values())
    }
    assert _quarantined(frame) == expected


def test_when_rows_sit_on_a_boundary_then_they_pass() -> None:
    frame = clean_extract(10)
    for mutate in BOUNDARIES.values():
        mutate(frame)
    assert _quarantined(frame) == set()


def test_when_same_local_id_in_two_programs_then_not_a_duplicate() -> None:
    frame = pd.concat(
        [clean_extract(5), clean_extract(5, program_code="MO-HS-03")], ignore_index=True
    )
    frame["child_id"] = range(len(frame))
    assert _quarantined(frame) == set()


def test_when_dates_are_datetime64_then_rules_still_apply() -> None:
    frame = clean_extract(10)
    frame.at[2, "exit_date"] = D(2000, 1, 1)
    for column in ("birth_date", "entry_date", "exit_date"):
        frame[column] = pd.to_datetime(frame[column])
    assert _quarantined(frame) == {(_id(frame, 2), "exit_before_entry", "exit_date")}


def test_quarantine_names_child_by_program_and_local_id_and_message_has_no_value() -> None:
    frame = clean_extract(10)
    frame.at[3, "sex"] = "zebra-stripes"
    frame.at[4, "first_name"] = "Bartholomew" * 8
    result = validate_input(frame, RUN_DATE, max_failure_share=1.0)
    rows = result.quarantined.set_index("child_id")
    assert rows.loc[_id(frame, 3), "program_code"] == "VT-HS-01"
    assert rows.loc[_id(frame, 3), "child_local_id"] == "L00003"
    messages = " ".join(result.quarantined["message"])
    assert "zebra" not in messages and "Bartholomew" not in messages
    assert rows.loc[_id(frame, 4), "message"] == "first_name is longer than 75 characters"


@pytest.mark.parametrize(
    ("bad_rows", "max_share", "stopped"),
    [
        (0, 0.05, False),
        (1, 0.05, False),  # 1 of 20 = 5%: at the limit, not above it
        (2, 0.05, True),
        (2, 0.10, False),
        (1, 0.0, True),
    ],
    ids=["clean", "at_limit", "above_limit", "raised_limit", "zero_tolerance"],
)
def test_when_failing_share_exceeds_limit_then_batch_stops(
    bad_rows: int, max_share: float, stopped: bool
) -> None:
    frame = clean_extract(20)
    for row in range(bad_rows):
        frame.at[row, "sex"] = "unknown-code"
    result = validate_input(frame, RUN_DATE, max_failure_share=max_share)
    assert result.stopped is stopped
    assert len(result.quarantined) == bad_rows
    assert result.report["stopped"] is stopped
    assert len(result.passed) == (0 if stopped else 20 - bad_rows)


def test_one_child_failing_two_rules_counts_once_toward_the_share() -> None:
    frame = clean_extract(20)
    frame.at[0, "sex"] = "x"
    frame.at[0, "race"] = "x"
    result = validate_input(frame, RUN_DATE, max_failure_share=0.05)
    assert len(result.quarantined) == 2
    assert result.report["quarantined_rows"] == 1
    assert not result.stopped


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda f: f.pop("race"), "lacks columns ['race']"),
        (lambda f: f.__setitem__("child_id", 7), "child_id is missing or not unique"),
        (lambda f: f.__setitem__("entry_date", "Sept 2027 (private note)"), "not dates"),
    ],
    ids=["missing_catalog_column", "repeated_child_id", "text_in_date_column"],
)
def test_when_extract_cannot_be_validated_then_quality_error_without_values(
    mutate: Mutation, problem: str
) -> None:
    frame = clean_extract(5)
    mutate(frame)
    with pytest.raises(QualityError, match=problem.replace("[", r"\[").replace("]", r"\]")) as e:
        validate_input(frame, RUN_DATE)
    assert "private note" not in str(e.value)


def test_when_extract_is_empty_then_nothing_is_quarantined_or_stopped() -> None:
    result = validate_input(clean_extract(3).iloc[0:0], RUN_DATE)
    assert not result.stopped and result.passed.empty and result.quarantined.empty


def test_max_lengths_match_the_database_columns() -> None:
    columns = {
        "program_code": Program.code,
        "child_local_id": Child.local_id,
        "site_code": Site.code,
        "guardian_first_name": Guardian.first_name,
        "guardian_last_name": Guardian.last_name,
        "guardian_phone": Guardian.phone,
        "guardian_email": Guardian.email,
    }
    for name, length in MAX_LENGTHS.items():
        column = columns.get(name) or getattr(Child, name)
        assert column.type.length == length, name
