"""A column the agreement cuts to the month may carry only the row child's month.

The rule (``pipelines/quality/output_suite.py``): a month-cut cell is empty or exactly what the
column writes for the row child's month (the first of the month written with the column's
month pattern). Anything else stops the batch: ``full_value`` when it holds a full date,
whoever's, in any common form (``15.11.2021`` in a ``%Y%m%d`` column, ``2021/11/15``,
``Nov 15, 2021``, ``15 November 2021``, ``11-15-2021``...), unless the column's month pattern
reads it as a month; ``value_mismatch`` otherwise (another child's month, any other text).
Each bad cell counts under one rule.

The tables run the real agreement (``uvm-crc-study`` cuts birth and entry dates to the month),
file-spec loader, renderer and gate, for children born on the 1st, the 10th-12th (day and
month read alike), the 28th-31st, Feb 29 and at year ends. The property checks
``validate_output`` against an oracle written from the rule above, which imports nothing of
the gate.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.quality.mentions import KeyIndex
from pipelines.quality.output_suite import Columns, RowValues, validate_output
from tests.pipelines.gate_world import RECORDS, children, gate, preparation, record_frames

BORN = [
    dt.date(2021, 11, 1),  # the 1st
    dt.date(2022, 10, 10),  # day == month
    dt.date(2021, 11, 11),
    dt.date(2020, 12, 12),
    dt.date(2022, 1, 12),  # day 12 reads as a month
    dt.date(2021, 1, 28),
    dt.date(2020, 2, 29),  # leap day
    dt.date(2021, 3, 30),
    dt.date(2021, 5, 31),
    dt.date(2021, 12, 31),  # year end
    dt.date(2022, 1, 1),  # year start
    dt.date(2020, 11, 5),  # %y%m%d 201105 is the %Y%m month of May 2011
    dt.date(2020, 12, 31),  # day 366 of a leap year, ISO week 2020-W53-4
    dt.date(2021, 1, 1),  # ISO week 2020-W53-5: the week's year is not the date's
]
N = len(BORN)
ES = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre",
      "octubre", "noviembre", "diciembre"]  # fmt: skip
ES_SHORT = ["ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic"]
ES_DAYS = ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"]
FR = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
      "octobre", "novembre", "décembre"]  # fmt: skip
FR_SHORT = ["janv", "févr", "mars", "avr", "mai", "juin", "juil", "août", "sept", "oct", "nov",
            "déc"]  # fmt: skip
FORMS = {  # full dates no strftime pattern of the C locale writes (and Excel's day number)
    "ordinal": lambda d: d.strftime("%Y-%j"),
    "ordinal_compact": lambda d: d.strftime("%Y%j"),
    "week": lambda d: d.strftime("%G-W%V-%u"),
    "week_compact": lambda d: d.strftime("%GW%V%u"),
    "es_de": lambda d: f"{d.day} de {ES[d.month - 1]} de {d.year}",
    "es": lambda d: f"{d.day} {ES[d.month - 1]} {d.year}",
    "es_weekday": lambda d: f"{ES_DAYS[d.weekday()]}, {d.day} de {ES[d.month - 1]} de {d.year}",
    "es_short_dot": lambda d: f"{d.day} {ES_SHORT[d.month - 1]}. {d.year}",
    "es_month_first": lambda d: f"{ES_SHORT[d.month - 1]}. {d.day} {d.year}",
    "es_caps": lambda d: f"{d.day:02d}-{ES_SHORT[d.month - 1].upper()}-{d.year}",
    "es_del": lambda d: f"el {d.day} de {ES[d.month - 1]} del {d.year}",
    "fr": lambda d: f"{'1er' if d.day == 1 else d.day} {FR[d.month - 1]} {d.year}",
    "fr_short_dot": lambda d: f"{d.day} {FR_SHORT[d.month - 1]}. {d.year}",
    "datetime_compact": lambda d: d.strftime("%Y%m%d000000"),
    "excel_serial": lambda d: str((d - dt.date(1899, 12, 30)).days),
}


def write(date: dt.date, leak: str) -> str:
    """``date`` written as the leak ``leak`` (a name of :data:`FORMS` or a pattern)."""
    return FORMS[leak](date) if leak in FORMS else date.strftime(leak)


LEAKS = [  # ways a full date gets written, none of them a layout's own pattern below
    "%d.%m.%Y",
    "%Y/%m/%d",
    "%b %d, %Y",
    "%B %d, %Y",
    "%d %B %Y",
    "%d %b %Y",
    "%m-%d-%Y",
    "%d-%m-%Y",
    "%Y.%m.%d",
    "%Y%m%d",
    "%d%m%Y",
    "%m%d%Y",
    "%m/%d/%y",
    "%d/%m/%y",
    "%Y-%m-%dT%H:%M:%S",
    "%d-%b-%Y",
    "%Y-%b-%d",
    "%A, %B %d, %Y",
    "%-m/%-d/%Y",
    "%-d.%-m.%y",
    "%dth of %B %Y",
    "born %d/%m/%Y",
]
LAYOUTS = [  # a layout's full pattern and the month it writes
    ("%Y%m%d", "%Y%m"),
    ("%Y-%m-%d", "%Y-%m"),
    ("%m/%d/%Y", "%m/%Y"),
    ("%d.%m.%Y", "%m.%Y"),
    ("%b %d %Y", "%b %Y"),
    ("%m%d%Y", "%m%Y"),
]
SPEC = """\
file_name: study.csv
key: [ProgramID, LocalChildID]
columns:
  - {{name: ProgramID, source: program_code, type: string, required: true}}
  - {{name: LocalChildID, source: child_local_id, type: string, required: true}}
  - {{name: BirthMonth, source: birth_date, type: date, format: "{pattern}", required: true}}
  - {{name: EntryMonth, source: entry_date, type: date, format: "{pattern}", required: true}}
"""


def _world(tmp_path: Path, pattern: str) -> Any:
    path = tmp_path / "study.yaml"
    path.write_text(SPEC.format(pattern=pattern), encoding="utf-8")
    return preparation("uvm-crc-study", children([{"birth_date": b} for b in BORN]), [str(path)])


def _other(i: int) -> dt.date:
    """Another child's birth date (the next row's), never the same month as row ``i``'s."""
    other = BORN[(i + 1) % N]
    assert (other.year, other.month) != (BORN[i].year, BORN[i].month)
    return other


@pytest.fixture(scope="module")
def compact(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The ``%Y%m%d`` layout (months written ``202111``) and its rendered frames."""
    p = _world(tmp_path_factory.mktemp("compact"), "%Y%m%d")
    return p, record_frames(p)


@pytest.mark.parametrize("leak", [*LEAKS, *FORMS])
def test_a_full_date_in_any_pattern_stops_whoever_it_belongs_to(compact: Any, leak: str) -> None:
    p, frames = compact
    frame = frames["study.csv"][0]
    month = frame["BirthMonth"].copy()
    try:
        frame["BirthMonth"] = [write(b, leak) for b in BORN]  # the row child's own
        assert gate(p, frames) == [f"full_value on column BirthMonth: {N} of {N} rows"]
        frame["BirthMonth"] = [write(_other(i), leak) for i in range(N)]  # another child's
        assert gate(p, frames) == [f"full_value on column BirthMonth: {N} of {N} rows"]
    finally:
        frame["BirthMonth"] = month


@pytest.mark.parametrize(("full", "month"), LAYOUTS, ids=[f for f, _ in LAYOUTS])
def test_the_rendered_month_passes_and_anything_else_stops(
    tmp_path: Path, full: str, month: str
) -> None:
    p = _world(tmp_path, full)
    frames = record_frames(p)
    frame = frames["study.csv"][0]
    assert frame["BirthMonth"].tolist() == [b.replace(day=1).strftime(month) for b in BORN]
    assert gate(p, frames) == []  # every child's own month, as rendered, leaves
    frame["BirthMonth"] = [f" {b.replace(day=1).strftime(month).upper()} " for b in BORN]
    assert gate(p, frames) == []  # case and surrounding space are the same text
    frame["BirthMonth"] = [None] * N
    assert gate(p, frames) == []  # empty discloses nothing
    frame["BirthMonth"] = [_other(i).replace(day=1).strftime(month) for i in range(N)]
    assert gate(p, frames) == [f"value_mismatch on column BirthMonth: {N} of {N} rows"]
    frame["BirthMonth"] = [_other(i).strftime(full) for i in range(N)]  # the layout's own
    assert gate(p, frames) == [f"full_value on column BirthMonth: {N} of {N} rows"]
    frame["BirthMonth"] = [b.strftime("%Y") for b in BORN]  # a year: not the month written
    assert gate(p, frames) == [f"value_mismatch on column BirthMonth: {N} of {N} rows"]


def test_a_month_of_another_child_stops_even_where_it_reads_as_a_date(tmp_path: Path) -> None:
    """``201105`` is the ``%Y%m`` month of May 2011 and the ``%y%m%d`` of 2020-11-05: the
    column reads it as a month (``value_mismatch``); either way it is not the row's month."""
    p = _world(tmp_path, "%Y%m%d")
    frames = record_frames(p)
    frame = frames["study.csv"][0]
    last = BORN.index(dt.date(2020, 11, 5))
    frame.loc[last, "BirthMonth"] = "201105"
    assert gate(p, frames) == [f"value_mismatch on column BirthMonth: 1 of {N} rows"]
    frame.loc[last, "BirthMonth"] = "202111"  # row 0's month (2021-11), not this row's
    assert gate(p, frames) == [f"value_mismatch on column BirthMonth: 1 of {N} rows"]
    frame.loc[last, "BirthMonth"] = "15.11.2021"  # the brief's leak: a day, whoever's
    frame.loc[0, "BirthMonth"] = "2021-11"  # row 0's month, not as the column writes it
    assert gate(p, frames) == [
        f"full_value on column BirthMonth: 1 of {N} rows",
        f"value_mismatch on column BirthMonth: 1 of {N} rows",
    ]


def test_the_entry_month_is_checked_alike(compact: Any) -> None:
    p, frames = compact
    frame = frames["study.csv"][0]
    entry = frame["EntryMonth"].copy()
    try:
        frame["EntryMonth"] = [b.strftime("%d.%m.%Y") for b in BORN]  # a birth date
        assert gate(p, frames) == [f"full_value on column EntryMonth: {N} of {N} rows"]
    finally:
        frame["EntryMonth"] = entry


def test_api_records_carry_only_the_row_childs_month(tmp_path: Path) -> None:
    """Without a layout the ``month`` transform's ``YYYY-MM`` is the only month text."""
    p = preparation("uvm-crc-study", children([{"birth_date": b} for b in BORN]), [])
    frames = record_frames(p)
    frame = frames[RECORDS][0]
    assert frame["birth_date"].tolist() == [b.strftime("%Y-%m") for b in BORN]
    assert gate(p, frames) == []
    frame["birth_date"] = [_other(i).strftime("%Y-%m") for i in range(N)]
    assert gate(p, frames) == [f"value_mismatch on column birth_date: {N} of {N} rows"]
    frame["birth_date"] = [_other(i).strftime("%b %d, %Y") for i in range(N)]
    assert gate(p, frames) == [f"full_value on column birth_date: {N} of {N} rows"]
    frame["birth_date"] = [b.strftime("%Y%m") for b in BORN]  # a month, not as it is written
    assert gate(p, frames) == [f"value_mismatch on column birth_date: {N} of {N} rows"]


# --- property: validate_output against an oracle written from the rule --------------------


def _norm(value: Any) -> str | None:
    if value is None:
        return None
    return " ".join(str(value).split()).casefold() or None


def _reads_as(text: str, pattern: str) -> bool:
    """Whether ``text`` is exactly what ``pattern`` writes for some date (normalized)."""
    try:
        parsed = dt.datetime.strptime(text, pattern.replace("%-", "%"))
    except ValueError:
        return False
    return _norm(parsed.strftime(pattern)) == text


def oracle(cells: list[tuple[Any, str]], born: list[dt.date | None], month: str) -> Any:
    """Rows that stop, and of them those that surely hold a full date and those that surely
    do not (a six- or eight-digit run may read either way)."""
    bad = full = not_full = 0
    for (cell, kind), date in zip(cells, born, strict=True):
        text = _norm(cell)
        own = _norm(date.replace(day=1).strftime(month)) if date is not None else None
        if text is None or text == own:
            continue
        bad += 1
        as_month = _reads_as(text, month)
        if kind == "day" and not as_month:
            full += 1
        elif kind == "month" and (as_month or not re.search(r"\d{6}", text)):
            not_full += 1
    return bad, full, not_full


DATES = st.dates(dt.date(2000, 1, 1), dt.date(2029, 12, 31)) | st.sampled_from(BORN)
PATTERNS = [*LAYOUTS, ("%d-%b-%Y", "%b-%Y"), ("%y%m%d", "%y%m"), ("%d%m%y", "%m%y")]
MONTHS = ["%Y%m", "%Y-%m", "%m/%Y", "%b %Y", "%B %Y", "%m%Y", "%Y"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pattern=st.sampled_from(PATTERNS),
    rows=st.lists(
        st.tuples(
            st.none() | DATES,
            DATES,
            st.sampled_from(["own_month", "other_month", "day", "month_other_way", "text"]),
            st.sampled_from([*LEAKS, *FORMS]),
            st.sampled_from(MONTHS),
            st.booleans(),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_month_cut_equals_the_oracle(pattern: tuple[str, str], rows: list[Any]) -> None:
    full, month = pattern
    born = [own for own, *_ in rows]

    def cell(own: Any, other: dt.date, kind: str, leak: str, way: str, mine: bool) -> Any:
        date = own if own is not None and mine else other
        if kind == "own_month":
            return (date.replace(day=1).strftime(month), "month")
        if kind == "other_month":
            return (other.replace(day=1).strftime(month), "month")
        if kind == "day":
            return (write(date, leak) if mine else date.strftime(full), "day")
        if kind == "month_other_way":
            return (date.replace(day=1).strftime(way), "month")
        return ("unknown", "month")

    cells = [cell(*row) for row in rows]
    frame = pd.DataFrame({"BirthMonth": [c for c, _ in cells]}, dtype=object)
    values = pd.DataFrame({"birth_date": pd.Series(born, dtype=object)})
    n = len(rows)
    result = validate_output(
        frame,
        expected_columns=["BirthMonth"],
        columns=Columns(
            generalized={"BirthMonth": "birth_date"}, date_formats={"BirthMonth": (full, month)}
        ),
        rows=RowValues(values, frozenset(), [frozenset()] * n, KeyIndex.of([])),
    )
    counts = {"full_value": 0, "value_mismatch": 0}
    for failure in result.failures:
        found = re.fullmatch(rf"(\w+) on column BirthMonth: (\d+) of {n} rows", failure)
        assert found is not None and found.group(1) in counts, failure
        counts[found.group(1)] = int(found.group(2))
    bad, surely_full, surely_not = oracle(cells, born, month)
    assert counts["full_value"] + counts["value_mismatch"] == bad
    assert counts["full_value"] >= surely_full
    assert counts["value_mismatch"] >= surely_not
