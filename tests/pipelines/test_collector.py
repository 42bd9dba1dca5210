"""The collector freeze around a step (pipelines/collector.py): a nested use (an Ed-Fi send
inside a delivery shard) leaves the outer one's heap frozen until the outer one ends, and the
garbage a step leaves is freed when it ends, not frozen by the next step for good."""

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
