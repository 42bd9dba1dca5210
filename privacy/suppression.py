"""Small-cell suppression of aggregate count tables, with complementary suppression.

A count table is a full cross-classification: one cell per combination of the dimension
values, plus every margin (the totals over any set of dimensions, down to the grand total),
marked ``Total`` in the dimensions summed over. Margins are assumed published or known (a
program's enrollment is public), so protection always counts them, even with
``margins=False`` (which only leaves them out of the returned table).

What a reader knows decides what a hidden cell gives away (PTAC, "Frequently Asked
Questions—Disclosure Avoidance"; NCES, "Statistical Methods for Protecting Personally
Identifiable Information in Aggregate Reporting", SLDS Technical Brief 3): the published cells,
every line's sum, that counts are whole and never negative, and the table's own habits.
So each hidden cell has a *lower bound the reader knows*:

- with zeros shown (the default), a hidden cell is known to be at least 1;
- with ``suppress_zeros=True`` and a dimension's categories listed only when they occur, a
  hidden margin of one category (all other dimensions ``Total``) is still at least 1;
- with ``suppress_zeros=True`` and a declared ``domains`` entry (every category listed,
  zeros included), the bound is 0: a hidden cell may be anything from 0 up.

1. **Primary**: a cell (interior or margin) with ``0 < n < threshold`` is hidden (threshold
   10 by default: the most common state minimum cell size); with ``suppress_zeros=True``
   zeros are hidden too (``0 <= n < threshold``). A shown zero says no child of the group has
   that attribute, and, when zeros are always shown, that every hidden cell is at least 1.
2. **Complementary**: every line of the table (the cells along one dimension with the others
   fixed, together with its total) is one linear equation. A line with exactly one hidden
   cell gives it away; so does a line whose hidden cells add up to exactly their known lower
   bounds ("white 20, Total 22" with two hidden categories known to be at least 1: both are
   1). And when the total is shown, ``total - shown`` publishes the sum of the hidden cells:
   it must not be a small count itself (below the threshold), so that every hidden cell's
   range is wide, not just more than one value. While any line is like that, its smallest
   shown non-zero cell is hidden too. This
   repeats across every dimension and level of totals until stable. A zero is never used as
   a complement (a hidden zero would only pin the others).
3. **No derivation across lines**: lines that are safe one by one can still pin a cell
   jointly (a "bridge" between two groups of hidden cells). Each hidden cell is checked
   against the equations (the null space of the equations restricted to hidden cells, per
   connected group) and, when some hidden cell sits at its known lower bound, by linear
   programming (a closed form for one-way tables, scipy for the rest): a cell whose feasible
   range is a single value is protected with one more cell.

**Attribute disclosure** (a group's line showing one category that holds all its children,
"everyone in this program is female") is prevented only with ``suppress_zeros=True``: the
other categories are then hidden zeros whose sum a reader would know to be 0, so step 2 hides
that category as well, at any group size. With zeros shown, "female 15, male 0" says it
outright; aggregate outputs therefore hide zeros and list whole domains
(``pipelines/submission/aggregate.py``), and publish no line for a group below the threshold.

The result names cells by dimension values (category labels, never a child) and says for
each hidden cell why: primary, or complementary and for which line.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise, product
from typing import Any, Literal

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_THRESHOLD",
    "TOTAL",
    "SuppressedCell",
    "SuppressionResult",
    "WideSuppression",
    "code_percentage",
    "determined_cells",
    "pinned_at_bounds",
    "pinned_zeros",
    "suppress",
    "suppress_line",
    "suppress_wide",
]

DEFAULT_THRESHOLD = 10
TOTAL = "Total"
_TOLERANCE = 1e-9

Cell = tuple[int, ...]


@dataclass(frozen=True)
class SuppressedCell:
    """One hidden cell: its dimension values (``Total`` on a margin), why, and the rule."""

    cell: tuple[tuple[str, Any], ...]
    reason: Literal["primary", "complementary"]
    rule: str

    def as_dict(self) -> dict[str, Any]:
        """The cell as a flat mapping: dimension values, ``reason`` and ``rule``."""
        return {**dict(self.cell), "reason": self.reason, "rule": self.rule}


@dataclass
class SuppressionResult:
    """The table to publish (``count`` None where hidden), and what was hidden and why."""

    table: pd.DataFrame
    suppressed: list[SuppressedCell] = field(default_factory=list)
    threshold: int = DEFAULT_THRESHOLD


@dataclass
class WideSuppression:
    """A wide table with its ``Total`` row and column, None where hidden, and the mask."""

    table: pd.DataFrame
    mask: pd.DataFrame
    suppressed: list[SuppressedCell] = field(default_factory=list)
    threshold: int = DEFAULT_THRESHOLD


class _Cube:
    """Counts over every dimension value plus a ``Total`` position (last) per dimension."""

    def __init__(self, values: np.ndarray, dims: Sequence[str], levels: Sequence[list[Any]]):
        self.values = values
        self.dims = list(dims)
        self.levels = [list(level) for level in levels]
        self.hidden = np.zeros(values.shape, dtype=bool)
        self.lower = np.zeros(values.shape, dtype=np.int64)
        self.why: dict[Cell, tuple[Literal["primary", "complementary"], str]] = {}

    def label(self, cell: Cell) -> tuple[tuple[str, Any], ...]:
        return tuple(
            (dim, TOTAL if i == len(level) else level[i])
            for dim, level, i in zip(self.dims, self.levels, cell, strict=True)
        )

    def describe(self, cell: Cell) -> str:
        return ", ".join(f"{dim}={value}" for dim, value in self.label(cell))

    def line(self, axis: int, cell: Cell) -> list[Cell]:
        """The cells of the line along ``axis`` through ``cell`` (members, then the total)."""
        return [(*cell[:axis], i, *cell[axis + 1 :]) for i in range(self.values.shape[axis])]

    def hide(self, cell: Cell, reason: Literal["primary", "complementary"], rule: str) -> None:
        if not self.hidden[cell]:
            self.hidden[cell] = True
            self.why[cell] = (reason, rule)

    def candidates(self, cells: Sequence[Cell]) -> list[Cell]:
        """Shown non-zero cells among ``cells``, best complement (smallest) first."""
        shown = [c for c in cells if not self.hidden[c] and self.values[c] > 0]
        return sorted(shown, key=lambda c: (int(self.values[c]), c))


def _levels(series: pd.Series) -> list[Any]:
    unique = list(pd.unique(series))
    try:
        return sorted(unique)
    except TypeError:
        return unique


def _build(
    counts: pd.DataFrame, dims: Sequence[str], count: str, domains: Mapping[str, Sequence[Any]]
) -> _Cube:
    levels = [list(domains[d]) if d in domains else _levels(counts[d]) for d in dims]
    values = np.zeros([len(level) + 1 for level in levels], dtype=np.int64)
    codes = tuple(
        pd.Categorical(counts[d], categories=level).codes
        for d, level in zip(dims, levels, strict=True)
    )
    np.add.at(values, codes, counts[count].to_numpy(dtype=np.int64))
    for axis in range(len(dims)):
        total: list[Any] = [slice(None)] * len(dims)
        members: list[Any] = [slice(None)] * len(dims)
        total[axis], members[axis] = -1, slice(0, -1)
        values[tuple(total)] = values[tuple(members)].sum(axis=axis)
    return _Cube(values, dims, levels)


def _lower_bounds(cube: _Cube, suppress_zeros: bool, declared: set[str]) -> np.ndarray:
    """The least value a reader knows each cell has, were it hidden (module docstring)."""
    if not suppress_zeros:
        return np.ones(cube.values.shape, dtype=np.int64)
    lower = np.zeros(cube.values.shape, dtype=np.int64)
    for axis, dim in enumerate(cube.dims):
        if dim in declared:
            continue
        # a category listed because it occurs: its margin over every other dimension is >= 1
        index: list[Any] = [-1] * cube.values.ndim
        index[axis] = slice(0, -1)
        lower[tuple(index)] = 1
        lower[(-1,) * cube.values.ndim] = 1
    return lower


def _two_rule(cube: _Cube, threshold: int) -> None:
    """Until stable: a line with exactly one hidden cell, whose hidden cells add up to their
    known lower bounds (each would be pinned at its bound), or whose hidden cells add up to
    less than ``threshold`` while its total is shown (``total - shown`` would publish a small
    count), gets one more: the smallest non-zero shown cell of the line."""
    changed = True
    while changed:
        changed = False
        for axis in range(cube.values.ndim):
            hidden = cube.hidden.sum(axis=axis)
            total = np.where(cube.hidden, cube.values, 0).sum(axis=axis)
            slack = np.where(cube.hidden, cube.values - cube.lower, 0).sum(axis=axis)
            total_shown = ~np.take(cube.hidden, -1, axis=axis)
            small = total_shown & (total < threshold)
            for rest in np.argwhere((hidden == 1) | ((hidden > 0) & ((slack == 0) | small))):
                anchor = (*rest[:axis], 0, *rest[axis:])
                cells = cube.line(axis, tuple(int(i) for i in anchor))
                inside = [c for c in cells if cube.hidden[c]]
                at_bounds = all(cube.values[c] == cube.lower[c] for c in inside)
                hidden_sum = sum(int(cube.values[c]) for c in inside)
                too_small = not cube.hidden[cells[-1]] and hidden_sum < threshold
                if len(inside) != 1 and not at_bounds and not too_small:
                    continue  # fixed earlier in this pass
                choice = cube.candidates(cells)
                if not choice:
                    continue
                what = (
                    "second hidden cell"
                    if len(inside) == 1
                    else "hidden cell above its bound"
                    if at_bounds
                    else "hidden cell making the hidden sum at least the threshold"
                )
                rule = (
                    f"{what} of the {cube.dims[axis]} line through "
                    f"{cube.describe(inside[0])} (its total is published)"
                )
                cube.hide(choice[0], "complementary", rule)
                changed = True


def _equations(
    hidden: np.ndarray, values: np.ndarray
) -> tuple[list[Cell], list[list[tuple[int, int]]]]:
    """Hidden cells and, per line holding any, its (cell index, coefficient) terms."""
    cells = [tuple(int(i) for i in c) for c in np.argwhere(hidden)]
    index = {c: n for n, c in enumerate(cells)}
    rows: list[list[tuple[int, int]]] = []
    seen: set[tuple[int, Cell]] = set()
    for cell in cells:
        for axis in range(values.ndim):
            key = (axis, (*cell[:axis], -1, *cell[axis + 1 :]))
            if key in seen:
                continue
            seen.add(key)
            size = values.shape[axis]
            terms = []
            for i in range(size):
                member = (*cell[:axis], i, *cell[axis + 1 :])
                if member in index:
                    terms.append((index[member], -1 if i == size - 1 else 1))
            rows.append(terms)
    return cells, rows


def determined_cells(hidden: np.ndarray, values: np.ndarray) -> list[Cell]:
    """Hidden cells whose value the published cells and line totals fix exactly.

    Solves per connected group of hidden cells: a cell is fixed when every vector of the null
    space of the group's equations is zero at that cell.
    """
    cells, rows = _equations(hidden, values)
    parent = list(range(len(cells)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for terms in rows:
        for (a, _), (b, _) in pairwise(terms):
            parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for i in range(len(cells)):
        groups.setdefault(root(i), []).append(i)
    fixed: list[Cell] = []
    for members in groups.values():
        position = {m: n for n, m in enumerate(members)}
        group_rows = [t for t in rows if t and t[0][0] in position]
        matrix = np.zeros((len(group_rows), len(members)))
        for r, terms in enumerate(group_rows):
            for i, coefficient in terms:
                matrix[r, position[i]] = coefficient
        _, singular, vt = np.linalg.svd(matrix, full_matrices=True)
        rank = int((singular > _TOLERANCE * max(matrix.shape)).sum())
        null = vt[rank:]
        free = (
            (np.abs(null) > _TOLERANCE).any(axis=0) if len(null) else np.zeros(len(members), bool)
        )
        fixed += [cells[m] for m, is_free in zip(members, free, strict=True) if not is_free]
    return sorted(fixed)


def pinned_at_bounds(hidden: np.ndarray, values: np.ndarray, lower: np.ndarray) -> list[Cell]:
    """Hidden cells that the line equations and the known lower bounds pin to one value.

    Only cells sitting at their bound can make a cell the equations leave free pinned, so with
    none there nothing is. A one-way table has a closed form: with the total shown, the
    hidden cells share ``total - shown``, and each ranges over its bound plus the slack above
    the sum of all bounds (pinned when the slack is 0, or when only one cell is hidden). Other
    tables get a small linear program per hidden cell: can it move up or down along the
    equations without any cell at its bound going below it?
    """
    at_bound = hidden & (values == lower)
    if not at_bound.any():
        return []
    if values.ndim == 1:
        members = hidden[:-1]
        if hidden[-1] or not members.any():
            return []  # a hidden total leaves the members free upwards
        slack = int((values[:-1] - lower[:-1])[members].sum())
        if slack > 0 and members.sum() > 1:
            return []
        return [(int(i),) for i in np.flatnonzero(members)]
    from scipy.optimize import linprog  # only for tables of two dimensions or more

    cells, rows = _equations(hidden, values)
    matrix = np.zeros((len(rows), len(cells)))
    for r, terms in enumerate(rows):
        for i, coefficient in terms:
            matrix[r, i] = coefficient
    bounds = [(0.0, 1.0) if values[c] == lower[c] else (-1.0, 1.0) for c in cells]
    pinned = []
    for n, cell in enumerate(cells):
        moves = False
        for sign in (-1.0, 1.0):
            objective = np.zeros(len(cells))
            objective[n] = sign
            best = linprog(objective, A_eq=matrix, b_eq=np.zeros(len(rows)), bounds=bounds)
            if best.status == 0 and -best.fun > _TOLERANCE:
                moves = True
                break
        if not moves:
            pinned.append(cell)
    return pinned


def pinned_zeros(hidden: np.ndarray, values: np.ndarray) -> list[Cell]:
    """Hidden zero cells that non-negativity pins to 0 (the bound 0 for every cell)."""
    lower = np.zeros(values.shape, dtype=np.int64)
    return [c for c in pinned_at_bounds(hidden, values, lower) if values[c] == 0]


def _exposed(hidden: np.ndarray, values: np.ndarray, lower: np.ndarray) -> list[Cell]:
    return sorted(
        set(determined_cells(hidden, values)) | set(pinned_at_bounds(hidden, values, lower))
    )


def _protect_fixed(cube: _Cube) -> bool:
    """Hide one more cell to free the first fixed cell; False when none is fixed."""
    fixed = _exposed(cube.hidden, cube.values, cube.lower)
    if not fixed:
        return False
    target = fixed[0]
    near = {c for axis in range(cube.values.ndim) for c in cube.line(axis, target)}
    choice = cube.candidates(sorted(near))
    if not choice:  # every neighbour hidden already: widen to any shown cell
        choice = cube.candidates([tuple(int(i) for i in c) for c in np.argwhere(~cube.hidden)])
    if not choice:  # every non-zero cell hidden: each can still grow with its totals
        return False
    pick = choice[0]
    for candidate in choice[:25]:
        trial = cube.hidden.copy()
        trial[candidate] = True
        if target not in _exposed(trial, cube.values, cube.lower):
            pick = candidate
            break
    rule = f"{cube.describe(target)} could be derived from the published cells and totals"
    cube.hide(pick, "complementary", rule)
    return True


def suppress(
    counts: pd.DataFrame,
    dimensions: Sequence[str] | None = None,
    *,
    count: str = "count",
    threshold: int = DEFAULT_THRESHOLD,
    margins: bool = True,
    suppress_zeros: bool = False,
    total_label: str = TOTAL,
    domains: Mapping[str, Sequence[Any]] | None = None,
) -> SuppressionResult:
    """Suppress small cells of a long count table (dimension columns + ``count``).

    Returns every combination of the dimension values (absent ones are zero cells), plus the
    margins when ``margins``, with ``count`` None where hidden, a ``suppressed`` flag and a
    ``suppression`` reason (``primary``/``complementary``/None). Rows with the same dimension
    values are added together. ``domains`` declares a dimension's categories: all of them are
    listed, in that order, zeros included (a value outside its domain is refused).
    """
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    dims = list(dimensions) if dimensions is not None else [c for c in counts if c != count]
    if not dims:
        raise ValueError("a count table needs at least one dimension column")
    missing = [c for c in (*dims, count) if c not in counts]
    if missing:
        raise ValueError(f"count table lacks column(s): {', '.join(missing)}")
    if counts[dims].isna().any().any():
        raise ValueError("dimension values must not be missing")
    numbers = pd.to_numeric(counts[count], errors="coerce")
    if numbers.isna().any() or (numbers < 0).any() or (numbers % 1 != 0).any():
        raise ValueError(f"column {count} must hold non-negative whole numbers")
    for dim in dims:
        if (counts[dim] == total_label).any():
            raise ValueError(f"dimension {dim} already uses the label {total_label!r}")
    domains = dict(domains or {})
    for dim, domain in domains.items():
        if dim not in dims:
            raise ValueError(f"a domain is declared for {dim}, which is not a dimension")
        if len(set(domain)) != len(domain) or total_label in domain:
            raise ValueError(f"the domain of {dim} repeats a category or uses {total_label!r}")
        if not counts[dim].isin(list(domain)).all():
            raise ValueError(f"dimension {dim} has values outside its declared domain")
    frame = counts.assign(**{count: numbers.astype("int64")})
    cube = _build(frame, dims, count, domains)
    cube.lower = _lower_bounds(cube, suppress_zeros, set(domains))
    low = 0 if suppress_zeros else 1
    rule = f"{low} <= n < {threshold}" if suppress_zeros else f"0 < n < {threshold}"
    for cell in np.argwhere((cube.values >= low) & (cube.values < threshold)):
        cube.hide(tuple(int(i) for i in cell), "primary", rule)
    _two_rule(cube, threshold)
    while _protect_fixed(cube):
        _two_rule(cube, threshold)
    return SuppressionResult(_table(cube, count, margins, total_label), _listing(cube), threshold)


def suppress_line(
    counts: Mapping[Any, int], domain: Sequence[Any], *, threshold: int = DEFAULT_THRESHOLD
) -> list[int | None]:
    """One line over a declared domain, zeros hidden: the rule of aggregate outputs.

    The same as ``suppress`` with ``suppress_zeros=True`` and ``domains`` on a one-way table,
    without pandas (a program's breakdowns are many small lines). Returns the published count
    of each category of ``domain`` in order, then the total; None where hidden.
    """
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    outside = [key for key in counts if key not in domain]
    if outside or len(set(domain)) != len(domain):
        raise ValueError("a line has values outside its declared domain, or a repeated one")
    members = [int(counts.get(category, 0)) for category in domain]
    if any(n < 0 for n in members):
        raise ValueError("counts must be non-negative whole numbers")
    cube = _Cube(np.array([*members, sum(members)], dtype=np.int64), ["category"], [list(domain)])
    for cell in np.argwhere(cube.values < threshold):
        cube.hide(tuple(int(i) for i in cell), "primary", f"0 <= n < {threshold}")
    _two_rule(cube, threshold)
    while _protect_fixed(cube):
        _two_rule(cube, threshold)
    return [None if hidden else int(n) for n, hidden in zip(cube.values, cube.hidden, strict=True)]


def _table(cube: _Cube, count: str, margins: bool, total_label: str) -> pd.DataFrame:
    sizes = [len(level) for level in cube.levels]
    ranges = [range(n + 1) if margins else range(n) for n in sizes]
    records: list[dict[Hashable, Any]] = []
    shown: list[int | None] = []
    reasons: list[str | None] = []
    for cell in product(*ranges):
        hidden = bool(cube.hidden[cell])
        records.append(
            {
                dim: total_label if i == n else level[i]
                for dim, level, i, n in zip(cube.dims, cube.levels, cell, sizes, strict=True)
            }
        )
        shown.append(None if hidden else int(cube.values[cell]))
        reasons.append(cube.why[cell][0] if hidden else None)
    table = pd.DataFrame.from_records(records, columns=cube.dims)
    table[count] = pd.Series(shown, index=table.index, dtype=object)
    table["suppressed"] = pd.Series([r is not None for r in reasons], index=table.index, dtype=bool)
    table["suppression"] = pd.Series(reasons, index=table.index, dtype=object)
    return table


def _listing(cube: _Cube) -> list[SuppressedCell]:
    return [
        SuppressedCell(cube.label(cell), reason, rule)
        for cell, (reason, rule) in sorted(cube.why.items())
    ]


def suppress_wide(
    frame: pd.DataFrame,
    *,
    threshold: int = DEFAULT_THRESHOLD,
    suppress_zeros: bool = False,
    total_label: str = TOTAL,
) -> WideSuppression:
    """Suppress a wide count table (rows x columns); adds the ``Total`` row and column."""
    rows = frame.index.name or "row"
    columns = frame.columns.name or "column"
    long = frame.rename_axis(index=rows, columns=columns).stack().rename("count").reset_index()
    result = suppress(
        long,
        [rows, columns],
        threshold=threshold,
        suppress_zeros=suppress_zeros,
        total_label=total_label,
    )
    table = result.table
    row_order = [*_levels(long[rows]), total_label]
    column_order = [*_levels(long[columns]), total_label]
    mask = (
        table.pivot(index=rows, columns=columns, values="suppressed")
        .reindex(index=row_order, columns=column_order)
        .astype(bool)
    )
    values = (
        table.pivot(index=rows, columns=columns, values="count")
        .reindex(index=row_order, columns=column_order)
        .astype(object)
    )
    values = values.mask(mask, None).astype(object)
    return WideSuppression(values, mask, result.suppressed, threshold)


def code_percentage(
    numerator: int | None,
    denominator: int | None,
    *,
    threshold: int = DEFAULT_THRESHOLD,
    bottom: float = 5.0,
    top: float = 95.0,
    decimals: int = 0,
) -> str | None:
    """A share for publication, top/bottom coded: ``"<5%"``, ``"42%"``, ``">95%"``.

    None (not published) when the numerator or denominator is hidden (None), or the
    denominator is below ``threshold``: a published share of a hidden count would give the
    count back, and a share near 0% or 100% says that (nearly) every child of the group
    shares the attribute, so the extremes are coded.
    """
    if numerator is None or denominator is None or denominator < max(threshold, 1):
        return None
    if not 0 <= numerator <= denominator:
        raise ValueError("a share needs 0 <= numerator <= denominator")
    share = 100.0 * numerator / denominator
    if share < bottom:
        return f"<{bottom:g}%"
    if share > top:
        return f">{top:g}%"
    return f"{share:.{decimals}f}%"
