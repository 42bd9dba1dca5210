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


def test_paused_with_freeze_leaves_what_is_alive_frozen() -> None:
    from pipelines.collector import paused

    try:
        with paused(freeze=True):
            kept = [object() for _ in range(10)]
        assert gc.get_freeze_count() > len(kept) and gc.isenabled()
    finally:
        gc.unfreeze()
