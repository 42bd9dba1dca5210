"""A shard is prepared with the process's start-up heap frozen out of the garbage collector,
and the collector gets it back afterwards, whether the shard finished or raised; no
collection walks the gates' start-up before it is frozen."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import pytest

from pipelines.submission.prepare import _collector_off_the_heap
from tests.conftest import PROJECT


def test_start_up_heap_is_frozen_during_the_shard_and_handed_back_after() -> None:
    assert gc.get_freeze_count() == 0
    with _collector_off_the_heap():
        frozen = gc.get_freeze_count()
        made = [[] for _ in range(1000)]  # the shard's own objects: still the collector's
        # none joins the frozen heap (which only shrinks, as frozen objects are freed)
        assert gc.get_freeze_count() <= frozen
        seen = {id(o) for o in gc.get_objects()}  # generations 0-2: what collections walk
        assert all(id(item) in seen for item in made)
    assert frozen > 10_000  # Great Expectations, pandas and the suites, built first
    assert gc.get_freeze_count() == 0


def test_collector_gets_the_heap_back_when_the_shard_raises() -> None:
    with pytest.raises(RuntimeError), _collector_off_the_heap():
        raise RuntimeError("a program stopped")
    assert gc.get_freeze_count() == 0


FRESH_SHARD = """
import gc
from pipelines.submission.prepare import _collector_off_the_heap
walks = []
def walked(phase, info):
    if phase == "start":
        walks.append(info["generation"])
gc.collect()  # from here, only what the shard's start makes counts towards a collection
gc.callbacks.append(walked)
with _collector_off_the_heap():
    print(walks, gc.get_freeze_count() > 100_000)
"""


def test_no_collection_walks_the_warm_up_before_it_is_frozen() -> None:
    """In a fresh process the warm-up imports Great Expectations (hundreds of thousands of
    objects) with the collector paused; a collection after it and before the freeze would
    walk them all for nothing."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "GX_ANALYTICS_ENABLED": "false"}
    out = subprocess.run(
        [sys.executable, "-c", FRESH_SHARD], env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["[]", "True"]
