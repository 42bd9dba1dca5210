"""On PostgreSQL a shard records a group while it sends the next: the sends on one thread in
shard order, the records on another in group order, each after its own group's deliveries;
the next group's pending rows and marks never wait on the recording transaction. Should
recording a group fail, nothing is sent once that is known, what went out meanwhile is still
recorded, and a retried task returns it instead of sending it again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import pipelines.submission.deliver as deliver
from schemas import Delivery
from tests.pipelines.submission.conftest import World, make_world
from tests.pipelines.submission.test_remote_submission import IDENTITY, arrived, assert_log_matches
from tests.pipelines.submission.test_shard_reads import PROGRAMS, _deliver, _prepared

pytestmark = pytest.mark.postgres
FIRST, SECOND = PROGRAMS
WAIT = 60  # seconds: only ever reached when the awaited step cannot happen (a failure)


@pytest.fixture
def pg_world(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The demo world on PostgreSQL, as the task functions see it: through the environment."""
    made = make_world(pg_url, tmp_path)
    monkeypatch.setenv("DATASHARE_DATABASE_URL", made.settings.database_url)
    monkeypatch.setenv("DATASHARE_CONFIG_DIR", str(made.settings.config_dir))
    monkeypatch.setenv("DATASHARE_STATE_DIR", str(made.settings.state_dir))
    monkeypatch.setattr(deliver, "RECORD_GROUP_PROGRAMS", 1)  # each program a group
    yield made
    made.engine.dispose()


class Watch:
    """Every write step of a shard, in the order it ran, with the thread that ran it; and
    an event set once the second program's bytes are written (its marks committed)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, Any, int]] = []
        self.second_sent = threading.Event()
        transmit, record, mark = deliver._transmit, deliver._record_sent, deliver.deliver_marked

        def transmitting(ready: Any, *row: Any) -> Any:
            self.events.append(("send", ready.sending.program_code, threading.get_ident()))
            return transmit(ready, *row)

        def marked(context: Any, destination: Any, batch: Any, delivery_id: int) -> Any:
            self.events.append(("bytes", batch.program_code, threading.get_ident()))
            result = mark(context, destination, batch, delivery_id)
            if batch.program_code == SECOND:
                self.second_sent.set()
            return result

        def recording(context: Any, group: Any, failed: Any) -> Any:
            programs = tuple(s.recording.program for s in group)
            self.events.append(("record", programs, threading.get_ident()))
            return record(context, group, failed)

        monkeypatch.setattr(deliver, "_transmit", transmitting)
        monkeypatch.setattr(deliver, "deliver_marked", marked)
        monkeypatch.setattr(deliver, "_record_sent", recording)

    def steps(self) -> list[tuple[str, Any]]:
        return [e[:2] for e in self.events]

    def threads(self, kind: str) -> set[int]:
        return {e[2] for e in self.events if e[0] == kind}


def _rows(world: World) -> dict[str, tuple[str, bool]]:
    """program -> its delivery row's status and whether its upload was marked."""
    with world.engine.connect() as connection:
        rows = connection.execute(
            select(Delivery.program_code, Delivery.status, Delivery.upload_began_at)
        ).all()
    return {r.program_code: (r.status, r.upload_began_at is not None) for r in rows}


def test_the_next_group_is_sent_while_a_group_is_recorded_without_waiting_on_its_locks(
    pg_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first group's recording transaction (its log entries, delivery state and delivery
    row written, not yet committed) waits until the second program's pending row, marks and
    files are written: they neither wait for it nor deadlock with it."""
    world = pg_world
    root = tmp_path / "drop"
    plan, prepared = _prepared(world, root)
    watch = Watch(monkeypatch)
    finish = deliver._finish
    overlapped: list[bool] = []

    def finishing(session: Any, context: Any, logged: Any) -> None:
        if not overlapped:  # the first group, inside its recording transaction
            overlapped.append(watch.second_sent.wait(WAIT))
        finish(session, context, logged)

    monkeypatch.setattr(deliver, "_finish", finishing)

    outcomes, failed = _deliver(plan, prepared, world)

    assert overlapped == [True], "the second was sent while the first was being recorded"
    assert failed == {}
    assert [o["program"] for o in outcomes] == PROGRAMS
    steps = watch.steps()
    assert [s for s in steps if s[0] != "record"] == [
        ("send", FIRST),
        ("bytes", FIRST),
        ("send", SECOND),
        ("bytes", SECOND),
    ]
    assert [s for s in steps if s[0] == "record"] == [("record", (FIRST,)), ("record", (SECOND,))]
    assert steps.index(("record", (FIRST,))) > steps.index(("bytes", FIRST))
    assert steps.index(("record", (SECOND,))) > steps.index(("bytes", SECOND))
    sender, recorder = watch.threads("send"), watch.threads("record")
    assert len(sender) == 1 and len(recorder) == 1 and sender != recorder
    assert watch.threads("bytes") == sender
    assert threading.get_ident() not in sender | recorder
    assert _rows(world) == {FIRST: ("logged", True), SECOND: ("logged", True)}
    assert_log_matches(world, arrived(root, IDENTITY))


def test_when_recording_a_group_fails_what_went_out_meanwhile_is_recorded_not_resent(
    pg_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first group's record fails once the second program's files went out: the error is
    raised, the first's delivery stays open (pending, its upload marked: the next run's
    reconciliation or a retried task settles it), the second is logged. The retried task
    returns the second's recorded outcome without sending it again, and sends the first."""
    world = pg_world
    root = tmp_path / "drop"
    plan, prepared = _prepared(world, root)
    watch = Watch(monkeypatch)
    record = deliver._record_sent

    def failing_first(context: Any, group: Any, failed: Any) -> Any:
        if group[0].recording.program == FIRST:
            assert watch.second_sent.wait(WAIT), "the second went out during the first's record"
            raise RuntimeError("the program database went away")
        return record(context, group, failed)

    monkeypatch.setattr(deliver, "_record_sent", failing_first)
    with pytest.raises(RuntimeError, match="went away"):
        _deliver(plan, prepared, world)

    steps = [("send", FIRST), ("bytes", FIRST), ("send", SECOND), ("bytes", SECOND)]
    assert [s for s in watch.steps() if s[0] != "record"] == steps
    assert [s for s in watch.steps() if s[0] == "record"] == [("record", (SECOND,))]
    assert _rows(world) == {FIRST: ("pending", True), SECOND: ("logged", True)}
    assert set(world.disclosures()["program_code"]) == {SECOND}
    assert {p.parent.name for p in root.rglob(IDENTITY)} == set(PROGRAMS), "both arrived"

    monkeypatch.setattr(deliver, "_record_sent", record)
    watch.events.clear()
    outcomes, failed = _deliver(plan, prepared, world)  # the retried task

    assert failed == {}
    assert sorted(o["program"] for o in outcomes) == PROGRAMS
    assert [s for s in watch.steps() if s[0] != "record"] == [("send", FIRST), ("bytes", FIRST)]
    assert _rows(world) == {FIRST: ("logged", True), SECOND: ("logged", True)}
    assert_log_matches(world, arrived(root, IDENTITY))


def test_once_a_group_failed_to_record_nothing_more_is_sent(
    pg_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second program's turn comes once the first group's record has failed: it is not
    sent, and nothing is logged."""
    world = pg_world
    root = tmp_path / "drop"
    plan, prepared = _prepared(world, root)
    watch = Watch(monkeypatch)
    known = threading.Event()
    turn, record = deliver._Sender._transmit, deliver._Sender._record

    def failing(context: Any, group: Any, failed: Any) -> Any:
        raise RuntimeError("the program database went away")

    def recorded(self: deliver._Sender, group: Any) -> Any:
        try:
            return record(self, group)
        finally:
            known.set()

    def second_after_the_failure(self: deliver._Sender, ready: Any) -> Any:
        if ready.sending.program_code == SECOND:
            assert known.wait(WAIT), "the first group's record ended"
        return turn(self, ready)

    monkeypatch.setattr(deliver, "_record_sent", failing)
    monkeypatch.setattr(deliver._Sender, "_record", recorded)
    monkeypatch.setattr(deliver._Sender, "_transmit", second_after_the_failure)
    with pytest.raises(RuntimeError, match="went away"):
        _deliver(plan, prepared, world)

    assert [s for s in watch.steps() if s[0] != "record"] == [("send", FIRST), ("bytes", FIRST)]
    assert {p.parent.name for p in root.rglob(IDENTITY)} == {FIRST}, "the second never left"
    assert _rows(world)[FIRST] == ("pending", True), "open, for the next run to reconcile"
    assert world.disclosures().empty
