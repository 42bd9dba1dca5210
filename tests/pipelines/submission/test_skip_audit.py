"""A program skipped because its AIAN opt-in is incomplete: the redaction audit line (and the
run summary) say what the opt-in lacks, by name, never with a value from the registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from pipelines.demo import DEMO_DATE
from pipelines.submission.finish import finish_run
from pipelines.submission.plan import plan_run
from schemas import ParticipationEvent, Program, RedactionEntry
from schemas.codes import ParticipationAction
from tests.pipelines.submission.conftest import World
from tests.pipelines.submission.kinds import small_world

PROGRAM = "NM-AIAN-06"  # its only opt-in was imported incomplete (see pipelines/demo/world.py)
AUTHORITY = "Tribal Council Resolution 2026-99"
RULE = "program participation registry (45 CFR 1302.53(b))"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = small_world(tmp_path)
    made.destination(
        "nm",
        type="local",
        recipient="NM-ECECD",
        agreements=["nm-ececd-aggregate"],
        formats=["hs_program_aggregate"],
        local={"root": str(tmp_path / "drop")},
    )
    yield made
    made.engine.dispose()


def set_opt_in(world: World, **values: Any) -> None:
    """Rewrite the program's opt-in row as an import that skips the checks would."""
    if not values:
        return
    with world.engine.begin() as connection:
        connection.exec_driver_sql("PRAGMA ignore_check_constraints = ON")
        program = connection.scalar(select(Program.id).where(Program.code == PROGRAM))
        connection.execute(
            update(ParticipationEvent)
            .where(
                ParticipationEvent.program_id == program,
                ParticipationEvent.action == ParticipationAction.OPT_IN,
            )
            .values(**values)
        )
        connection.exec_driver_sql("PRAGMA ignore_check_constraints = OFF")


@pytest.mark.parametrize(
    ("opt_in", "lacks"),
    [
        ({}, "authority, recorded_by"),  # the demo's import: no authority, no recorder
        ({"authority": AUTHORITY, "recorded_by": "  "}, "recorded_by"),
        ({"authority": AUTHORITY, "recorded_by": "clerk", "decided_by": ""}, "decided_by"),
        ({"authority": AUTHORITY, "recorded_by": "clerk", "scope": None}, "scope"),
        ({"authority": None, "recorded_by": "clerk", "scope": None}, "authority, scope"),
    ],
    ids=["demo-import", "recorder-blank", "decider-empty", "no-scope", "authority-and-scope"],
)
def test_skipped_program_audit_says_what_the_opt_in_lacks(
    world: World, opt_in: dict[str, Any], lacks: str
) -> None:
    set_opt_in(world, **opt_in)
    plan = plan_run("nm", DEMO_DATE, settings=world.settings)
    assert plan["skipped_programs"] == {PROGRAM: "aian_opt_in_incomplete"}
    summary = finish_run(plan, [], world.settings)
    assert summary["programs"]["skip_notes"] == {PROGRAM: f"the AIAN opt-in lacks {lacks}"}
    with world.engine.connect() as connection:
        (rule,) = connection.scalars(
            select(RedactionEntry.rule).where(
                RedactionEntry.program_code == PROGRAM,
                RedactionEntry.reason_code == "aian_opt_in_incomplete",
            )
        ).all()
        events = connection.execute(text("SELECT decided_by FROM participation_events")).all()
    assert rule == f"{RULE}: the AIAN opt-in lacks {lacks}"
    assert AUTHORITY not in rule and "clerk" not in rule, "names what is missing, no value"
    assert not any(who and who.strip() and who in rule for (who,) in events)
