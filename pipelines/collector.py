"""The garbage collector kept off a long step's start-up heap.

``gc.freeze`` moves every object alive now out of the collector's sight, so that the full
collections a step's own garbage triggers walk only the step's objects. When the outermost use
ends, the step's own cyclic garbage is collected first (a walk of the step's objects only: the
heap is still frozen), then ``gc.unfreeze`` hands the heap back. Without that collection, the
garbage a step left (tens of thousands of objects holding its frames) would be frozen again by
the next step in the same process and never freed: a 1,000,000-child night grew by a shard's
garbage per shard. Nested uses (an Ed-Fi send inside a delivery shard) neither freeze again
nor unfreeze: the outermost does both. A heap a process froze for good before the step (its
start-up heap: :func:`paused` with ``freeze``) stays frozen: the step's end does not unfreeze
it. Whether one is frozen is known without asking ``gc.get_freeze_count`` when this process
froze it (the count walks every frozen object: 60 ms for a night's half-million, at each
step's start); a heap frozen by someone else (Airflow, before it forks) is counted.

:func:`paused` keeps the collector from running at all while a process imports what it
starts with (Airflow, pandas, Great Expectations): imports make hundreds of thousands of
long-lived objects and almost no garbage, yet every time the heap grows by a quarter a full
collection walks all of it (eight of them cost a small night's task process about a second).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_kept_frozen = False  # the outermost use found a heap frozen for good: it leaves it so
_frozen_for_good = False  # paused(freeze=True) froze this process's start-up heap


@contextmanager
def frozen() -> Iterator[None]:
    """Keep the collector off what the process holds now until the outermost use ends, and
    collect what the step left behind when it does."""
    global _depth, _kept_frozen
    with _lock:
        _depth += 1
        if _depth == 1:
            _kept_frozen = _frozen_for_good or gc.get_freeze_count() > 0
            gc.freeze()
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.collect()  # the step's own garbage: the frozen heap is not walked
                if not _kept_frozen:
                    gc.unfreeze()


@contextmanager
def paused(*, freeze: bool = False) -> Iterator[None]:
    """No collection while the block runs (start-up imports); the collector is re-enabled
    after, if it was enabled before. ``freeze``: then also move what is alive out of the
    collector's sight for good (for a process's start-up heap only, which lives as long as
    the process: cyclic garbage among it is never collected, and imports leave next to none).
    Objects freed by reference counting are freed as always."""
    global _frozen_for_good
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
            _frozen_for_good = True
        if was_enabled:
            gc.enable()
