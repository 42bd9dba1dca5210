"""The no-PII scan covers every identifying column of the model and can see what it looks for."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from schemas import Base
from tests.pii import IDENTIFYING, NOT_SCANNED, PiiScan, run_texts


def personal_columns() -> set[str]:
    """Every text and date column of ``children`` and of each table that points at a child,
    directly or through another such table (a guardian, an enrollment's attendance)."""
    tables = {Base.metadata.tables["children"]}
    while more := {
        t for t in Base.metadata.tables.values()
        if t not in tables and any(fk.column.table in tables for fk in t.foreign_keys)
    }:  # fmt: skip
        tables |= more
    kinds = (sa.String, sa.Text, sa.Date)
    return {
        f"{t.name}.{c.name}"
        for t in tables
        for c in t.columns
        if isinstance(c.type, kinds) and not isinstance(c.type, sa.Enum)
    }


def test_every_personal_column_is_scanned_or_excused_with_a_reason() -> None:
    scanned = {f"{t}.{c}" for t, columns in IDENTIFYING.items() for c in columns}
    columns = personal_columns()
    assert "guardians.phone" in columns and "children.birth_date" in columns
    assert columns - scanned - set(NOT_SCANNED) == set(), "classify the new column in tests/pii.py"
    assert not scanned & set(NOT_SCANNED)
    assert (scanned | set(NOT_SCANNED)) <= columns, "no stale entries"
    assert all(NOT_SCANNED.values())


SCAN = PiiScan.of(
    {
        "children.first_name": ["Olivia", "Al"],
        "children.birth_date": [dt.date(2022, 3, 7)],
        "children.state_student_id": ["9001234567"],
        "children.address_street": ["12 Maple Ave"],
        "guardians.phone": ["802-555-0142"],
        "guardians.email": ["olivia.smith12@example.org"],
    }
)


@pytest.mark.parametrize(
    ("body", "column"),
    [
        ("task failed for Olivia", "children.first_name"),
        ("born 2022-03-07", "children.birth_date"),
        ("born 03/07/2022", "children.birth_date"),
        ("born 3/7/2022", "children.birth_date"),
        ("SASID 9001234567 rejected", "children.state_student_id"),
        ("lives at 12 Maple Ave.", "children.address_street"),
        ("call 802-555-0142", "guardians.phone"),
        ("call 8025550142", "guardians.phone"),
        ("mail olivia.smith12@example.org", "guardians.email"),
    ],
)
def test_the_scan_sees_each_kind_of_value(body: str, column: str) -> None:
    assert SCAN.sees(body) == {column}
    [finding] = SCAN.findings({"stderr": body})
    assert finding == f"{column} in stderr" and "Olivia" not in finding


@pytest.mark.parametrize(
    "body",
    ["Olivias", "run 2022-03-070", "13/7/2022", "Al", "19001234567", "port 8025550142x"],
)
def test_the_scan_does_not_see_parts_of_other_words(body: str) -> None:
    assert SCAN.sees(body) == set()


def test_run_texts_reads_stdout_stderr_logs_and_reports(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "run.log").write_text("Olivia")
    (tmp_path / "reports" / "r").mkdir(parents=True)
    (tmp_path / "reports" / "r" / "x.json").write_text("{}")
    texts = run_texts(tmp_path, "out", "err")
    assert texts["stdout"] == "out" and texts["stderr"] == "err"
    assert SCAN.findings(texts) == ["children.first_name in logs/run.log"]
    assert "reports/r/x.json" in texts
