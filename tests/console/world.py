"""A seeded demo world with runs to show, and real Airflow tokens, for console tests.

The world is the submission tests' (``make_world``: ``datashare demo seed`` on SQLite, the
project's agreements), with three destinations run through the pipeline steps: Vermont's
state system (audit/evaluation), Missouri's (consent: many children withheld, by reason) and
New Mexico's (aggregate counts; one AIAN program without an opt-in).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipelines.demo import DEMO_DATE
from schemas import ParticipationEvent, Program
from tests.pipelines.submission.conftest import World, make_world

DESTINATIONS = {
    "vt-demo": ("VT-AOE", "vt-aoe-ecids", ["hs_child_identity", "hs_enrollment"]),
    "mo-demo": ("MO-DESE", "mo-dese-consent", ["hs_child_identity", "hs_enrollment"]),
    "nm-demo": ("NM-ECECD", "nm-ececd-aggregate", ["hs_program_aggregate"]),
}


NIGHTS = {"vt-demo": 1, "mo-demo": 2, "nm-demo": 1}


def console_world(root: Path, children: int = 120) -> World:
    """Seed, configure the three destinations and run them (Missouri's on two nights)."""
    world = make_world(f"sqlite:///{root / 'program.db'}", root, children=children)
    for name, (recipient, agreement, formats) in DESTINATIONS.items():
        world.destination(
            name,
            type="local",
            recipient=recipient,
            agreements=[agreement],
            formats=formats,
            local={"root": str(root / "drop" / name)},
        )
    for name, nights in NIGHTS.items():
        for back in range(nights - 1, -1, -1):
            world.run(name, run_date=DEMO_DATE - dt.timedelta(days=back))
    return world


def forget_changes(world: World, program: str, keep: int) -> None:
    """Remove a program's participation events after the first ``keep`` (test cleanup only:
    the registry is append-only everywhere else)."""
    with Session(world.engine) as session, session.begin():
        events = session.scalars(
            select(ParticipationEvent)
            .join(Program)
            .where(Program.code == program)
            .order_by(ParticipationEvent.id)
        ).all()
        for event in events[keep:]:
            session.delete(event)
