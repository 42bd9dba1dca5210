"""The garbage collector kept off a long step's start-up heap.

``gc.freeze`` moves every object alive now out of the collector's sight, so that the full
collections a step's own garbage triggers walk only the step's objects. When the outermost use
ends, the step's own cyclic garbage is collected first (a walk of the step's objects only: the
heap is still frozen), then ``gc.unfreeze`` hands the heap back. Without that collection, the
garbage a step left (tens of thousands of objects holding its frames) would be frozen again by
the next step in the same process and never freed: a 1,000,000-child night grew by a shard's
garbage per shard. Nested uses (an Ed-Fi send inside a delivery shard) neither freeze again
nor unfreeze: the outermost does both.
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
    """Keep the collector off what the process holds now until the outermost use ends, and
    collect what the step left behind when it does."""
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1:
            gc.freeze()
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.collect()  # the step's own garbage: the frozen heap is not walked
                gc.unfreeze()
