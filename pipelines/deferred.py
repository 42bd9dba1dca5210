"""Modules a library imports eagerly but this process may never use, loaded on first use.

:func:`defer` puts a stand-in (:class:`Deferred`) in ``sys.modules`` for each module named
that is not imported yet. Importing the name then finds the stand-in; the real module is
imported (replacing the stand-in, in ``sys.modules`` and on its package) the first time an
attribute of it is read, so code that uses it still gets it, later. The stand-in's
``__spec__`` is the real module's (found, not loaded): the import system reads only
instance attributes of a loaded module, so ``import name`` and ``import name as alias``
return the stand-in without loading it, for a top-level module too (unlike
``importlib.util.LazyLoader``, whose module loads on any attribute read, ``__spec__``
included). A module already imported, or not installed, is left alone.

What is deferred, and why it is safe, is said where :func:`defer` is called:
:mod:`pipelines.quality.context` (what Great Expectations imports for expectations we never
run) and :mod:`pipelines.dags_test` (what Airflow's CLI imports for tables it does not print
in ``dags test``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from collections.abc import Iterable
from typing import Any

_LOCK = threading.RLock()


class Deferred(types.ModuleType):
    """Stands in ``sys.modules`` for a module until an attribute of it is first read; then the
    real module is imported (replacing the stand-in) and the attribute read from it."""

    def __getattr__(self, attribute: str) -> Any:
        name = self.__name__
        with _LOCK:
            if sys.modules.get(name) is self:
                del sys.modules[name]
                parent, _, child = name.rpartition(".")
                if parent and getattr(sys.modules.get(parent), child, None) is self:
                    delattr(sys.modules[parent], child)
            module = importlib.import_module(name)
        return getattr(module, attribute)


def defer(names: Iterable[str]) -> list[str]:
    """Put a :class:`Deferred` stand-in for each of ``names`` not imported yet (a package of
    one is imported, as ``import package.module`` would); the names it deferred."""
    deferred = []
    with _LOCK:
        for name in names:
            if name in sys.modules:
                continue
            parent, _, child = name.rpartition(".")
            if parent:
                importlib.import_module(parent)
            spec = importlib.util.find_spec(name)
            if spec is None:
                continue
            stand_in = Deferred(name)
            stand_in.__spec__ = spec
            sys.modules[name] = stand_in
            if parent:
                setattr(sys.modules[parent], child, stand_in)
            deferred.append(name)
    return deferred
