"""Vectorized drawing helpers on numpy's seeded ``Generator``.

A table is built as ``Columns``: column name to an array (or list) of equal length, ids
included, so it can be inserted in bulk without a round trip per row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np

Columns = dict[str, np.ndarray]
DAY = np.timedelta64(1, "D")


def streams(seed: int, names: Sequence[str]) -> dict[str, np.random.Generator]:
    """One independent generator per name, all from ``seed``: changing how one table is drawn
    does not shift the draws of another."""
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {
        name: np.random.Generator(np.random.PCG64(s))
        for name, s in zip(names, children, strict=True)
    }


def day(value: dt.date | str) -> np.datetime64:
    """A date as ``datetime64[D]``."""
    return np.datetime64(value, "D")


def quotas(n: int, weights: Sequence[float], *, at_least_one: bool = False) -> np.ndarray:
    """Exact counts for ``n`` items split by ``weights`` (largest remainder); with
    ``at_least_one`` every share gets one item first when ``n`` allows."""
    p = np.asarray(weights, dtype=float)
    p = p / p.sum()
    floor = np.zeros(len(p), dtype=np.int64)
    if at_least_one and n >= len(p):
        floor += 1
    rest = n - int(floor.sum())
    exact = p * rest
    counts = floor + np.floor(exact).astype(np.int64)
    short = n - int(counts.sum())
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    counts[order[:short]] += 1
    return counts


def shuffled_labels(rng: np.random.Generator, n: int, weights: Sequence[float]) -> np.ndarray:
    """``n`` category indexes with exact quotas (each category present when ``n`` allows),
    in random order."""
    labels = np.repeat(np.arange(len(weights)), quotas(n, weights, at_least_one=True))
    return rng.permutation(labels)


def choose(rng: np.random.Generator, n: int, weights: Sequence[float]) -> np.ndarray:
    """``n`` independent category indexes drawn with probabilities ``weights``."""
    p = np.asarray(weights, dtype=float)
    return rng.choice(len(p), size=n, p=p / p.sum())


def between(rng: np.random.Generator, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """A date uniformly in ``[low, high]`` per element (``high`` is raised to ``low``)."""
    low = np.asarray(low, dtype="M8[D]")
    span = np.maximum((np.asarray(high, dtype="M8[D]") - low).astype(np.int64), 0)
    return low + (rng.random(low.shape) * (span + 1)).astype(np.int64) * DAY


def offsets(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """``n`` day offsets uniformly in ``[low, high]`` as ``timedelta64[D]``."""
    return rng.integers(low, high + 1, size=n) * DAY


def pick(rng: np.random.Generator, options: Sequence[str], n: int) -> np.ndarray:
    """``n`` values drawn uniformly from ``options`` (an object array of str)."""
    return np.asarray(options, dtype=object)[rng.integers(0, len(options), size=n)]


def objects(values: Sequence[object]) -> np.ndarray:
    """A 1-d object array of ``values`` as they are (lists stay list elements)."""
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = value
    return out


def where(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` where ``mask``, else ``None`` (an object array for nullable columns)."""
    out = np.full(len(mask), None, dtype=object)
    out[mask] = np.asarray(values, dtype=object)[mask]
    return out


def completed_years(birth: np.ndarray, on: dt.date) -> np.ndarray:
    """Age in completed years on ``on`` for each ``datetime64[D]`` birth date."""
    years = birth.astype("M8[Y]").astype(np.int64) + 1970
    months = birth.astype("M8[M]").astype(np.int64) % 12 + 1
    days = (birth - birth.astype("M8[M]")).astype(np.int64) + 1
    before = (months > on.month) | ((months == on.month) & (days > on.day))
    return on.year - years - before.astype(np.int64)
