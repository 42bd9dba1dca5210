"""The garbage collector kept off a long step's start-up heap.

``gc.freeze`` moves every object alive now out of the collector's sight, so that the full
collections a step's own garbage triggers walk only the step's objects; ``gc.unfreeze`` hands
them back. Nothing is kept alive that would otherwise be freed: frozen objects are only not
examined for cycles. Nested uses (an Ed-Fi send inside a delivery shard) unfreeze once, when
the outermost ends.

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


@contextmanager
def frozen() -> Iterator[None]:
    """Keep the collector off what the process holds now until the outermost use ends."""
    global _depth
    with _lock:
        _depth += 1
        gc.freeze()
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.unfreeze()


@contextmanager
def paused(*, freeze: bool = False) -> Iterator[None]:
    """No collection while the block runs (start-up imports); the collector is re-enabled
    after, if it was enabled before. ``freeze``: then also move what is alive out of the
    collector's sight for good (for a process's start-up heap only, which lives as long as
    the process: cyclic garbage among it is never collected, and imports leave next to none).
    Objects freed by reference counting are freed as always."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was_enabled:
            gc.enable()
