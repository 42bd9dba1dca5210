"""Property: the input gate's five date rules, screened as one expectation (then rule by rule
only when it fails), quarantine exactly what a per-row oracle finds, at every date boundary.

The oracle is written from the rules in the gate's documentation and imports nothing of the
gate (run date 2026-11-27):

- ``birth_date_future``: a birth date after the run date;
- ``birth_date_over_age``: a birth date on or before 2020-11-27 (six or older on the run date);
- ``birth_date_before_1900``: a birth date before 1900-01-01;
- ``birth_after_entry``: birth and entry date present, birth after entry (field birth_date);
- ``exit_before_entry``: exit and entry date present, exit before entry (field exit_date).

Dates are drawn on and one day either side of each boundary, missing, or far out of range.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.quality import validate_input
from tests.pipelines.quality_frames import RUN_DATE, clean_extract

D = dt.date
SIXTH_BIRTHDAY = D(2020, 11, 27)
DAY = dt.timedelta(days=1)
BOUNDARIES = [RUN_DATE, SIXTH_BIRTHDAY, D(1900, 1, 1), D(2023, 1, 1), D(2024, 6, 30)]
DATES = [b + k * DAY for b in BOUNDARIES for k in (-1, 0, 1)] + [D(201, 3, 4), D(9999, 12, 31)]


def oracle(frame: pd.DataFrame) -> dict[tuple[str, str], set[int]]:
    """(rule, field) -> the child ids that break it."""
    found: dict[tuple[str, str], set[int]] = {}

    def add(rule: str, field: str, child: int) -> None:
        found.setdefault((rule, field), set()).add(child)

    for row in frame.to_dict("records"):
        child, born, entry, left = (
            int(row["child_id"]),
            row["birth_date"],
            row["entry_date"],
            row["exit_date"],
        )
        if born is not None:
            if born > RUN_DATE:
                add("birth_date_future", "birth_date", child)
            if born <= SIXTH_BIRTHDAY:
                add("birth_date_over_age", "birth_date", child)
            if born < D(1900, 1, 1):
                add("birth_date_before_1900", "birth_date", child)
            if entry is not None and born > entry:
                add("birth_after_entry", "birth_date", child)
        if entry is not None and left is not None and left < entry:
            add("exit_before_entry", "exit_date", child)
    return found


@st.composite
def extracts(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 6))
    frame = clean_extract(n)
    for column in ("birth_date", "entry_date", "exit_date"):
        frame[column] = frame[column].astype(object)
    for _ in range(draw(st.integers(0, 6))):
        row = draw(st.integers(0, n - 1))
        column = draw(st.sampled_from(["birth_date", "entry_date", "exit_date"]))
        value: Any = draw(st.one_of(st.none(), st.sampled_from(DATES)))
        frame.at[row, column] = value
        if value is None and column == "entry_date":
            frame.at[row, "entry_date"] = D(2023, 1, 1)  # missing entry: checked elsewhere
        if value is None and column == "birth_date":
            frame.at[row, "birth_date"] = D(2022, 2, 2)  # missing birth: checked elsewhere
    return frame


def _found(frame: pd.DataFrame) -> tuple[dict[tuple[str, str], set[int]], list[dict[str, Any]]]:
    result = validate_input(frame, RUN_DATE, max_failure_share=1.0)
    q = result.quarantined
    got: dict[tuple[str, str], set[int]] = {}
    for child, rule, name in zip(q["child_id"], q["rule"], q["field"], strict=True):
        got.setdefault((rule, name), set()).add(int(child))
    return got, result.report["expectations"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=extracts())
def test_combined_date_screen_quarantines_exactly_what_the_oracle_finds(
    frame: pd.DataFrame,
) -> None:
    expected = oracle(frame)
    got, rows = _found(frame)
    assert got == expected
    for row in rows:
        bad = expected.get((row["name"], row["column"]), set())
        assert row["success"] == (not bad)
        assert row["unexpected_count"] == (len(bad) if bad else None)


CASES = {
    "born_on_run_date": ({"birth_date": RUN_DATE, "entry_date": RUN_DATE}, set()),
    "born_day_after_run_date": (
        {"birth_date": RUN_DATE + DAY, "entry_date": RUN_DATE + DAY},
        {"birth_date_future"},
    ),
    "six_on_run_date": ({"birth_date": SIXTH_BIRTHDAY}, {"birth_date_over_age"}),
    "six_tomorrow": ({"birth_date": SIXTH_BIRTHDAY + DAY}, set()),
    "entry_day_before_birth": (
        {"birth_date": D(2023, 1, 2), "entry_date": D(2023, 1, 1), "exit_date": None},
        {"birth_after_entry"},
    ),
    "entry_on_birth_day": (
        {"birth_date": D(2023, 1, 1), "entry_date": D(2023, 1, 1), "exit_date": None},
        set(),
    ),
    "exit_day_before_entry": (
        {"entry_date": D(2024, 6, 30), "exit_date": D(2024, 6, 29)},
        {"exit_before_entry"},
    ),
    "exit_on_entry_day": ({"entry_date": D(2024, 6, 30), "exit_date": D(2024, 6, 30)}, set()),
}


@pytest.mark.parametrize("change, rules", CASES.values(), ids=CASES.keys())
def test_date_boundaries_fail_exactly_their_rule_with_its_own_message(
    change: dict[str, Any], rules: set[str]
) -> None:
    frame = clean_extract(4)
    for column in ("birth_date", "entry_date", "exit_date"):
        frame[column] = frame[column].astype(object)
    for column, value in change.items():
        frame.at[2, column] = value
    result = validate_input(frame, RUN_DATE, max_failure_share=1.0)
    q = result.quarantined
    assert set(q["rule"]) == rules
    assert set(q["child_id"]) == ({int(frame.at[2, "child_id"])} if rules else set())
    for message in q["message"]:  # a rule's own message, naming no value
        assert "2023" not in message and "2024" not in message and "2026" not in message
    assert len(set(q["message"])) == len(rules)
