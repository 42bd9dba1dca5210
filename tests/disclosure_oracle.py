"""An attacker's view of a published count table, written from the disclosure-avoidance
guidance (PTAC FAQ on disclosure avoidance; NCES SLDS Technical Brief 3), not from our code.

It imports nothing of the project. ``true_cells`` counts child records with pandas groupby
(every margin included); ``feasible_ranges`` takes only what a reader has, the published table
and what the reader knows about hidden cells (a lower bound per cell), and finds each hidden
cell's least and greatest value by linear programming over every line equation (the members
of a line add up to its total).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations, product
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linprog

TOTAL = "Total"
Labels = tuple[Any, ...]


def true_cells(records: pd.DataFrame, dims: Sequence[str]) -> dict[Labels, int]:
    """Every cell of the full cross-classification with its margins, from child records
    (one row per child). Cells no child falls in are absent (their count is 0)."""
    cells: dict[Labels, int] = {}
    for size in range(len(dims) + 1):
        for kept in combinations(dims, size):
            if kept:
                groups = records.groupby(list(kept)).size()
                for key, n in groups.items():
                    values = key if isinstance(key, tuple) else (key,)
                    label = dict(zip(kept, values, strict=True))
                    cells[tuple(label.get(d, TOTAL) for d in dims)] = int(n)
            else:
                cells[(TOTAL,) * len(dims)] = len(records)
    return cells


def published(table: pd.DataFrame, dims: Sequence[str], count: str) -> dict[Labels, int | None]:
    """The published table as cell labels -> count (None where hidden)."""
    out: dict[Labels, int | None] = {}
    for row in table.itertuples(index=False):
        labels = tuple(getattr(row, d) for d in dims)
        value = getattr(row, count)
        out[labels] = None if value is None or pd.isna(value) or value == "" else int(value)
    return out


def lines(cells: Sequence[Labels], dims: Sequence[str]) -> list[tuple[list[Labels], Labels]]:
    """Every line: the members along one dimension (others fixed) and the total cell."""
    out = []
    present = set(cells)
    for axis in range(len(dims)):
        others = {c[:axis] + c[axis + 1 :] for c in cells}
        for rest in others:
            members = [c for c in cells if c[axis] != TOTAL and c[:axis] + c[axis + 1 :] == rest]
            total = (*rest[:axis], TOTAL, *rest[axis:])
            if members and total in present:
                out.append((members, total))
    return out


def feasible_ranges(
    shown: dict[Labels, int | None],
    dims: Sequence[str],
    lower: Callable[[Labels], int],
) -> dict[Labels, tuple[float, float]]:
    """For each hidden cell, its min and max over all fillings with every hidden cell at least
    its ``lower`` bound that agree with every published cell and line equation."""
    unknown = [c for c, v in shown.items() if v is None]
    index = {c: n for n, c in enumerate(unknown)}
    rows, rhs = [], []
    for members, total in lines(list(shown), dims):
        coefficients = np.zeros(len(unknown))
        constant = 0.0
        for cell, sign in [*((m, 1.0) for m in members), (total, -1.0)]:
            if cell in index:
                coefficients[index[cell]] += sign
            else:
                constant += sign * float(shown[cell] or 0)
        if coefficients.any():
            rows.append(coefficients)
            rhs.append(-constant)
    bounds = [(float(lower(c)), None) for c in unknown]
    ranges: dict[Labels, tuple[float, float]] = {}
    matrix = np.array(rows) if rows else None
    for n, cell in enumerate(unknown):
        objective = np.zeros(len(unknown))
        objective[n] = 1.0
        low = linprog(objective, A_eq=matrix, b_eq=rhs or None, bounds=bounds, method="highs")
        high = linprog(-objective, A_eq=matrix, b_eq=rhs or None, bounds=bounds, method="highs")
        assert low.status == 0, f"the reader's constraints are infeasible at {cell}"
        ranges[cell] = (low.fun, -high.fun if high.status == 0 else float("inf"))
    return ranges


def records_from_blocks(dims: dict[str, list[str]], sizes: Sequence[int]) -> pd.DataFrame:
    """Child records: ``sizes[k]`` children in the k-th combination of ``dims`` (last fastest)."""
    combos = list(product(*dims.values()))
    rows = [combo for combo, n in zip(combos, sizes, strict=True) for _ in range(n)]
    return pd.DataFrame(rows, columns=list(dims))
