"""A full date in a column the agreement cuts to the month stops the batch in every form the
layout could write it: ISO, US, or the column's own ``strftime`` pattern; the month the column
rightly writes never stops, even when compact (``%Y%m`` ``202111``) or for a child born on the
1st or the 10th-12th (where day and month read alike).

The table runs the real file-spec loader, renderer and gate (agreement ``uvm-crc-study``, which
cuts birth and entry dates to the month). Any child's full date, another child's month and the
property of the rule are in ``test_output_gate_month_cut.py``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from schemas.filespec import load_spec
from tests.pipelines.gate_world import children, gate, preparation, record_frames

BORN = [
    dt.date(2021, 11, 1),  # the 1st: the month cut's own first day
    dt.date(2022, 10, 10),  # day == month
    dt.date(2021, 11, 11),  # day == month, year digits 21
    dt.date(2020, 12, 12),  # day == month, month reads as a day
    dt.date(2022, 1, 12),  # day 12 reads as a month
    dt.date(2021, 12, 1),  # the 1st again, month 12 reads as a day
]
PATTERNS = [  # a day-naming strftime pattern and its month cut (schemas/filespec.py's rule)
    ("%Y-%m-%d", "%Y-%m"),
    ("%m/%d/%Y", "%m/%Y"),
    ("%d/%m/%Y", "%m/%Y"),
    ("%d.%m.%Y", "%m.%Y"),
    ("%Y%m%d", "%Y%m"),
    ("%m%d%Y", "%m%Y"),
    ("%d%m%Y", "%m%Y"),
    ("%y%m%d", "%y%m"),
    ("%m%d%y", "%m%y"),
    ("%d%m%y", "%m%y"),
    ("%Y/%m/%d", "%Y/%m"),
    ("%Y.%m.%d", "%Y.%m"),
    ("%-m/%-d/%Y", "%-m/%Y"),
    ("%Y/%m/%-d", "%Y/%m"),
    ("%-d.%-m.%Y", "%-m.%Y"),
    ("%d-%b-%Y", "%b-%Y"),
    ("%b %d %Y", "%b %Y"),
    ("%d %B %Y", "%B %Y"),
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


@pytest.mark.parametrize(("full", "month"), PATTERNS, ids=[p for p, _ in PATTERNS])
def test_every_pattern_stops_the_full_date_and_passes_the_month(
    tmp_path: Path, full: str, month: str
) -> None:
    p = _world(tmp_path, full)
    column = load_spec(tmp_path / "study.yaml").column("BirthMonth")
    assert (column.date_format, column.month_format) == (full, month)  # the loader's own cut
    frames = record_frames(p)
    frame = frames["study.csv"][0]
    assert frame["BirthMonth"].tolist() == [b.replace(day=1).strftime(month) for b in BORN]
    assert gate(p, frames) == []  # the month, as rendered, passes
    n = len(BORN)
    for cell in (
        lambda b: b.strftime(full),
        lambda b: b.isoformat(),
        lambda b: b.strftime("%m/%d/%Y"),
        lambda b: f" {b.strftime(full).upper()} ",
    ):
        frame["BirthMonth"] = [cell(b) for b in BORN]
        assert gate(p, frames) == [f"full_value on column BirthMonth: {n} of {n} rows"], full
    entry = pd.to_datetime(p.extract["entry_date"]).dt.date
    frame["BirthMonth"] = [b.replace(day=1).strftime(month) for b in BORN]
    frame["EntryMonth"] = [e.strftime(full) for e in entry]
    assert gate(p, frames) == [f"full_value on column EntryMonth: {n} of {n} rows"], full


def test_a_full_date_stops_whoever_it_belongs_to(tmp_path: Path) -> None:
    """A compact full date stops in the row child's own date or any other (it used to pass
    when it was not the row child's: another child's birth date left)."""
    p = _world(tmp_path, "%Y%m%d")
    frames = record_frames(p)
    frame = frames["study.csv"][0]
    frame["BirthMonth"] = ["20211101", *frame["BirthMonth"][1:]]  # row 0's own: stops
    assert gate(p, frames) == ["full_value on column BirthMonth: 1 of 6 rows"]
    shaped = "20190615"  # not row 0's child's: a full date all the same
    frame["BirthMonth"] = [shaped, *frame["BirthMonth"][1:]]
    assert gate(p, frames) == ["full_value on column BirthMonth: 1 of 6 rows"]


def test_a_pattern_without_a_day_writes_only_the_month_and_iso_still_stops(
    tmp_path: Path,
) -> None:
    p = _world(tmp_path, "%b %Y")
    frames = record_frames(p)
    frame = frames["study.csv"][0]
    assert frame["BirthMonth"].tolist() == [b.strftime("%b %Y") for b in BORN]
    assert gate(p, frames) == []
    frame["BirthMonth"] = [b.isoformat() for b in BORN]
    assert gate(p, frames) == [f"full_value on column BirthMonth: {len(BORN)} of {len(BORN)} rows"]


# The property of the month-cut rule (any full date, another child's month) is in
# ``test_output_gate_month_cut.py``.
