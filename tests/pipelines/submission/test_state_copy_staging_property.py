"""Property: for random nights of sends, corrections, withdrawals (revocation) and re-consents,
run each night by one of two destination files writing to the same staging database (a
rename, or two files), or by both in either order, after each run a staging database's tables
hold exactly the children the agreement permits, with their current middle names, and exactly
the children whose latest disclosure-log entry is a disclosure.

The oracle is the test's own model of the controlled world (:mod:`.nights`): an in-play child
is permitted while its parent's consent is active, with its current middle name. It reads the
staging tables with its own SQL and does not call the code it checks. Adversarial for the
staging database's unchanged-batch skip: a re-consented child's batch is often the very batch
last sent (only that child changed), which must be written again after its rows were deleted.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.pipelines.submission import nights as n
from tests.pipelines.submission.conftest import World, make_world
from tests.pipelines.submission.test_state_copy_property import reset

IN_PLAY = 3
NAMES = ("Ann", "Bea")
OPS = ("none", "none", "edit", "revoke", "reconsent")
_names = itertools.count()


@pytest.fixture(scope="module")
def shared_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("state-copy-staging-property")
    world = make_world(f"sqlite:///{root / 'program.db'}", root, children=60)
    n.write_agreement(world)
    yield world
    world.engine.dispose()


night_plans = st.lists(
    st.lists(
        st.tuples(st.sampled_from(OPS), st.sampled_from(NAMES)), min_size=IN_PLAY, max_size=IN_PLAY
    ),
    min_size=2,
    max_size=4,
)
NONE = ("none", "Ann")
RUNS = (("p",), ("p",), ("q",), ("p", "q"), ("q", "p"))
"""Which destination files run each night, both writing to the same staging database: one
name, the other (a rename, or a second file), or both in either order."""
runs_per_night = st.lists(st.sampled_from(RUNS), min_size=4, max_size=4)
ONE_NAME = [("p",)] * 4


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(  # the review's case: corrected alone, withdrawn, re-consented to the same batch
    plan=[
        [NONE, NONE, NONE],
        [("edit", "Bea"), NONE, NONE],
        [("revoke", "Ann"), NONE, NONE],
        [("reconsent", "Ann"), NONE, NONE],
    ],
    runs=ONE_NAME,
)
@example(  # renamed after night 1: the revoked child is withdrawn under the new name
    plan=[[NONE, NONE, NONE], [("revoke", "Ann"), NONE, NONE]],
    runs=[("p",), ("q",), ("q",), ("q",)],
)
@example(  # two files: one deletes, the other must write the re-consented batch again
    plan=[
        [NONE, NONE, NONE],
        [("revoke", "Ann"), NONE, NONE],
        [("reconsent", "Ann"), NONE, NONE],
    ],
    runs=[("p", "q"), ("p", "q"), ("q", "p"), ("p",)],
)
@given(plan=night_plans, runs=runs_per_night)
def test_after_each_night_the_staging_tables_hold_what_the_agreement_permits_and_the_log_says(
    shared_world: World,
    monkeypatch: pytest.MonkeyPatch,
    plan: list[list[tuple[str, str]]],
    runs: list[tuple[str, ...]],
) -> None:
    world = shared_world
    in_play = reset(world)
    base = f"staging-prop-{next(_names)}"
    url = f"sqlite:///{world.config.parent / f'{base}.db'}"
    for suffix in ("p", "q"):  # two destination files (or one renamed), one database
        n.staging_destination(world, url, monkeypatch, f"{base}-{suffix}")
    middle = dict.fromkeys(in_play, "")
    active = dict.fromkeys(in_play, True)
    run_ids: list[str] = []
    for number, ops in enumerate(plan, start=1):
        for key, (op, value) in zip(in_play, ops, strict=True):
            if op == "edit":
                middle[key] = value
                n.set_middle(world, key, value)
            elif op == "revoke" and active[key]:
                active[key] = False
                n.revoke(world, key, n.night(number))
            elif op == "reconsent" and not active[key]:
                active[key] = True
                n.reconsent(world, key, n.night(number))
        for suffix in runs[number - 1]:
            summary = world.run(f"{base}-{suffix}", run_date=n.night(number))
            assert summary["status"] == "success"
            run_ids.append(summary["run_id"])
            held = n.held_by_staging(url)
            expected = {key: middle[key] for key in in_play if active[key]}
            when = f"night {number}, {suffix}"
            assert {key: h.middle for key, h in held.items()} == expected, when
            log = n.latest(world, run_ids)
            disclosed = {key for key, entry in log.items() if entry.action == "disclose"}
            assert disclosed == set(held), f"{when}: held = latest entry is a disclosure"
