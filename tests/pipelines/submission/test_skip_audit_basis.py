"""Program-level audit lines say why, citing the rule that decided it.

An AIAN program sharing aggregate outputs only under a record agreement sends no child record:
the run's output and the redaction audit say so, with the reason code and plain words, citing
the program's own opt-in (45 CFR 1302.53(b)(4)), and the run output does not call it "not
sharing" (its aggregates may go). A program that moved out of the recipient's state is
skipped under the jurisdiction rule (a recipient receives only programs of its own state), not
the participation registry.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pipelines.commands.run import show_summary
from pipelines.demo import DEMO_DATE
from privacy.participation import record_change
from schemas import Program, RedactionEntry
from schemas.codes import OptInScope, ParticipationAction
from tests.pipelines.submission.conftest import PROJECT, World
from tests.pipelines.submission.kinds import FORMATS, small_world

PROGRAM = "NM-AIAN-07"  # opted in to aggregate outputs in the demo (pipelines/demo/world.py)
AGREEMENT = "nm-ececd-records"
PLAIN = "the AIAN program opted in to aggregate outputs only, not child records"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = small_world(tmp_path)
    yield made
    made.engine.dispose()


def program_lines(world: World, run_id: str) -> dict[str, tuple[str, str]]:
    """program -> (reason, rule) of the run's program-level audit lines."""
    with Session(world.engine) as session:
        rows = session.execute(
            select(RedactionEntry.subject, RedactionEntry.reason_code, RedactionEntry.rule).where(
                RedactionEntry.run_id == run_id,
                RedactionEntry.field.is_(None),
                RedactionEntry.subject == RedactionEntry.program_code,
            )
        ).all()
    return {subject: (reason, rule) for subject, reason, rule in rows}


def printed(summary: dict[str, object]) -> str:
    out = io.StringIO()
    show_summary(Console(file=out, width=400), summary)  # type: ignore[arg-type]
    return out.getvalue()


@pytest.mark.parametrize("held_before", [False, True], ids=["fresh", "records-held-before"])
def test_an_aggregate_only_program_under_a_record_agreement_is_explained(
    world: World, tmp_path: Path, held_before: bool
) -> None:
    data = yaml.safe_load((PROJECT / "config/agreements/vt-aoe-ecids.yaml").read_text())
    data |= {"id": AGREEMENT, "recipient": "NM-ECECD"}
    (world.config / "agreements" / f"{AGREEMENT}.yaml").write_text(yaml.safe_dump(data))
    world.destination(
        "nm",
        type="local",
        recipient="NM-ECECD",
        agreements=[AGREEMENT],
        formats=FORMATS,
        local={"root": str(tmp_path / "drop")},
    )
    run_date = DEMO_DATE
    if held_before:
        with Session(world.engine) as session, session.begin():
            record_change(
                session,
                PROGRAM,
                ParticipationAction.OPT_IN,
                decided_by="tribal council",
                authority="Resolution 2026-30",
                recorded_by="clerk",
                scope=OptInScope.RECORD,
                effective_date=DEMO_DATE - dt.timedelta(days=30),
            )
            record_change(
                session,
                PROGRAM,
                ParticipationAction.OPT_IN,
                decided_by="tribal council",
                authority="Resolution 2026-31",
                recorded_by="clerk",
                scope=OptInScope.AGGREGATE,
                effective_date=DEMO_DATE + dt.timedelta(days=1),
            )
        assert world.run("nm", run_date=DEMO_DATE)["status"] == "success"
        run_date = DEMO_DATE + dt.timedelta(days=1)
    summary = world.run("nm", run_date=run_date)
    assert summary["status"] == "success", summary["stop_lines"]
    assert summary["programs"]["records_withheld"] == {PROGRAM: "aian_aggregate_only"}
    assert PROGRAM not in summary["programs"]["skipped"], "it shares: aggregate outputs"

    reason, rule = program_lines(world, summary["run_id"])[PROGRAM]
    assert reason == "aian_aggregate_only"
    assert rule.startswith("the AIAN program's opt-in scope (45 CFR 1302.53(b)(4))")
    assert f"aian_aggregate_only: {PLAIN}" in rule
    assert ("still holds" in rule) is held_before, "records held from before are counted"

    text = printed(summary)
    line = next(x for x in text.splitlines() if x.startswith(PROGRAM))
    assert line.startswith(f"{PROGRAM} (aggregate outputs only): no child record is sent")
    assert "aian_aggregate_only" in line and PLAIN in line
    assert f"{PROGRAM} (not sharing)" not in text
    children = set(world.children().query("program_code == @PROGRAM")["local_id"])
    assert not any(c in rule or c in text for c in children), "no child is named"


def test_a_program_that_moved_cites_the_jurisdiction_rule(world: World, tmp_path: Path) -> None:
    world.destination(
        "vt",
        type="local",
        recipient="VT-AOE",
        agreements=["vt-aoe-ecids"],
        formats=FORMATS,
        local={"root": str(tmp_path / "drop")},
    )
    assert world.run("vt", run_date=DEMO_DATE)["status"] == "success"
    with Session(world.engine) as session, session.begin():
        session.execute(update(Program).where(Program.code == "VT-EHS-02").values(state="NH"))
    summary = world.run("vt", run_date=DEMO_DATE + dt.timedelta(days=1))
    assert summary["programs"]["skipped"] == {"VT-EHS-02": "program_not_in_jurisdiction"}
    reason, rule = program_lines(world, summary["run_id"])["VT-EHS-02"]
    assert reason == "program_not_in_jurisdiction"
    assert rule.startswith("jurisdiction: a recipient receives only programs of its own state")
    assert "42 U.S.C. 9836a(b)(4)" in rule
    assert "participation registry" not in rule
    assert "still holds" in rule, "the note on what the destination holds follows"


def test_a_withdrawn_program_still_cites_the_participation_registry(
    world: World, tmp_path: Path
) -> None:
    world.destination(
        "vt",
        type="local",
        recipient="VT-AOE",
        agreements=["vt-aoe-ecids"],
        formats=FORMATS,
        local={"root": str(tmp_path / "drop")},
    )
    with Session(world.engine) as session, session.begin():
        record_change(
            session,
            "VT-EHS-02",
            ParticipationAction.WITHDRAW,
            recipient_code="VT-AOE",
            decided_by="director",
            effective_date=DEMO_DATE,
            reason="test",
        )
    summary = world.run("vt", run_date=DEMO_DATE)
    reason, rule = program_lines(world, summary["run_id"])["VT-EHS-02"]
    assert reason == "program_withdrawn"
    assert rule == "program participation registry (45 CFR 1302.53(b))"
