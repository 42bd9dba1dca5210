"""A shard's deliver task prepares the next programs while the last ones are written, yet
on SQLite (one writer) everything it writes is written as when it delivered one program after
the other: by one thread, each program's delivery (row, marks, bytes) in shard order, each
group's record after the group's deliveries and before the next group's; and when recording a
group fails outright, nothing after it is sent. (On PostgreSQL a group is recorded while the
next is sent: ``test_shard_overlap``.)"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import pipelines.submission.deliver as deliver
from tests.pipelines.submission.conftest import World
from tests.pipelines.submission.test_remote_submission import IDENTITY
from tests.pipelines.submission.test_shard_reads import PROGRAMS, _deliver, _prepared
from tests.pipelines.submission.test_shard_submission import env_world  # noqa: F401


def _watched(monkeypatch: pytest.MonkeyPatch, fail_record: bool = False) -> list[tuple[Any, ...]]:
    """Every write step of the shard, in the order it ran, with the thread that ran it."""
    events: list[tuple[Any, ...]] = []
    transmit, record, mark = deliver._transmit, deliver._record_sent, deliver.deliver_marked

    def transmitting(ready: Any, *row: Any) -> Any:
        events.append(("send", ready.sending.program_code, threading.get_ident()))
        return transmit(ready, *row)

    def marked(context: Any, destination: Any, batch: Any, delivery_id: int) -> Any:
        events.append(("bytes", batch.program_code, threading.get_ident()))
        return mark(context, destination, batch, delivery_id)

    def recording(context: Any, group: Any, failed: Any) -> Any:
        programs = tuple(s.recording.program for s in group)
        events.append(("record", programs, threading.get_ident()))
        if fail_record:
            raise RuntimeError("the program database went away")
        return record(context, group, failed)

    monkeypatch.setattr(deliver, "_transmit", transmitting)
    monkeypatch.setattr(deliver, "deliver_marked", marked)
    monkeypatch.setattr(deliver, "_record_sent", recording)
    monkeypatch.setattr(deliver, "RECORD_GROUP_PROGRAMS", 1)
    return events


def test_on_sqlite_a_shard_writes_in_program_order_on_one_thread(
    env_world: World,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = env_world
    plan, prepared = _prepared(world, tmp_path / "drop")
    events = _watched(monkeypatch)

    outcomes, failed = _deliver(plan, prepared, world)

    assert failed == {}
    assert [o["program"] for o in outcomes] == PROGRAMS
    first, second = PROGRAMS
    assert [e[:2] for e in events] == [
        ("send", first),
        ("bytes", first),
        ("record", (first,)),
        ("send", second),
        ("bytes", second),
        ("record", (second,)),
    ]
    assert len({e[2] for e in events}) == 1, "one thread writes"
    assert set(world.disclosures()["program_code"]) == set(PROGRAMS)


def test_when_recording_a_group_fails_nothing_after_it_is_sent(
    env_world: World,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = env_world
    root = tmp_path / "drop"
    plan, prepared = _prepared(world, root)
    events = _watched(monkeypatch, fail_record=True)

    with pytest.raises(RuntimeError, match="went away"):
        _deliver(plan, prepared, world)

    first = PROGRAMS[0]
    assert [e[:2] for e in events] == [("send", first), ("bytes", first), ("record", (first,))]
    assert {p.parent.name for p in root.rglob(IDENTITY)} == {first}, "the second never left"
    assert world.disclosures().empty
