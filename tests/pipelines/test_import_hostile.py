"""Imports of hostile or careless files: a child id twice, values a spreadsheet would run."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.db import session_scope
from pipelines.imports import import_file
from schemas import Child, Enrollment, QuarantinedRow
from tests.pipelines.hostile import FORMULAS, HYPHEN_NAME, write_gold

TODAY = dt.date(2026, 11, 27)


def quarantined(engine: Engine) -> list[tuple[int | None, str, str | None]]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(QuarantinedRow.line, QuarantinedRow.rule, QuarantinedRow.child_local_id)
        ).all()
    return sorted((r.line, r.rule, r.child_local_id) for r in rows)


def local_ids(engine: Engine) -> list[str]:
    with session_scope(engine) as session:
        return sorted(session.scalars(select(Child.local_id)))


@pytest.mark.parametrize(
    ("rows", "loaded", "duplicates"),
    [
        pytest.param(  # the case: the last row used to win, the first was lost
            [
                {"ChildID": "800001", "Child F Name": "Ana"},
                {"ChildID": "800001", "Child F Name": "Bea"},
                {"ChildID": "800002"},
            ],
            ["800002"],
            {2: "800001", 3: "800001"},
            id="same-id-other-name",
        ),
        pytest.param(  # an exact repeat: the same enrollment twice (stored once: same content)
            [{"ChildID": "800001"}, {"ChildID": "800002"}, {"ChildID": "800001"}],
            ["800002"],
            {2: "800001", 4: None},
            id="exact-repeat",
        ),
        pytest.param(  # three copies, one differing: all three go
            [
                {"ChildID": "800001", "First Day In Program": "9/1/2025"},
                {"ChildID": "800001", "First Day In Program": "1/5/2026"},
                {"ChildID": "800001", "Child L Name": "Other", "First Day In Program": "2/2/2026"},
            ],
            [],
            {2: "800001", 3: "800001", 4: "800001"},
            id="three-copies",
        ),
        pytest.param(  # one child, two enrollments, agreeing on the child: not a duplicate
            [
                {"ChildID": "800001", "First Day In Program": "9/1/2025"},
                {"ChildID": "800001", "First Day In Program": "1/5/2026"},
            ],
            ["800001"],
            {},
            id="two-enrollments",
        ),
    ],
)
def test_when_a_child_id_repeats_with_different_values_then_every_copy_is_quarantined(
    engine: Engine,
    tmp_path: Path,
    rows: list[dict[str, str]],
    loaded: list[str],
    duplicates: dict[int, str | None],
) -> None:
    report = import_file(engine, "gold", write_gold(tmp_path / "gold.csv", rows), today=TODAY)
    assert report.duplicate_rows == len(duplicates)
    assert report.rows_quarantined == len(duplicates)
    assert dict(report.quarantined_by_rule) == (
        {"duplicate_in_file": len(duplicates)} if duplicates else {}
    )
    stored = {line: child for line, child in duplicates.items() if child is not None}
    assert quarantined(engine) == sorted(
        (line, "duplicate_in_file", child) for line, child in stored.items()
    )
    assert report.quarantine_known == len(duplicates) - len(stored)
    assert local_ids(engine) == loaded
    for error in report.errors:
        assert str(error).startswith(f"gold.csv:{error.line}: child.local_id (ChildID): ")
        assert "duplicate_in_file" in str(error) and "Bea" not in str(error)


def test_when_two_enrollments_agree_then_both_load(engine: Engine, tmp_path: Path) -> None:
    rows = [
        {"ChildID": "800001", "First Day In Program": "9/1/2025"},
        {"ChildID": "800001", "First Day In Program": "1/5/2026"},
    ]
    import_file(engine, "gold", write_gold(tmp_path / "gold.csv", rows), today=TODAY)
    with session_scope(engine) as session:
        assert len(session.scalars(select(Enrollment)).all()) == 2


def test_when_a_file_repeats_an_id_or_holds_a_formula_then_the_command_summary_says_so(
    tmp_path: Path,
) -> None:
    db_url = f"sqlite:///{tmp_path / 'cli.db'}"  # the command migrates it
    rows = [{"ChildID": "800001", "Child F Name": n} for n in ("Ana", "Bea")]
    rows.append({"ChildID": "800002", "Child L Name": FORMULAS["at_sum"]})
    path = write_gold(tmp_path / "gold.csv", rows)
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["import", "gold", str(path), "--database-url", db_url]
    )
    assert result.exit_code == 0, result.output
    assert "2 rows give a child id that repeats in this file" in result.output
    assert "duplicate_in_file" in result.output and "every copy is quarantined" in result.output
    assert "Bea" not in result.output
    assert "gold.csv:4: child.last_name (Child L Name): formula_prefix: begins with" in (
        result.output
    )
    assert FORMULAS["at_sum"] not in result.output


def test_when_values_look_like_formulas_then_they_load_with_a_warning_naming_no_value(
    engine: Engine, tmp_path: Path
) -> None:
    rows = [
        {"ChildID": f"81000{i}", "Child F Name": value}
        for i, value in enumerate([*FORMULAS.values(), HYPHEN_NAME])
    ]
    rows.append({"ChildID": "819999", "Child L Name": "@home"})
    report = import_file(engine, "gold", write_gold(tmp_path / "gold.csv", rows), today=TODAY)
    assert report.rows_loaded == len(rows) and report.rows_quarantined == 0
    assert report.warned_by_rule == {"formula_prefix": len(rows)}
    where = sorted((w.line, w.field, w.column) for w in report.warnings)
    assert where == [
        *((line, "child.first_name", "Child F Name") for line in range(2, 2 + len(rows) - 1)),
        (len(rows) + 1, "child.last_name", "Child L Name"),
    ]
    text = json.dumps(report.to_dict())
    for value in [*FORMULAS.values(), HYPHEN_NAME]:
        assert value not in text
    with session_scope(engine) as session:  # stored as given: neutralised on the way out
        names = set(session.scalars(select(Child.first_name)))
    assert set(FORMULAS.values()) | {HYPHEN_NAME} <= names


def test_when_a_cell_starts_with_whitespace_then_no_warning(engine: Engine, tmp_path: Path) -> None:
    rows = [{"ChildID": "820001", "Child F Name": "Ana-Maria"}, {"ChildID": "820002"}]
    report = import_file(engine, "gold", write_gold(tmp_path / "gold.csv", rows), today=TODAY)
    assert report.rows_loaded == 2 and not report.warnings
