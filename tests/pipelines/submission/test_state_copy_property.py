"""Property: for random sequences of nightly changes (edits, reverts, revocations, re-consents),
after each night a local folder destination holds exactly what the agreement permits for the
current data.

The oracle is the test's own model of the controlled world (:mod:`.nights`): an in-play child
is permitted while its parent's consent is active, with its current middle name; nobody else
ever is. It does not call the code it checks. Steps are called directly (no Airflow); the world
is made once per module and reset per example, each example delivering to a fresh destination.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from schemas import Child, Program
from tests.pipelines.submission import nights as n
from tests.pipelines.submission.conftest import World, make_world

IN_PLAY = 3
NAMES = ("Ann", "Bea", "Cy")
OPS = ("none", "edit", "revert", "revoke", "reconsent")
_names = itertools.count()


@pytest.fixture(scope="module")
def shared_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("state-copy-property")
    world = make_world(f"sqlite:///{root / 'program.db'}", root, children=60)
    n.write_agreement(world)
    yield world
    world.engine.dispose()


def reset(world: World) -> list[n.ChildKey]:
    """Fresh consents for the in-play children (and none for the others), no middle names."""
    in_play = n.control(world, IN_PLAY)
    with Session(world.engine) as session, session.begin():
        for program, local_id in in_play:
            ids = (
                select(Child.id)
                .join(Program)
                .where(Program.code == program, Child.local_id == local_id)
            )
            session.execute(update(Child).where(Child.id.in_(ids)).values(middle_name=None))
    return in_play


night_plans = st.lists(
    st.lists(
        st.tuples(st.sampled_from(OPS), st.sampled_from(NAMES)), min_size=IN_PLAY, max_size=IN_PLAY
    ),
    min_size=2,
    max_size=3,
)


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=night_plans)
def test_after_each_night_the_folder_holds_exactly_what_the_agreement_permits(
    shared_world: World, plan: list[list[tuple[str, str]]]
) -> None:
    world = shared_world
    in_play = reset(world)
    name = f"prop-{next(_names)}"
    root = world.config.parent / "drops" / name
    world.destination(
        name,
        type="local",
        recipient="MO-DESE",
        agreements=[n.AGREEMENT],
        formats=n.FILES,
        local={"root": str(root)},
    )
    middle = {key: "" for key in in_play}
    previous = dict(middle)
    active = dict.fromkeys(in_play, True)
    run_ids: list[str] = []
    for number, ops in enumerate(plan, start=1):
        for key, (op, value) in zip(in_play, ops, strict=True):
            if op == "edit":
                previous[key], middle[key] = middle[key], value
                n.set_middle(world, key, value)
            elif op == "revert":
                middle[key], previous[key] = previous[key], middle[key]
                n.set_middle(world, key, middle[key])
            elif op == "revoke" and active[key]:
                active[key] = False
                n.revoke(world, key, n.night(number))
            elif op == "reconsent" and not active[key]:
                active[key] = True
                n.reconsent(world, key, n.night(number))
        summary = world.run(name, run_date=n.night(number))
        assert summary["status"] == "success"
        run_ids.append(summary["run_id"])
        expected = {key: middle[key] for key in in_play if active[key]}
        held, withdrawn = n.held_by_files(root)
        assert {key: h.middle for key, h in held.items()} == expected, f"night {number}"
        assert not withdrawn & set(held)
        assert withdrawn <= {key for key in in_play if not active[key]}
        log = n.latest(world, run_ids)
        for key in in_play:
            if key in held:
                assert log[key].action == "disclose" and log[key].digest == held[key].digest
            elif key in log:
                assert log[key].action == "delete", "a withdrawal is logged"
