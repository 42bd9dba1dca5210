"""The collector around a step and at start-up (pipelines/collector.py): a nested use (an
Ed-Fi send inside a delivery shard) leaves the outer one's heap frozen until the outer one
ends; the garbage a step leaves is freed when it ends, not frozen by the next step for good;
a start-up heap frozen for good (by this process, or by Airflow before it forks) stays frozen,
and one this process froze is not counted at each step; a pause runs no collection."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from pipelines.collector import frozen


class _Node:
    """An object in a reference cycle: only the cycle collector frees it."""

    def __init__(self) -> None:
        self.me = self


def _cyclic_garbage() -> weakref.ref[_Node]:
    return weakref.ref(_Node())


@pytest.fixture
def collector_idle() -> Iterator[None]:
    """No automatic collection during the test, so that only ``frozen`` can free a cycle."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_the_inner_use_does_not_hand_back_the_outer_ones_heap() -> None:
    assert gc.get_freeze_count() == 0
    with frozen():
        outer = gc.get_freeze_count()
        with frozen():
            assert gc.get_freeze_count() >= outer
        assert gc.get_freeze_count() >= outer > 0
    assert gc.get_freeze_count() == 0


def test_a_steps_garbage_is_freed_when_it_ends(collector_idle: None) -> None:
    with frozen():
        left = _cyclic_garbage()
        assert left() is not None
    assert left() is None
    with frozen():  # the next step in the same process
        assert gc.get_freeze_count() > 0


def test_garbage_made_before_a_nested_use_is_not_frozen_by_it(collector_idle: None) -> None:
    with frozen():
        left = _cyclic_garbage()
        with frozen():
            pass
    assert left() is None


@pytest.fixture
def for_good(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A test that freezes a start-up heap for good: the heap and the collector module's
    record of it are handed back after it."""
    import pipelines.collector

    monkeypatch.setattr(pipelines.collector, "_frozen_for_good", False)
    try:
        yield
    finally:
        gc.unfreeze()


def test_a_heap_frozen_for_good_before_the_step_stays_frozen(
    collector_idle: None, for_good: None
) -> None:
    from pipelines.collector import paused

    with paused(freeze=True):
        start_up = [object() for _ in range(10)]
    before = gc.get_freeze_count()
    with frozen():
        left = _cyclic_garbage()
    assert left() is None  # the step's garbage is still freed
    assert gc.get_freeze_count() >= before > len(start_up)


def test_paused_runs_no_collection_and_restores_the_collector() -> None:
    from pipelines.collector import paused

    collections: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(count)
    try:
        for enabled_before in (True, False):
            (gc.enable if enabled_before else gc.disable)()
            collections.clear()
            with paused():
                assert not gc.isenabled()
                garbage = [[] for _ in range(50_000)]  # many more allocations than gen0's 700
                for item in garbage:
                    item.append(item)  # cycles: collectable garbage
                del garbage
                during = list(collections)
            assert during == []
            assert gc.isenabled() is enabled_before
            assert gc.get_freeze_count() == 0  # nothing frozen unless asked
    finally:
        gc.callbacks.remove(count)
        gc.enable()


def test_paused_restores_the_collector_when_the_block_raises() -> None:
    from pipelines.collector import paused

    try:
        with paused():
            raise KeyError("x")
    except KeyError:
        pass
    assert gc.isenabled()


def test_a_heap_frozen_by_another_before_the_step_stays_frozen(
    collector_idle: None, for_good: None
) -> None:
    """Airflow freezes its heap before it forks a worker: a step in that worker counts the
    frozen heap, finds it, and leaves it frozen."""
    gc.freeze()
    before = gc.get_freeze_count()
    with frozen():
        left = _cyclic_garbage()
    assert left() is None
    assert gc.get_freeze_count() >= before > 0


def test_a_step_does_not_count_a_heap_this_process_froze_for_good(
    for_good: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counting walks every frozen object (a night's half-million at each step's start):
    a heap frozen for good by :func:`paused` is known frozen without counting."""
    from pipelines.collector import paused

    with paused(freeze=True):
        pass
    counted: list[int] = []
    count = gc.get_freeze_count
    monkeypatch.setattr(gc, "get_freeze_count", lambda: counted.append(1) or count())
    with frozen():
        pass
    assert counted == []
    monkeypatch.undo()
    assert gc.get_freeze_count() > 0  # still frozen after the step


def test_paused_with_freeze_leaves_what_is_alive_frozen(for_good: None) -> None:
    from pipelines.collector import paused

    with paused(freeze=True):
        kept = [object() for _ in range(10)]
    assert gc.get_freeze_count() > len(kept) and gc.isenabled()
