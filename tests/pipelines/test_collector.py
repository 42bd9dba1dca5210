"""A nested freeze (an Ed-Fi send inside a delivery shard) leaves the outer one's heap frozen
until the outer one ends."""

from __future__ import annotations

import gc

from pipelines.collector import frozen


def test_the_inner_use_does_not_hand_back_the_outer_ones_heap() -> None:
    assert gc.get_freeze_count() == 0
    with frozen():
        outer = gc.get_freeze_count()
        with frozen():
            assert gc.get_freeze_count() >= outer
        assert gc.get_freeze_count() >= outer > 0
    assert gc.get_freeze_count() == 0
