"""Property: the input gate's combined screen (one expectation per rule family, then column by
column only for a family that failed) quarantines exactly what a per-row oracle finds.

The oracle is written from the rules in the gate's documentation and imports nothing of the
gate (code sets come from ``schemas.codes``, lengths from the database columns):

- ``missing_required``: program_code, child_local_id, first_name, last_name, birth_date, sex
  or entry_date is missing or blank text (required text is read stripped for every rule);
- ``unknown_code``: a present code field whose value is not in its code set;
- ``too_long``: a present text field whose text is longer than its database column.

Every cell is drawn clean, missing, blank, an unknown code, a wrong type, or a text exactly at
or one past its column's length; text columns are sometimes Arrow strings, sometimes objects.
The report lists every rule once per column, with a count only where one was taken.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.quality import validate_input
from schemas import codes
from schemas.records import Child, Guardian, Program, Site
from tests.pipelines.quality_frames import RUN_DATE, clean_extract

REQUIRED = ["program_code", "child_local_id", "first_name", "last_name", "birth_date", "sex",
            "entry_date"]  # fmt: skip
CODES: dict[str, type[StrEnum]] = {
    "sex": codes.Sex,
    "race": codes.Race,
    "ethnicity": codes.Ethnicity,
    "program_option": codes.ProgramOption,
    "eligibility_category": codes.EligibilityCategory,
    "exit_reason": codes.ExitReason,
    "income_band": codes.IncomeBand,
    "program_type": codes.ProgramType,
    "guardian_relationship": codes.Relationship,
}
_OWN = {
    "program_code": Program.code,
    "child_local_id": Child.local_id,
    "site_code": Site.code,
    "guardian_first_name": Guardian.first_name,
    "guardian_last_name": Guardian.last_name,
    "guardian_phone": Guardian.phone,
    "guardian_email": Guardian.email,
}
TEXT = ["program_code", "child_local_id", "state_student_id", "first_name", "middle_name",
        "last_name", "address_street", "address_city", "address_state", "address_zip",
        "guardian_first_name", "guardian_last_name", "guardian_phone", "guardian_email",
        "site_code"]  # fmt: skip
LENGTHS = {name: (_OWN.get(name) or getattr(Child, name)).type.length for name in TEXT}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def oracle(frame: pd.DataFrame) -> dict[tuple[str, str], set[int]]:
    """(rule, field) -> the child ids that break it."""
    found: dict[tuple[str, str], set[int]] = {}
    for row in frame.to_dict("records"):
        child = int(row["child_id"])
        for name in REQUIRED:  # required text is read stripped: blank text is missing
            value = row[name]
            if isinstance(value, str):
                row[name] = value = value.strip() or None
            if _missing(value):
                found.setdefault(("missing_required", name), set()).add(child)
        for name, code_set in CODES.items():
            value = row[name]
            if not _missing(value) and value not in {c.value for c in code_set}:
                found.setdefault(("unknown_code", name), set()).add(child)
        for name, length in LENGTHS.items():
            value = row[name]
            if not _missing(value) and len(str(value)) > length:
                found.setdefault(("too_long", name), set()).add(child)
    return found


@st.composite
def extracts(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 6))
    frame = clean_extract(n).astype({name: object for name in TEXT + list(CODES)})
    for _ in range(draw(st.integers(0, 8))):
        row = draw(st.integers(0, n - 1))
        name = draw(st.sampled_from(sorted({*REQUIRED, *CODES, *TEXT} - {"birth_date"})))
        kind = draw(st.sampled_from(["none", "blank", "bogus", "number", "at", "past"]))
        if name == "entry_date" and kind != "none":
            continue  # the date rules are checked one by one, elsewhere
        length = LENGTHS.get(name, 12)
        value: Any = {
            "none": None,
            "blank": draw(st.sampled_from(["", "  ", "\t"])),
            "bogus": draw(st.sampled_from(["bogus", "Female", "WHITE", " male"])),
            "number": draw(st.sampled_from([3, 12345678901])),
            "at": "x" * length,
            "past": "é" * (length + 1),
        }[kind]
        frame.at[row, name] = value
    if draw(st.booleans()):  # Arrow strings where every value is text or missing
        for name in TEXT + list(CODES):
            values = frame[name].dropna()
            if all(isinstance(v, str) for v in values):
                frame[name] = frame[name].astype("str")
    return frame


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=extracts())
def test_combined_screen_quarantines_exactly_what_the_oracle_finds(frame: pd.DataFrame) -> None:
    expected = oracle(frame)
    result = validate_input(frame, RUN_DATE, max_failure_share=1.0)
    q = result.quarantined
    got: dict[tuple[str, str], set[int]] = {}
    for child, rule, name in zip(q["child_id"], q["rule"], q["field"], strict=True):
        got.setdefault((rule, name), set()).add(int(child))
    assert got == expected

    rows = result.report["expectations"]
    assert all(row["column"] is not None for row in rows)
    assert len({(row["name"], row["column"]) for row in rows}) == len(rows)
    for row in rows:
        bad = expected.get((row["name"], row["column"]), set())
        assert row["success"] == (not bad)
        assert row["unexpected_count"] == (len(bad) if bad else None)
