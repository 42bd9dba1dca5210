"""A year, an age in months or a band cell may carry only the row child's own.

The rule (``pipelines/quality/output_suite.py``, ``exact`` columns; ``EXACT`` of
``pipelines/submission/gate.py``): a cell of a column made by the ``year``, ``age_months`` or
``bucket`` transform is empty or exactly what that transform writes for the row child's own
recorded value (on the run date, with the plan's bins). Another child's year, a year-month or
a week in a year column, months and days, a decimal age or an age in days in an age column, the
exact age or another band in a band column: ``value_mismatch``. A full date, or the row child's
exact count in its count's band column, stays ``full_value`` (each bad cell counts once). A
child with no recorded value, or one the transform cannot read, has only the empty cell.

The tables run the real transforms and the gate on API records (years and ages as whole
numbers, bands as text) and on a file layout (the renderer's text), around month ends, Feb 29
births, band edges and run dates; the values the rule gives are written out by hand. The
property runs random births, counts, run dates, bins and cells through the gate, against an
oracle that works the year, the whole months and the band out from the rule and imports
nothing of the transforms or the gate.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privacy.agreements import load_agreement
from privacy.fields import CATALOG
from privacy.transforms import ColumnRule, FieldPlan, get_transform
from schemas.filespec import load_spec
from tests.pipelines.gate_world import (
    AGREEMENTS,
    RECORDS,
    StubPreparation,
    children,
    gate,
    record_frames,
)

YEAR, AGE, BAND, DAYS = "birth_date", "age_months", "age_band", "days_present"
AGE_BINS = [12, 24, 36, 48, 60]
DAY_BINS = [5, 6, 100, 150]
"""Count bands ``5`` (one value: a count of 5 is its band's label), ``6-99``, ``100-149``,
``150+``; a count below 5 has none."""


def plan(age_bins: list[int] = AGE_BINS, day_bins: list[int] = DAY_BINS) -> FieldPlan:
    """The birth date as a year, an age in months and an age band; days present banded."""
    rules = []
    for name, how, params in (
        ("program_code", "keep", {}),
        ("birth_date", "year", {}),
        ("birth_date", "age_months", {}),
        ("birth_date", "bucket", {"bins": age_bins}),
        ("days_present", "bucket", {"bins": day_bins}),
    ):
        transform, field = get_transform(how), CATALOG[name]
        frozen = MappingProxyType(params)
        transform.validate(frozen, field)
        rules.append(ColumnRule(transform.output_column(field, frozen), field, transform, frozen))
    return FieldPlan("exact-cells", "TEST", tuple(rules))


def world(
    run: dt.date, people: list[dict[str, Any]], p_plan: FieldPlan | None = None, specs: Any = ()
) -> tuple[StubPreparation, dict[str, Any]]:
    agreement = load_agreement(AGREEMENTS / "uvm-crc-study.yaml")
    extract = children(people)
    p = StubPreparation(agreement, p_plan or plan(), list(specs), extract, run_date=run)
    return p, record_frames(p)


@dataclass(frozen=True)
class Row:
    """One child of a table: recorded birth date and count, and what the rule gives."""

    born: Any
    year: int | None
    age: int | None
    band: str | None
    count: int | None = 90
    count_band: str | None = "6-99"


D = dt.date
TABLES: dict[dt.date, list[Row]] = {
    D(2026, 11, 27): [
        Row(D(2022, 6, 26), 2022, 53, "48-59", 4, None),  # the day after a month-birthday
        Row(D(2022, 6, 27), 2022, 53, "48-59", 5, "5"),  # of it (a count in a one-value band)
        Row(D(2022, 6, 28), 2022, 52, "48-59", 6, "6-99"),  # the day before it
        Row(D(2020, 2, 29), 2020, 80, "60+", 99, "6-99"),  # Feb 29: the 29th not reached
        Row(D(2022, 1, 31), 2022, 57, "48-59", 100, "100-149"),  # 31st: 30 days, 27th
        Row(D(2022, 11, 27), 2022, 48, "48-59", 149, "100-149"),  # on a band edge
        Row(D(2022, 11, 28), 2022, 47, "36-47", 150, "150+"),  # a day short of it
        Row(D(2025, 11, 27), 2025, 12, "12-23", 0, None),  # the first bin
        Row(D(2025, 11, 28), 2025, 11, None, None, None),  # below it: no band
        Row(D(2026, 11, 27), 2026, 0, None),  # born on the run date
        Row(D(2026, 11, 28), 2026, None, None),  # born after it: no age
        Row(None, None, None, None),  # none recorded
        Row("2022-13-45", None, None, None),  # unreadable
    ],
    D(2026, 2, 28): [  # the last day of a common February
        Row(D(2022, 1, 31), 2022, 49, "48-59"),  # a month from the 31st complete on the 28th
        Row(D(2020, 2, 29), 2020, 72, "60+"),  # Feb 29: a year complete on Feb 28
        Row(D(2022, 2, 28), 2022, 48, "48-59"),
        Row(D(2022, 3, 1), 2022, 47, "36-47"),
        Row(D(2023, 2, 28), 2023, 36, "36-47"),
    ],
    D(2024, 2, 28): [  # a leap February, the 29th to come
        Row(D(2020, 2, 29), 2020, 47, "36-47"),
        Row(D(2022, 1, 31), 2022, 24, "24-35"),
        Row(D(2020, 2, 28), 2020, 48, "48-59"),
    ],
    D(2024, 2, 29): [
        Row(D(2020, 2, 29), 2020, 48, "48-59"),
        Row(D(2022, 1, 31), 2022, 25, "24-35"),
        Row(D(2022, 1, 30), 2022, 25, "24-35"),
    ],
    D(2026, 4, 30): [  # the last day of a 30-day month
        Row(D(2022, 3, 31), 2022, 49, "48-59"),
        Row(D(2022, 1, 30), 2022, 51, "48-59"),
        Row(D(2022, 4, 30), 2022, 48, "48-59"),
        Row(D(2022, 5, 1), 2022, 47, "36-47"),
        Row(D(2021, 5, 1), 2021, 59, "48-59"),
        Row(D(2021, 4, 30), 2021, 60, "60+"),
    ],
}
LABELS = {YEAR: None, AGE: None, BAND: ["12-23", "24-35", "36-47", "48-59", "60+"]}


def _people(rows: list[Row]) -> list[dict[str, Any]]:
    return [{"birth_date": r.born, "days_present": r.count} for r in rows]


def _norm(value: Any) -> str | None:
    if value is None or value is pd.NA:
        return None
    return " ".join(str(value).split()).casefold() or None


def _own(row: Row, column: str) -> Any:
    return {YEAR: row.year, AGE: row.age, BAND: row.band, DAYS: row.count_band}[column]


@pytest.mark.parametrize("run", list(TABLES), ids=str)
def test_the_transforms_write_what_the_rule_gives(run: dt.date) -> None:
    """The table's values are the transforms' (and the batch leaves as they write it)."""
    rows = TABLES[run]
    p, frames = world(run, _people(rows))
    frame = frames[RECORDS][0]
    for column in (YEAR, AGE, BAND, DAYS):
        written = [None if pd.isna(v) else v for v in frame[column].tolist()]
        assert written == [_own(r, column) for r in rows], column
    assert gate(p, frames) == []


Cell = Callable[[Row, Row, dt.date], Any]
"""A cell for a row, from the row, another row and the run date."""
FULL = "full"
"""A cell that is a full date or the row child's exact count: ``full_value`` unless it is
what the column writes for the row."""


def _dated(make: Callable[[dt.date], Any]) -> Cell:
    return lambda r, o, run: make(r.born) if isinstance(r.born, dt.date) else None


def _aged(make: Callable[[int, Row, dt.date], Any]) -> Cell:
    return lambda r, o, run: make(r.age, r, run) if r.age is not None else None


def _next_label(band: str | None) -> str:
    labels = LABELS[BAND]
    assert labels is not None
    return labels[(labels.index(band) + 1) % len(labels)] if band else labels[0]


COMMON: list[tuple[str, Cell, str | None]] = [
    ("own", lambda r, o, run: None, None),  # replaced per column below
    ("empty", lambda r, o, run: None, None),
    ("blank", lambda r, o, run: "  ", None),
    ("full_date", _dated(lambda b: b.isoformat()), FULL),
    ("full_date_us", _dated(lambda b: b.strftime("%m/%d/%Y")), FULL),
    ("zero", lambda r, o, run: "0", None),  # rightful only where the column writes 0
]
CELLS: dict[str, list[tuple[str, Cell, str | None]]] = {
    YEAR: [
        ("own_text", lambda r, o, run: f" {r.year} " if r.year else None, None),
        ("other_childs", lambda r, o, run: o.year, None),
        ("next_year", lambda r, o, run: r.year + 1 if r.year else None, None),
        ("year_month_iso", _dated(lambda b: f"{b.year}-{b.month:02d}"), None),
        ("month_year_us", _dated(lambda b: f"{b.month:02d}/{b.year}"), None),
        ("month_year_short", _dated(lambda b: f"{b.month}/{b.year}"), None),
        ("year_slash_month", _dated(lambda b: f"{b.year}/{b.month:02d}"), None),
        ("month_name_year", _dated(lambda b: b.strftime("%b %Y")), None),
        ("iso_week", _dated(lambda b: "{}-W{:02d}".format(*b.isocalendar()[:2])), None),
    ],
    AGE: [
        ("own_text", lambda r, o, run: str(r.age) if r.age is not None else None, None),
        ("other_childs", lambda r, o, run: o.age, None),
        ("plus_one", _aged(lambda a, r, run: a + 1), None),
        ("minus_one", _aged(lambda a, r, run: a - 1), None),
        ("decimal", _aged(lambda a, r, run: f"{a}.5"), None),
        ("point_zero", _aged(lambda a, r, run: f"{a}.0"), None),
        ("months_and_days", _aged(lambda a, r, run: f"{a}m 3d"), None),
        ("years_and_months", _aged(lambda a, r, run: f"{a // 12}y {a % 12}m"), None),
        ("in_days", _aged(lambda a, r, run: str((run - r.born).days)), None),
        ("in_weeks", _aged(lambda a, r, run: str((run - r.born).days // 7)), None),
        ("in_years", _aged(lambda a, r, run: str(a // 12)), None),
    ],
    BAND: [
        ("other_childs", lambda r, o, run: o.band, None),
        ("exact_age", _aged(lambda a, r, run: str(a)), None),
        ("next_band", lambda r, o, run: _next_label(r.band), None),
        ("band_of_the_year", lambda r, o, run: "24-35", None),
    ],
    DAYS: [
        ("other_childs", lambda r, o, run: o.count_band, None),
        ("exact_count", lambda r, o, run: r.count, FULL),
        ("exact_count_text", lambda r, o, run: str(r.count) if r.count is not None else None, FULL),
        (
            "another_band",
            lambda r, o, run: "100-149" if r.count_band != "100-149" else "6-99",
            None,
        ),
        ("a_one_value_band", lambda r, o, run: "5", None),
    ],
}


def _expected(column: str, cells: list[Any], rows: list[Row], full: bool) -> dict[str, int]:
    """Rule -> rows, from the table's own values (the rule's)."""
    counts = {"full_value": 0, "value_mismatch": 0}
    for cell, row in zip(cells, rows, strict=True):
        text = _norm(cell)
        if text is None or text == _norm(_own(row, column)):
            continue
        exact_count = column == DAYS and text == _norm(row.count)
        counts["full_value" if full or exact_count else "value_mismatch"] += 1
    return counts


@pytest.mark.parametrize("run", list(TABLES), ids=str)
def test_a_cell_is_empty_or_what_the_column_writes_for_the_row_child(run: dt.date) -> None:
    """Every kind of cell of each column in every row (the columns at once: each fails on
    its own)."""
    rows = TABLES[run]
    n = len(rows)
    others = [rows[(i + 1) % n] for i in range(n)]
    p, frames = world(run, _people(rows))
    frame = frames[RECORDS][0]
    original = frame.copy()
    variants = {column: [*COMMON, *CELLS[column]] for column in CELLS}
    try:
        for step in zip_longest(*variants.values()):
            wanted: list[str] = []
            names = []
            for column, variant in zip(variants, step, strict=True):
                if variant is None:
                    frame[column] = original[column]
                    continue
                name, make, kind = variant
                names.append(f"{column}:{name}")
                cells = [
                    _own(r, column) if name == "own" else make(r, o, run)
                    for r, o in zip(rows, others, strict=True)
                ]
                frame[column] = pd.Series(cells, dtype=object)
                counts = _expected(column, cells, rows, kind == FULL)
                wanted += [
                    f"{rule} on column {column}: {k} of {n} rows" for rule, k in counts.items() if k
                ]
            assert sorted(gate(p, frames)) == sorted(wanted), names
    finally:
        for column in CELLS:
            frame[column] = original[column]


def test_each_bad_cell_counts_once() -> None:
    """In one year column: a full date, another child's year, a year-month, a week, the own
    year and an empty cell."""
    run = D(2026, 11, 27)
    rows = TABLES[run][:6]
    p, frames = world(run, _people(rows))
    frame = frames[RECORDS][0]
    frame[YEAR] = pd.Series(["2022-06-26", "2020", "2022-06", "2020-W09", 2022, None])
    assert gate(p, frames) == [
        "full_value on column birth_date: 1 of 6 rows",
        "value_mismatch on column birth_date: 3 of 6 rows",
    ]


def test_a_file_layout_writes_the_own_values_as_text(tmp_path: Path) -> None:
    """A state file's integer and text columns (as the renderer writes them) leave as they
    are; a finer value there stops."""
    spec_file = tmp_path / "exact_cells.yaml"
    spec_file.write_text(
        "description: Exact cells.\nfile_name: exact_cells.csv\nlevel: record\n"
        "key: [ProgramID]\ncolumns:\n"
        "  - {name: ProgramID, source: program_code, type: string, required: true}\n"
        "  - {name: BirthYear, source: birth_date, type: integer}\n"
        "  - {name: AgeMonths, source: age_months, type: integer}\n"
        "  - {name: AgeBand, source: age_band, type: string}\n"
        "  - {name: DaysBand, source: days_present, type: string}\n",
        encoding="utf-8",
    )
    run = D(2026, 11, 27)
    rows = TABLES[run]
    n = len(rows)
    p, frames = world(run, _people(rows), specs=[load_spec(spec_file)])
    frame = frames["exact_cells.csv"][0]
    assert frame["BirthYear"].tolist()[:2] == ["2022", "2022"]
    assert frame["AgeMonths"].tolist()[:2] == ["53", "53"]
    assert frame["AgeBand"].tolist()[:2] == ["48-59", "48-59"]
    assert frame["DaysBand"].tolist()[:2] == [None, "5"]
    assert gate(p, frames) == []
    frame.loc[0, "AgeMonths"] = "53.5"
    frame.loc[1, "BirthYear"] = "06/2022"
    frame.loc[2, "AgeBand"] = "52"
    frame.loc[3, "DaysBand"] = "99"
    assert sorted(gate(p, frames)) == [
        f"full_value on column DaysBand: 1 of {n} rows",
        f"value_mismatch on column AgeBand: 1 of {n} rows",
        f"value_mismatch on column AgeMonths: 1 of {n} rows",
        f"value_mismatch on column BirthYear: 1 of {n} rows",
    ]


# --- property: the gate against an oracle that works the values out from the rule --------


def _year(born: Any) -> int | None:
    return born.year if isinstance(born, dt.date) else None


def _plus_months(day: dt.date, months: int) -> dt.date:
    """``months`` later, on the same day or, in a shorter month, its last day."""
    year, month = divmod(day.month - 1 + months, 12)
    year, month = day.year + year, month + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _months(born: Any, run: dt.date) -> int | None:
    """Whole months from ``born`` to ``run``: how many months later are reached by then."""
    if not isinstance(born, dt.date) or born > run:
        return None
    months = 0
    while _plus_months(born, months + 1) <= run:
        months += 1
    return months


def _band(value: int | None, bins: list[int]) -> str | None:
    """The label of the band ``value`` falls in: ``lo-hi`` (``lo`` alone when the band holds
    one number), the last ``lo+``; none below the first bin."""
    if value is None or value < bins[0]:
        return None
    at = max(i for i, b in enumerate(bins) if b <= value)
    if at == len(bins) - 1:
        return f"{bins[-1]}+"
    low, high = bins[at], bins[at + 1] - 1
    return f"{low}-{high}" if high > low else str(low)


BINS = st.lists(st.integers(0, 80), min_size=2, max_size=6, unique=True).map(sorted)
KINDS = ["own", "empty", "other", "plus_one", "finer", "full_date", "exact", "junk"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    run=st.dates(D(2021, 1, 1), D(2030, 12, 31)),
    age_bins=BINS,
    day_bins=BINS,
    rows=st.lists(
        st.tuples(
            st.none() | st.integers(-60, 8 * 366),  # days before the run date
            st.none() | st.integers(0, 200),
            st.lists(st.sampled_from(KINDS), min_size=4, max_size=4),
            st.from_regex(r"[a-z]{1,5}|[0-9]{1,4}", fullmatch=True),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_cells_equal_the_oracle(
    run: dt.date, age_bins: list[int], day_bins: list[int], rows: list[Any]
) -> None:
    births = [run - dt.timedelta(days=d) if d is not None else None for d, *_ in rows]
    counts = [c for _, c, *_ in rows]
    n = len(rows)
    own = {
        YEAR: [_year(b) for b in births],
        AGE: [_months(b, run) for b in births],
        BAND: [_band(_months(b, run), age_bins) for b in births],
        DAYS: [_band(c, day_bins) for c in counts],
    }

    def cell(column: str, i: int, kind: str, junk: str) -> Any:
        born, mine = births[i], own[column][i]
        if kind == "own":
            return mine
        if kind == "other":
            return own[column][(i + 1) % n]
        if kind == "full_date" and born is not None:
            return born.isoformat()
        if kind == "exact":
            return counts[i] if column == DAYS else own[AGE][i]
        if kind == "plus_one" and column in (YEAR, AGE) and mine is not None:
            return mine + 1
        if kind == "finer" and born is not None:
            return {
                YEAR: f"{born.month}/{born.year}",
                AGE: f"{own[AGE][i]}.5",
                BAND: f"{born.year}-W{born.isocalendar()[1]:02d}",
                DAYS: f"{counts[i]}.0",
            }[column]
        if kind == "junk":
            return junk
        return None

    p, frames = world(
        run,
        [{"birth_date": b, "days_present": c} for b, c in zip(births, counts, strict=True)],
        plan(age_bins, day_bins),
    )
    frame = frames[RECORDS][0]
    wanted: dict[tuple[str, str], int] = {}
    for at, column in enumerate((YEAR, AGE, BAND, DAYS)):
        cells = []
        for i, (_, _, kinds, junk) in enumerate(rows):
            value = cell(column, i, kinds[at], junk)
            cells.append(value)
            text = _norm(value)
            if text is None or text == _norm(own[column][i]):
                continue
            full = births[i] is not None and text == births[i].isoformat()
            full |= column == DAYS and text == _norm(counts[i])  # the exact count
            rule = "full_value" if full else "value_mismatch"
            wanted[(rule, column)] = wanted.get((rule, column), 0) + 1
        frame[column] = pd.Series(cells, dtype=object)
    found = {}
    for failure in gate(p, frames):
        hit = re.fullmatch(
            rf"(full_value|value_mismatch) on column (\w+): (\d+) of {n} rows", failure
        )
        assert hit is not None, failure
        found[(hit.group(1), hit.group(2))] = int(hit.group(3))
    assert found == wanted
