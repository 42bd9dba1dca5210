"""A run crashes after its destination accepted a batch and before it logged it; the next run,
on the same date or a later one, reconciles it under the crashed run's own identity: the batch
is looked for where the crashed run put it (its date's folder), its disclosures are logged once
with the date they were made, and nothing the destination already holds is sent again.

(The same-date case is ``test_remote_submission``'s crash test.) One table over every
destination type: local folder, SFTP (a real server on loopback), staging
database (SQLite) and Ed-Fi (the local contract server)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import pipelines.submission.deliver as deliver
from pipelines.demo import DEMO_DATE
from schemas import Delivery
from tests.pipelines.submission.conftest import World
from tests.pipelines.submission.kinds import KINDS, small_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = small_world(tmp_path)
    yield made
    made.engine.dispose()


class Crash(Exception):
    """The process 'dies' between the destination's acceptance and the disclosure log."""


def crash_first_program(world: World, monkeypatch: pytest.MonkeyPatch, run_date: dt.date) -> str:
    """Run on ``run_date``; the first program's batch is accepted, then the run dies before
    logging it. Returns the crashed run's id."""
    with monkeypatch.context() as patch:

        def crash(*args: Any, **kwargs: Any) -> int:
            raise Crash

        patch.setattr(deliver, "record_delivery", crash)
        with pytest.raises(Crash):
            world.run("dest", run_date=run_date)
    with world.engine.connect() as connection:
        stuck = connection.execute(select(Delivery.run_id, Delivery.status)).all()
    assert [status for _, status in stuck] == ["pending"]
    assert world.disclosures().empty
    return str(stuck[0][0])


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("days_later", [1], ids=["next-date"])
def test_when_crashed_run_reconciled_later_then_logged_once_with_its_own_date(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, days_later: int
) -> None:
    crashed_on = DEMO_DATE
    rerun_on = DEMO_DATE + dt.timedelta(days=days_later)
    with KINDS[kind](world, tmp_path, monkeypatch) as dest:
        crashed = crash_first_program(world, monkeypatch, crashed_on)
        summary = world.run("dest", run_date=rerun_on)
        assert summary["status"] == "success"
        (outcome,) = summary["reconciled"].values()
        assert outcome.startswith("logged"), outcome
        log = world.disclosures()
        from_crash = log.loc[log["run_id"] == crashed]
        assert len(from_crash) > 0, "the crashed run's disclosures are logged under its id"
        assert set(from_crash["run_date"]) == {crashed_on}, "with the date they were made"
        assert not log.duplicated(["program_code", "child_local_id", "action"]).any(), (
            "nothing logged twice"
        )
        crashed_program = from_crash["program_code"].iloc[0]
        sent_by_crash = set(
            zip(from_crash["child_local_id"], from_crash["payload_digest"], strict=True)
        )
        rerun = log.loc[(log["run_id"] != crashed) & (log["program_code"] == crashed_program)]
        resent = sent_by_crash & set(
            zip(rerun["child_local_id"], rerun["payload_digest"], strict=True)
        )
        assert not resent, "nothing the destination already holds is sent (and logged) again"
        if dest.root is not None:
            later = dest.root / rerun_on.isoformat() / crashed_program
            assert not later.exists(), "no second copy in the later date's folder"
