"""A full date stops in a column the agreement coarsens but does not cut to the month.

The rule (``pipelines/quality/output_suite.py``, ``full_value``): a year, an age in months, a
band or a ZIP3 cell holds no full date, whoever's, in any common form. Here the forms beyond
the numeric and English ones of ``test_output_gate_month_cut.py``: ISO ordinal (``2021-319``,
``2021319``) and week dates (``2021-W46-1``, ``2021W461``), Spanish and French month names
(``15 de noviembre de 2021``, ``15 nov. 2021``, ``1er novembre 2021``), a compact datetime
(``20211115000000``) and, where the column could never rightly hold a five-digit whole number
(a year, an age in months, a ZIP3; not a band, whose label may be any number), Excel's day
number (``44515``). A text that only looks like one of them but names no day of the calendar
(day 366 of 2021, week 53 of 2021, 29 February 2023) is no full date, though still no cell
the column writes for the row child (``value_mismatch``, ``test_output_gate_exact.py``).

The table runs a real agreement (``uvm-crc-study`` with its dates sent as a year, an age in
months and a band, and a count banded), the real transforms and the gate. The property checks
the gate against an oracle that imports nothing of the gate: it knows which cells it wrote
as dates.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privacy.agreements import load_agreement
from privacy.transforms import compile_plan
from tests.pipelines.gate_world import (
    AGREEMENTS,
    RECORDS,
    Keys,
    StubPreparation,
    children,
    gate,
    record_frames,
)
from tests.pipelines.test_output_gate_month_cut import FORMS, LEAKS, write

BORN = [
    dt.date(2022, 1, 1),  # Jan 1: day 001, ISO week 2021-W52-6
    dt.date(2021, 12, 31),  # Dec 31 of a common year: day 365
    dt.date(2020, 2, 29),  # Feb 29 of a leap year: day 060
    dt.date(2020, 12, 31),  # day 366, ISO week 2020-W53-4
    dt.date(2021, 1, 3),  # ISO week 2020-W53-7: the last day of a week 53
    dt.date(2021, 11, 15),
]
N = len(BORN)
YEAR, AGE, BAND, ZIP3, DAYS = (
    "birth_date",
    "entry_date_months",
    "exit_date_months_band",
    "address_zip",
    "days_present",
)
SERIAL_FREE = (YEAR, AGE, ZIP3)
"""The coarsened columns that can never rightly hold a five-digit whole number."""
BANDS = (BAND, DAYS)
NEW = list(FORMS)
"""Every new form; Excel's day number only where the column cannot hold such a number."""


def _agreement(tmp_path: Path) -> Any:
    text = (AGREEMENTS / "uvm-crc-study.yaml").read_text(encoding="utf-8")
    for old, new in (
        ("birth_date: month ", "birth_date: year "),
        ("entry_date: month", "entry_date: age_months"),
        ("exit_date: month", "exit_date: {bucket: {bins: [0, 12, 24, 36]}}"),
        ("days_present: keep", "days_present: {bucket: {bins: [0, 100, 44515, 44516]}}"),
    ):
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "uvm-crc-study.yaml"
    path.write_text(text, encoding="utf-8")
    return load_agreement(path)


def _world(tmp_path: Path, born: list[dt.date]) -> StubPreparation:
    agreement = _agreement(tmp_path)
    plan = compile_plan(agreement, Keys(), recipient_code=agreement.recipient)
    people = [{"birth_date": b, "exit_date": dt.date(2025, 1, 1)} for b in born]
    people[0]["days_present"] = 44515  # in the band labelled 44515
    return StubPreparation(agreement, plan, [], children(people))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    p = _world(tmp_path_factory.mktemp("coarse"), BORN)
    frames = record_frames(p)
    frame = frames[RECORDS][0]
    for column in (YEAR, AGE, BAND, ZIP3, DAYS):
        assert column in frame.columns
    assert frame.loc[0, DAYS] == "44515"  # a band's own label, whatever number it is
    assert gate(p, frames) == []  # as the transforms write them, every column leaves
    return p, frames


def _failures(columns: list[str], rows: int, rule: str = "full_value") -> list[str]:
    return sorted(f"{rule} on column {c}: {rows} of {N} rows" for c in columns)


@pytest.mark.parametrize("leak", NEW)
def test_a_full_date_in_a_new_form_stops_whoever_it_belongs_to(world: Any, leak: str) -> None:
    """Each form in every coarsened column at once: each column fails on its own."""
    p, frames = world
    frame = frames[RECORDS][0]
    original = frame.copy()
    columns = [c for c in (*SERIAL_FREE, *BANDS) if leak != "excel_serial" or c not in BANDS]
    others = [BORN[(i + 1) % N] for i in range(N)]  # another child's
    try:
        for dates, rows in ((BORN, N), (others, N), ([None] * (N - 1) + [BORN[0]], 1)):
            for column in columns:
                frame[column] = [write(d, leak) if d is not None else None for d in dates]
            assert sorted(gate(p, frames)) == _failures(columns, rows)
    finally:
        for column in columns:
            frame[column] = original[column]


NOT_DAYS = [  # the shape of a new form, but no day of the calendar
    "2021-366",  # 2021 has 365 days
    "2021366",
    "2021-000",
    "2021-W53-1",  # 2021 has 52 ISO weeks
    "2021W531",
    "2020-W54-1",
    "2021-W46-8",  # a week has 7 days
    "2021-W00-1",
    "29 de febrero de 2023",  # 2023 is no leap year
    "29 febrero 2023",
    "29 févr. 2023",
    "31 de abril de 2021",
    "30 de feb. de 2020",
    "20230229000000",
    "20211115250000",  # hour 25
    "noviembre de 2021",  # a month
    "nov. 2021",
]


def test_a_text_that_names_no_day_is_no_full_date(world: Any) -> None:
    """Every text above in some cell of the coarsened columns: none is a full date (each is
    still not what the column writes for the row child: ``value_mismatch``)."""
    p, frames = world
    frame = frames[RECORDS][0]
    original = frame.copy()
    columns = [*SERIAL_FREE, *BANDS]
    try:
        assert len(columns) * N >= len(NOT_DAYS)
        for at, column in enumerate(columns):
            frame[column] = [
                NOT_DAYS[(row * len(columns) + at) % len(NOT_DAYS)] for row in range(N)
            ]
        assert sorted(gate(p, frames)) == _failures(columns, N, "value_mismatch")
    finally:
        for column in columns:
            frame[column] = original[column]


def test_a_five_digit_number_is_a_day_only_where_the_column_cannot_hold_it(world: Any) -> None:
    """Excel's 44515 is 2021-11-15; a band may be labelled so (bins are any numbers), a year,
    an age in months or a ZIP3 never is. Out of range numbers (past 2099) are not days. What
    is no full date is still no cell the column writes for the row child (``value_mismatch``),
    but the first child's own band ``44515``."""
    p, frames = world
    frame = frames[RECORDS][0]
    original = frame.copy()
    columns = [*SERIAL_FREE, *BANDS]
    try:
        for cell in ("44515", "44515.0", "44515.5", "10000", "73050", "73051", "9999", "100000"):
            for column in columns:
                frame[column] = [cell] * N
            day = cell.split(".")[0]
            dated = len(day) == 5 and day < "73051"
            expected = _failures(list(SERIAL_FREE), N, "full_value" if dated else "value_mismatch")
            expected.append(f"value_mismatch on column {BAND}: {N} of {N} rows")
            own = cell == original.loc[0, DAYS]
            expected.append(f"value_mismatch on column {DAYS}: {N - own} of {N} rows")
            assert sorted(gate(p, frames)) == sorted(expected), cell
    finally:
        for column in columns:
            frame[column] = original[column]


# --- property: the gate against an oracle that knows which cells it wrote as dates --------


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _not_a_day(year: int, kind: str) -> str:
    """A text shaped like a new form that names no day (``year`` is common, 52 weeks)."""
    return {
        "ordinal": f"{year}-366",
        "week": f"{year}-W53-{1 + year % 7}",
        "es": f"29 de febrero de {year}",
        "fr": f"29 févr. {year}",
    }[kind]


COMMON_YEARS = [
    y for y in range(1930, 2100) if not _leap(y) and dt.date(y, 12, 28).isocalendar()[1] == 52
]
DAYS_ = st.dates(dt.date(1930, 1, 1), dt.date(2099, 12, 31)) | st.sampled_from(BORN)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cells=st.lists(
        st.tuples(
            st.sampled_from([*SERIAL_FREE, *BANDS]),
            st.sampled_from(["date", "not_a_day", "legit"]),
            DAYS_,
            st.sampled_from([*LEAKS, *FORMS]),
            st.sampled_from(COMMON_YEARS),
            st.sampled_from(["ordinal", "week", "es", "fr"]),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_coarse_columns_stop_exactly_on_full_dates(world: Any, cells: list[Any]) -> None:
    p, frames = world
    frame = frames[RECORDS][0]
    original = frame.copy()
    expected: dict[str, set[int]] = {}
    mismatch: dict[str, set[int]] = {}  # neither a date nor what the column writes for the row
    try:
        for column in (YEAR, AGE, BAND, ZIP3, DAYS):
            frame[column] = frame[column].astype(object)
        for row, (column, kind, date, leak, year, shape) in enumerate(cells):
            row %= N
            expected.setdefault(column, set()).discard(row)  # a later cell replaces it
            mismatch.setdefault(column, set()).discard(row)
            own = str(original.at[row, column])  # what the transform wrote: nothing else is
            if kind == "date":
                text = write(date, leak)
                if leak != "excel_serial" or column not in BANDS:
                    expected[column].add(row)
                elif text != own:  # a band may be labelled with any number, but its own
                    mismatch[column].add(row)
            elif kind == "not_a_day":
                text = _not_a_day(year, shape)
                mismatch[column].add(row)
            else:
                text = own
            frame.at[row, column] = text
        failures = gate(p, frames)
    finally:
        for column in original.columns:
            frame[column] = original[column]
    found = {}
    for failure in failures:
        hit = re.fullmatch(
            rf"(full_value|value_mismatch) on column (\w+): (\d+) of {N} rows", failure
        )
        assert hit is not None, failure
        found[(hit.group(1), hit.group(2))] = int(hit.group(3))
    wanted = {("full_value", c): len(rows) for c, rows in expected.items() if rows}
    wanted |= {("value_mismatch", c): len(rows) for c, rows in mismatch.items() if rows}
    assert found == wanted
