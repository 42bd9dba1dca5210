"""The garbage collector kept off a long step's start-up heap.

``gc.freeze`` moves every object alive now out of the collector's sight, so that the full
collections a step's own garbage triggers walk only the step's objects; ``gc.unfreeze`` hands
them back. Nothing is kept alive that would otherwise be freed: frozen objects are only not
examined for cycles. Nested uses (an Ed-Fi send inside a delivery shard) unfreeze once, when
the outermost ends.
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
