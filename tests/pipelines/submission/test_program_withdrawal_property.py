"""Property: for random sequences of nights on which a program withdraws from the recipient or
takes part again (dated the night before, on the night or the night after), a local folder
destination holds, after each night, exactly what the rules permit under an agreement with
``delete_out_of_scope``: all of the program's qualifying children while it takes part, nothing
of it once it does not; the disclosure log says so (a ``delete`` entry per child withdrawn, a
``disclose`` per child sent afresh), and the other program is never touched.

The oracle is the test's own reading of the rules: a program takes part on a date when its
latest participation event dated on or before it (same date: a withdrawal after a
participation, then the later recorded) is a participation; it started out taking part. It
does not import the code it checks. The world is made once per module; each example resets
the program's participation and delivers to a fresh destination.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.orm import Session

from pipelines.demo import DEMO_DATE
from privacy.participation import record_change
from schemas import ParticipationEvent
from schemas.codes import ParticipationAction
from tests.pipelines.submission.conftest import World, make_world
from tests.pipelines.submission.kinds import FORMATS

STOPPING, OTHER = "VT-EHS-02", "VT-HS-01"
DECIDED_BY = "property test"
ACTIONS = ("none", "withdraw", "participate")
_names = itertools.count()
Key = tuple[str, str]


@pytest.fixture(scope="module")
def shared_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("program-withdrawal-property")
    world = make_world(f"sqlite:///{root / 'program.db'}", root, children=120)
    path = world.config / "agreements" / "vt-aoe-ecids.yaml"
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, "delete_out_of_scope": True}, sort_keys=False))
    yield world
    world.engine.dispose()


def held(root: Path, program: str) -> set[Key]:
    """The children the program's latest folder carries (every folder is the program's whole
    snapshot; one with only a withdrawals file carries nobody)."""
    folders = sorted(p.parent for p in root.glob(f"*/{program}/manifest.json"))
    if not folders or not (folders[-1] / "hs_child_identity.csv").is_file():
        return set()
    identity = pd.read_csv(folders[-1] / "hs_child_identity.csv", dtype=str)
    return set(zip(identity["ProgramID"], identity["LocalChildID"], strict=True))


def withdrawn_on(root: Path, program: str, night: dt.date) -> set[Key]:
    """The children the withdrawals file of the program's folder of ``night`` lists."""
    path = root / str(night) / program / "hs_withdrawals.csv"
    if not path.is_file():
        return set()
    table = pd.read_csv(path, dtype=str)
    return set(zip(table["ProgramID"], table["LocalChildID"], strict=True))


def takes_part(events: list[tuple[dt.date, str, int]], on: dt.date) -> bool:
    """The oracle: the latest event dated on or before ``on`` decides (a withdrawal after a
    participation of the same date, then the later recorded); none: it takes part."""
    applicable = [e for e in events if e[0] <= on]
    if not applicable:
        return True
    latest = max(applicable, key=lambda e: (e[0], e[1] == "withdraw", e[2]))
    return latest[1] == "participate"


nights = st.lists(
    st.tuples(st.sampled_from(ACTIONS), st.sampled_from((-1, 0, 1))), min_size=2, max_size=4
)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=nights)
def test_after_each_night_the_folder_holds_the_program_exactly_while_it_takes_part(
    shared_world: World, plan: list[tuple[str, int]]
) -> None:
    world = shared_world
    with Session(world.engine) as session, session.begin():
        session.execute(
            delete(ParticipationEvent).where(ParticipationEvent.decided_by == DECIDED_BY)
        )
    name = f"prop-{next(_names)}"
    root = world.config.parent / "drops" / name
    world.destination(
        name,
        type="local",
        recipient="VT-AOE",
        agreements=["vt-aoe-ecids"],
        formats=[*FORMATS, "hs_withdrawals"],
        local={"root": str(root)},
    )
    baseline = world.run(name, run_date=DEMO_DATE)
    assert baseline["status"] == "success"
    everyone, others = held(root, STOPPING), held(root, OTHER)
    assert everyone and others, "both programs sent children on the first night"
    events: list[tuple[dt.date, str, int]] = []
    holding = set(everyone)
    for number, (action, offset) in enumerate(plan, start=1):
        night = DEMO_DATE + dt.timedelta(days=number)
        if action != "none":
            on = night + dt.timedelta(days=offset)
            with Session(world.engine) as session, session.begin():
                record_change(
                    session,
                    STOPPING,
                    ParticipationAction(action),
                    recipient_code="VT-AOE",
                    decided_by=DECIDED_BY,
                    effective_date=on,
                    reason="property",
                )
            events.append((on, action, len(events)))
        summary = world.run(name, run_date=night)
        assert summary["status"] == "success", summary["stop_lines"]

        expected = everyone if takes_part(events, night) else set()
        withdrawn = holding - expected
        sent = expected - holding
        assert held(root, STOPPING) == expected, f"night {number}"
        assert held(root, OTHER) == others, "the other program is untouched"
        assert withdrawn_on(root, STOPPING, night) == withdrawn
        log = world.disclosures()
        log = log.loc[log["run_id"] == summary["run_id"]]
        actions = {
            (a, (p, c))
            for a, p, c in zip(
                log["action"], log["program_code"], log["child_local_id"], strict=True
            )
        }
        assert actions == {("delete", k) for k in withdrawn} | {("disclose", k) for k in sent}
        assert len(log) == len(actions), "each child once"
        holding = expected
