"""A shard's deliver task prepares the next programs while the last ones are written, yet
everything it writes is written as when it delivered one program after the other: each
program's delivery (row, marks, bytes) by one thread, each group's record after the group's
deliveries and before the next group's, all by one thread in shard order where deliveries share
a session (not a local folder: its programs of a group are sent at once); and when recording a
group fails outright, nothing after it is sent."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pipelines.submission.deliver as deliver
from tests.pipelines.submission.conftest import World
from tests.pipelines.submission.test_remote_submission import IDENTITY
from tests.pipelines.submission.test_shard_reads import PROGRAMS, _deliver, _prepared
from tests.pipelines.submission.test_shard_submission import env_world  # noqa: F401


def _watched(
    monkeypatch: pytest.MonkeyPatch,
    fail_record: bool = False,
    group: int = 1,
    on_bytes: Callable[[str], None] = lambda program: None,
) -> list[tuple[Any, ...]]:
    """Every write step of the shard, in the order it ran, with the thread that ran it;
    ``group`` programs recorded together; ``on_bytes`` told each program before its bytes."""
    events: list[tuple[Any, ...]] = []
    transmit, record, mark = deliver._transmit, deliver._record_sent, deliver.deliver_marked

    def transmitting(ready: Any) -> Any:
        events.append(("send", ready.sending.program_code, threading.get_ident()))
        return transmit(ready)

    def marked(context: Any, destination: Any, batch: Any, delivery_id: int) -> Any:
        events.append(("bytes", batch.program_code, threading.get_ident()))
        on_bytes(batch.program_code)
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
    monkeypatch.setattr(deliver, "RECORD_GROUP_PROGRAMS", group)
    return events


@pytest.mark.parametrize("senders", ["one", "local folder"])
def test_a_shard_writes_in_program_order_each_program_on_one_thread(
    env_world: World,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    senders: str,
) -> None:
    world = env_world
    plan, prepared = _prepared(world, tmp_path / "drop")
    events = _watched(monkeypatch)
    if senders == "one":  # as for a destination whose deliveries share a session
        monkeypatch.setattr(deliver, "SENDERS", {})

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
    threads = {e[:2]: e[2] for e in events}
    for program in PROGRAMS:
        assert threads[("send", program)] == threads[("bytes", program)], "one thread each"
    assert threads[("record", (first,))] == threads[("record", (second,))]
    if senders == "one":
        assert len(set(threads.values())) == 1, "one thread writes"
    assert set(world.disclosures()["program_code"]) == set(PROGRAMS)


def test_a_local_folders_programs_of_a_group_are_sent_at_once_and_recorded_after(
    env_world: World,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first program's bytes wait until the second program is being sent: one thread
    sending one program after the other never gets there."""
    world = env_world
    plan, prepared = _prepared(world, tmp_path / "drop")
    first, second = PROGRAMS
    second_sending = threading.Event()
    overlapped: list[bool] = []

    def on_bytes(program: str) -> None:
        if program == first:
            overlapped.append(second_sending.wait(timeout=60))
        else:
            second_sending.set()

    events = _watched(monkeypatch, group=2, on_bytes=on_bytes)

    outcomes, failed = _deliver(plan, prepared, world)

    assert failed == {} and overlapped == [True]
    assert [o["program"] for o in outcomes] == PROGRAMS
    assert events[-1][:2] == ("record", (first, second)), "recorded after both deliveries"
    for program in PROGRAMS:
        steps = [e for e in events if e[1] == program]
        assert [e[0] for e in steps] == ["send", "bytes"]
        assert steps[0][2] == steps[1][2], "a program's writes on one thread"
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
