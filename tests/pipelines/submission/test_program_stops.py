"""A program that stops sharing, or an agreement that lapses, after the destination received
records, under an agreement without ``delete_out_of_scope`` (with it, what is held is
withdrawn: ``test_program_withdrawal.py``): nothing more is sent (no data and no deletion
list), the redaction audit line and
``datashare run``'s output say how many children's records the destination still holds and
that the agreement's destruction terms govern them (counts only, no child named). See
``pipelines/submission/withdrawals.py`` for why this is the course taken."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import select
from sqlalchemy.orm import Session

from pipelines.commands.run import show_summary
from pipelines.demo import DEMO_DATE
from pipelines.submission.finish import finish_run
from pipelines.submission.plan import plan_run
from privacy.participation import record_change
from schemas import RedactionEntry
from schemas.codes import ParticipationAction
from tests.pipelines.submission.conftest import World
from tests.pipelines.submission.kinds import FORMATS, small_world

NEXT = DEMO_DATE + dt.timedelta(days=1)
LAPSED = dt.date(2028, 7, 1)  # vt-aoe-ecids expires 2028-06-30 (and its review is overdue)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = small_world(tmp_path)
    made.destination(
        "vt",
        type="local",
        recipient="VT-AOE",
        agreements=["vt-aoe-ecids"],
        formats=FORMATS,
        local={"root": str(tmp_path / "drop")},
    )
    yield made
    made.engine.dispose()


def withdraw(world: World, program: str) -> None:
    with Session(world.engine) as session, session.begin():
        record_change(
            session,
            program,
            ParticipationAction.WITHDRAW,
            recipient_code="VT-AOE",
            decided_by="director",
            effective_date=NEXT,
            reason="program closed",
        )


@pytest.mark.parametrize(
    ("stop", "on", "stopped", "reason"),
    [
        ("withdraw", NEXT, {"VT-EHS-02"}, "program_withdrawn"),
        ("lapse", LAPSED, {"VT-HS-01", "VT-EHS-02"}, None),
        ("nothing", NEXT, set(), None),
    ],
    ids=["program-withdrawn", "agreement-lapsed", "still-sharing"],
)
def test_when_sharing_stops_the_held_copy_is_reported_and_nothing_more_sent(
    world: World, stop: str, on: dt.date, stopped: set[str], reason: str | None
) -> None:
    first = world.run("vt")
    assert first["status"] == "success"
    sent = world.disclosures().groupby("program_code").size().to_dict()
    if stop == "withdraw":
        withdraw(world, "VT-EHS-02")
    plan = plan_run("vt", on, settings=world.settings)
    assert set(plan["skipped_programs"]) == stopped
    if reason:
        assert set(plan["skipped_programs"].values()) == {reason}
    assert plan["still_held"] == {p: sent[p] for p in stopped}
    summary = finish_run(plan, [], world.settings)
    assert summary["programs"]["still_held"] == plan["still_held"]
    with Session(world.engine) as session:
        rules = dict(
            session.execute(
                select(RedactionEntry.program_code, RedactionEntry.rule).where(
                    RedactionEntry.run_id == plan["run_id"], RedactionEntry.field.is_(None)
                )
            ).all()
        )
    for program in stopped:
        assert f"still holds {sent[program]} children's records" in rules[program]
        assert "destruction terms" in rules[program]
    out = io.StringIO()
    show_summary(Console(file=out, width=200), summary)
    printed = out.getvalue()
    for program in stopped:
        assert f"{program} (not sharing): the destination still holds {sent[program]}" in printed
    assert len(world.disclosures()) == sum(sent.values()), "nothing more sent or deleted"
    children = set(world.disclosures()["child_local_id"])
    assert not any(c in printed or any(c in r for r in rules.values()) for c in children), (
        "counts only: no child is named"
    )
