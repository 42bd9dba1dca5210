"""The staging database's copy after a withdrawal and a re-consent (review finding, marker).

A staging database skips a batch whose digest equals the program's latest marker (an unchanged
batch writes nothing). Deleting rows used to leave that marker as it was, so a child sent, then
withdrawn (revocation, rows deleted), then re-consented with the very batch last sent was not
written again — yet logged as disclosed and kept as held in the delivery state. Here, night by
night through the submission, on a SQLite and a PostgreSQL staging database: the tables hold
exactly the children whose latest log entry is a disclosure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from schemas import DeliveredRecord
from tests.conftest import reset_schema
from tests.pipelines.submission import nights as n
from tests.pipelines.submission.conftest import World, make_world
from tests.pipelines.submission.nights import Killed

STAGING = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture
def small_world(tmp_path: Path) -> Iterator[World]:
    world = make_world(f"sqlite:///{tmp_path / 'program.db'}", tmp_path, children=60)
    n.write_agreement(world)
    yield world
    world.engine.dispose()


@pytest.fixture(params=STAGING)
def staging_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty staging database: a SQLite file, or this worker's PostgreSQL scratch one
    (emptied again afterwards: other tests of the worker expect it empty)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'staging.db'}"
        return
    url: str = request.getfixturevalue("staging_pg_url")
    reset_schema(url)
    yield url
    reset_schema(url)


def held_state(world: World) -> set[n.ChildKey]:
    """The children the delivery state says the destination holds."""
    with world.engine.connect() as connection:
        rows = connection.execute(
            select(DeliveredRecord.program_code, DeliveredRecord.child_local_id).where(
                DeliveredRecord.destination == "state",
                DeliveredRecord.status == "held",
                DeliveredRecord.child_local_id != "",
            )
        ).all()
    return {(p, c) for p, c in rows}


def assert_tables_match_log(
    world: World, url: str, run_ids: list[str] | None = None
) -> set[n.ChildKey]:
    held = set(n.held_by_staging(url))
    log = n.latest(world, run_ids)
    disclosed = {k for k, e in log.items() if e.action == "disclose"}
    assert held == disclosed, "the staging tables hold exactly the children logged as disclosed"
    assert held_state(world) == held, "the delivery state says what the tables hold"
    return held


@pytest.mark.parametrize("in_play", [1, 3])
def test_a_child_withdrawn_then_reconsented_is_written_again_even_when_the_batch_is_the_last_one(
    small_world: World, staging_url: str, monkeypatch: pytest.MonkeyPatch, in_play: int
) -> None:
    """One in-play child: night 3's batch is night 1's. Three: night 2 sends only the acted
    child's correction, night 4's re-consent sends that same batch again."""
    world = small_world
    children = n.control(world, in_play)
    acted = children[0]
    n.staging_destination(world, staging_url, monkeypatch)
    nights: list[tuple[str, set[n.ChildKey]]] = [("first", set(children))]
    if in_play > 1:
        nights.append(("correct", set(children)))
    nights += [("revoke", set(children) - {acted}), ("reconsent", set(children))]
    run_ids: list[str] = []
    for number, (event, expected) in enumerate(nights, start=1):
        if event == "correct":
            n.set_middle(world, acted, "Bea")
        elif event == "revoke":
            n.revoke(world, acted, n.night(number))
        elif event == "reconsent":
            n.reconsent(world, acted, n.night(number))
        summary = world.run("state", run_date=n.night(number))
        assert summary["status"] == "success", summary["programs"]
        run_ids.append(summary["run_id"])
        held = assert_tables_match_log(world, staging_url, run_ids)
        assert held == expected, f"night {number} ({event})"
    assert n.latest(world, run_ids)[acted].action == "disclose"


def test_a_run_that_delivered_and_deleted_then_died_is_reconciled_as_delivered(
    small_world: World, staging_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Night 2 sends one child's correction and deletes a revoked child's rows (its deletion
    marker follows its batch marker), then dies before logging. Night 3's reconciliation finds
    the batch held (its own run's deletion set aside) and logs it under night 2's run; the
    revoked child's withdrawal is planned again and logged. The tables match the log."""
    world = small_world
    children = n.control(world, 3)
    corrected, revoked = children[0], children[1]
    n.staging_destination(world, staging_url, monkeypatch)
    first = world.run("state", run_date=n.night(1))
    assert first["status"] == "success", first["programs"]

    with monkeypatch.context() as patch:
        n.kill_before_logging(patch)
        n.set_middle(world, corrected, "Bea")
        n.revoke(world, revoked, n.night(2))
        with pytest.raises(Killed):
            world.run("state", run_date=n.night(2))
    assert set(n.held_by_staging(staging_url)) == set(children) - {revoked}

    third = world.run("state", run_date=n.night(3))
    assert third["status"] == "success", third["programs"]
    assert third["reconciled"][n.PROGRAM].startswith("logged 1 disclosures"), third["reconciled"]
    log = n.latest(world)
    assert log[corrected].action == "disclose" and log[revoked].action == "delete"
    held = assert_tables_match_log(world, staging_url)
    assert n.held_by_staging(staging_url)[corrected].middle == "Bea"
    assert held == set(children) - {revoked}


def crashed_run_id(world: World, run_date: object) -> str:
    from schemas import Run

    with world.engine.connect() as connection:
        (run_id,) = connection.execute(select(Run.id).where(Run.run_date == run_date)).scalars()
    return str(run_id)


@pytest.mark.parametrize("also_corrected", [True, False], ids=["sent_and_deleted", "only_deleted"])
def test_a_crashed_runs_deletions_are_logged_under_its_own_id_and_date(
    small_world: World,
    staging_url: str,
    monkeypatch: pytest.MonkeyPatch,
    also_corrected: bool,
) -> None:
    """Night 2 deletes a revoked child's rows (and, in one case, sends another child's
    correction) and dies at the seam between the staging database's commit and the log.
    Night 3 logs the deletion once, under night 2's run and date (as it logs night 2's
    disclosures), and does not plan it again; the tables match the log."""
    world = small_world
    children = n.control(world, 3)
    corrected, revoked = children[0], children[1]
    n.staging_destination(world, staging_url, monkeypatch)
    first = world.run("state", run_date=n.night(1))
    assert first["status"] == "success", first["programs"]

    with monkeypatch.context() as patch:
        n.kill_before_logging(patch)
        if also_corrected:
            n.set_middle(world, corrected, "Bea")
        n.revoke(world, revoked, n.night(2))
        with pytest.raises(Killed):
            world.run("state", run_date=n.night(2))
    assert set(n.held_by_staging(staging_url)) == set(children) - {revoked}, "deleted at night 2"
    crashed = crashed_run_id(world, n.night(2))

    third = world.run("state", run_date=n.night(3))
    assert third["status"] == "success", third["programs"]
    log = world.disclosures()
    deletions = log.loc[(log["action"] == "delete") & (log["child_local_id"] == revoked[1])]
    assert len(deletions) == 1, "the deletion is logged once"
    assert deletions["run_id"].tolist() == [crashed], "under the run that deleted"
    assert deletions["run_date"].tolist() == [n.night(2)], "with the date it was deleted"
    tonight = log.loc[log["run_id"] == third["run_id"]]
    assert tonight.empty, "night 3 had nothing of its own to send or delete"
    assert assert_tables_match_log(world, staging_url) == set(children) - {revoked}
    if also_corrected:
        assert n.held_by_staging(staging_url)[corrected].middle == "Bea"


class DeleteFailed(Exception):
    """The staging database's delete fails after its batch was committed."""


@pytest.mark.parametrize("seam", ["before_logging", "at_the_delete"])
def test_an_old_copy_a_crashed_run_replaced_is_deleted_and_logged_once(
    small_world: World, staging_url: str, monkeypatch: pytest.MonkeyPatch, seam: str
) -> None:
    """Night 2 moves a child's parent statement to another field (the statements table's key
    changes: the old row is an old copy to delete), and dies either after deleting it, before
    logging, or at the delete itself, right after its batch was committed. Night 3 leaves the
    tables with only the new statement row, and the old copy's deletion is logged once: under
    night 2 when night 2 deleted it, under night 3 when night 3 had to."""
    world = small_world
    children = n.control(world, 3)
    moved = children[0]
    n.set_statement(world, moved, "race")
    n.staging_destination(world, staging_url, monkeypatch)
    first = world.run("state", run_date=n.night(1))
    assert first["status"] == "success", first["programs"]
    assert n.held_by_staging(staging_url)[moved].statements == ["race"]

    with monkeypatch.context() as patch:
        if seam == "before_logging":
            n.kill_before_logging(patch)
        else:
            from pipelines.destinations.staging_db import StagingDbDestination

            def failing(self: Any, *args: Any, **kwargs: Any) -> Any:
                raise DeleteFailed

            patch.setattr(StagingDbDestination, "delete_rows", failing)
        n.set_statement(world, moved, "sex")
        with pytest.raises((Killed, DeleteFailed)):
            summary = world.run("state", run_date=n.night(2))
            raise DeleteFailed(summary["programs"])  # a stopped program: the run is partial
    crashed = crashed_run_id(world, n.night(2))
    expected = ["sex"] if seam == "before_logging" else ["race", "sex"]
    assert sorted(n.held_by_staging(staging_url)[moved].statements) == expected

    third = world.run("state", run_date=n.night(3))
    assert third["status"] == "success", third["programs"]
    assert n.held_by_staging(staging_url)[moved].statements == ["sex"], "the old copy is gone"
    log = world.disclosures()
    mine = log.loc[log["child_local_id"] == moved[1]]
    old_copy = mine.loc[mine["action"] == "delete"]
    assert len(old_copy) == 1, "the old copy's deletion is logged once"
    by = crashed if seam == "before_logging" else third["run_id"]
    assert old_copy["run_id"].tolist() == [by], "under the run that deleted it"
    assert assert_tables_match_log(world, staging_url) == set(children)
