"""Small-cell and complementary suppression: table cases and properties over random tables."""

from __future__ import annotations

from itertools import product
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privacy.suppression import (
    TOTAL,
    code_percentage,
    determined_cells,
    pinned_zeros,
    suppress,
    suppress_wide,
)


def long(dims: dict[str, list[Any]], counts: list[int]) -> pd.DataFrame:
    """A long count table over the cross product of ``dims`` (last dimension fastest)."""
    rows = [dict(zip(dims, combo, strict=True)) for combo in product(*dims.values())]
    return pd.DataFrame(rows).assign(count=counts)


def hidden(result_table: pd.DataFrame, dims: list[str]) -> set[tuple[Any, ...]]:
    flagged = result_table[result_table["suppressed"]]
    return {tuple(row) for row in flagged[dims].itertuples(index=False)}


# -- table-driven cases --------------------------------------------------------------------

CASES = [
    pytest.param(
        {"race": ["a", "b", "c"]}, [12, 20, 30], {}, set(), id="no-small-cell-hides-nothing"
    ),
    pytest.param(
        {"race": ["a", "b", "c"]},
        [3, 20, 30],
        {},
        {("a",), ("b",)},
        id="one-dim-primary-plus-smallest",
    ),
    pytest.param(
        {"race": ["a", "b", "c"]},
        [0, 20, 30],
        {},
        set(),
        id="zeros-are-shown",
    ),
    pytest.param(
        {"race": ["a", "b", "c"]},
        [0, 20, 30],
        {"suppress_zeros": True},
        {("a",), ("b",)},
        id="zeros-hidden-on-request",
    ),
    pytest.param(
        {"race": ["a", "b"]},
        [2, 3],
        {},
        {("a",), ("b",), (TOTAL,)},
        id="small-total-is-hidden-too",
    ),
    pytest.param(
        {"race": ["a", "b", "c"]},
        [7, 8, 30],
        {"threshold": 5},
        set(),
        id="threshold-is-a-setting",
    ),
    pytest.param(
        {"program": ["A", "B"], "race": ["x", "y", "z"]},
        [3, 25, 40, 12, 30, 50],
        {},
        {("A", "x"), ("A", "y"), ("B", "x"), ("B", "y")},
        id="two-dims-hide-a-rectangle",
    ),
    pytest.param(
        {"program": ["A", "B"], "race": ["x", "y"]},
        [3, 0, 30, 40],
        {},
        {("A", "x"), ("A", TOTAL), ("B", "x"), ("B", TOTAL)},
        id="row-of-zeros-protects-with-totals",
    ),
]


@pytest.mark.parametrize(("dims", "counts", "options", "expected"), CASES)
def test_suppression_cases(
    dims: dict[str, list[Any]], counts: list[int], options: dict[str, Any], expected: set[Any]
) -> None:
    result = suppress(long(dims, counts), **options)
    assert hidden(result.table, list(dims)) == expected
    assert_protected(result.table, list(dims), result.threshold, options)
    reasons = {s.reason for s in result.suppressed}
    assert len(result.suppressed) == len(expected)
    assert reasons <= {"primary", "complementary"}


def test_primary_and_complementary_are_named_with_rules() -> None:
    result = suppress(long({"race": ["a", "b", "c"]}, [3, 20, 30]))
    listing = [s.as_dict() for s in result.suppressed]
    assert listing == [
        {"race": "a", "reason": "primary", "rule": "0 < n < 10"},
        {
            "race": "b",
            "reason": "complementary",
            "rule": "second hidden cell of the race line through race=a (its total is published)",
        },
    ]
    table = result.table.set_index("race")
    assert table.loc["a", "count"] is None and table.loc["a", "suppression"] == "primary"
    assert table.loc[TOTAL, "count"] == 53 and table.loc["c", "suppression"] is None


def test_duplicate_rows_add_up_and_absent_combinations_are_zero_cells() -> None:
    frame = pd.DataFrame({"program": ["A", "A", "B"], "sex": ["f", "f", "m"], "count": [6, 6, 15]})
    table = suppress(frame).table.set_index(["program", "sex"])
    assert table.loc[("A", "f"), "count"] == 12
    assert table.loc[("A", "m"), "count"] == 0  # absent, shown as a zero
    assert table.loc[(TOTAL, TOTAL), "count"] == 27


def test_without_margins_only_interior_rows_but_still_protected() -> None:
    result = suppress(long({"race": ["a", "b", "c"]}, [3, 20, 30]), margins=False)
    assert list(result.table["race"]) == ["a", "b", "c"]
    assert list(result.table["count"]) == [None, None, 30]


def test_wide_table_gets_totals_and_mask() -> None:
    frame = pd.DataFrame(
        [[3, 25, 40], [12, 30, 50]],
        index=pd.Index(["A", "B"], name="program"),
        columns=pd.Index(["x", "y", "z"], name="race"),
    )
    result = suppress_wide(frame)
    assert result.table.values.tolist() == [
        [None, None, 40, 68],
        [None, None, 50, 92],
        [15, 55, 90, 160],
    ]
    assert result.mask.loc["A", "x"] and not result.mask.loc[TOTAL, TOTAL]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        pytest.param(pd.DataFrame({"race": ["a"], "count": [-1]}), "non-negative", id="negative"),
        pytest.param(pd.DataFrame({"race": ["a"], "count": [1.5]}), "whole", id="fraction"),
        pytest.param(pd.DataFrame({"race": ["a"], "count": [None]}), "whole", id="missing"),
        pytest.param(pd.DataFrame({"race": [None], "count": [3]}), "missing", id="no-dim-value"),
        pytest.param(pd.DataFrame({"race": ["Total"], "count": [3]}), "label", id="total-label"),
        pytest.param(pd.DataFrame({"count": [3]}), "dimension", id="no-dimension"),
    ],
)
def test_bad_tables_are_refused(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        suppress(frame)


def test_a_bridge_between_two_hidden_rectangles_is_derivable() -> None:
    """Every line has two hidden cells, yet the cell joining two rectangles is fixed."""
    values = np.full((5, 5), 20)
    mask = np.zeros((5, 5), dtype=bool)
    for cell in [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 3), (3, 2), (3, 3), (1, 2)]:
        mask[cell] = True
    assert determined_cells(mask, values) == [(1, 2)]
    mask[(0, 2)] = True  # one more hidden cell in the bridge's column frees it
    mask[(0, 3)] = True
    assert determined_cells(mask, values) == []


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        pytest.param(1, 40, "<5%", id="bottom-coded"),
        pytest.param(0, 40, "<5%", id="zero-bottom-coded"),
        pytest.param(39, 40, ">95%", id="top-coded"),
        pytest.param(40, 40, ">95%", id="all-top-coded"),
        pytest.param(20, 40, "50%", id="middle"),
        pytest.param(3, 8, None, id="small-denominator"),
        pytest.param(None, 40, None, id="hidden-numerator"),
        pytest.param(12, None, None, id="hidden-denominator"),
    ],
)
def test_code_percentage(numerator: int | None, denominator: int | None, expected: str) -> None:
    assert code_percentage(numerator, denominator) == expected


# -- properties ----------------------------------------------------------------------------


def cube_of(table: pd.DataFrame, dims: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(published values with -1 for hidden, hidden mask) as arrays, Total last per axis."""
    levels = [[v for v in pd.unique(table[d]) if v != TOTAL] + [TOTAL] for d in dims]
    shape = [len(level) for level in levels]
    shown = np.full(shape, -1, dtype=np.int64)
    mask = np.zeros(shape, dtype=bool)
    for row in table.itertuples(index=False):
        cell = tuple(level.index(getattr(row, d)) for d, level in zip(dims, levels, strict=True))
        mask[cell] = row.suppressed
        if not row.suppressed:
            shown[cell] = row.count
    return shown, mask, np.array(shape)


def lines(shape: np.ndarray) -> list[list[tuple[int, ...]]]:
    """Every line of the cube: the cells along one axis with the others fixed (total last)."""
    out = []
    for axis in range(len(shape)):
        others = [range(n) if a != axis else [0] for a, n in enumerate(shape)]
        for fixed in product(*others):
            out.append([(*fixed[:axis], i, *fixed[axis + 1 :]) for i in range(shape[axis])])
    return out


def assert_protected(
    table: pd.DataFrame, dims: list[str], threshold: int, options: dict[str, Any]
) -> None:
    shown, mask, shape = cube_of(table, dims)
    published = shown[~mask]
    if options.get("suppress_zeros"):
        assert (published >= threshold).all()
    else:
        assert ((published == 0) | (published >= threshold)).all()
    for line in lines(shape):
        assert sum(bool(mask[c]) for c in line) != 1, line


def feasible_ranges(table: pd.DataFrame, dims: list[str]) -> list[tuple[float, float]]:
    """For each hidden cell, its min and max over all non-negative fillings consistent with
    every published cell and every line equation (members add up to the total)."""
    from scipy.optimize import linprog  # a dependency: its absence is a failure, not a skip
    shown, mask, shape = cube_of(table, dims)
    unknown = [tuple(int(i) for i in c) for c in np.argwhere(mask)]
    index = {c: n for n, c in enumerate(unknown)}
    rows, rhs = [], []
    for line in lines(shape):
        coefficients = np.zeros(len(unknown))
        constant = 0.0
        for position, cell in enumerate(line):
            sign = -1.0 if position == len(line) - 1 else 1.0
            if cell in index:
                coefficients[index[cell]] += sign
            else:
                constant += sign * shown[cell]
        if coefficients.any():
            rows.append(coefficients)
            rhs.append(-constant)
    ranges = []
    for n in range(len(unknown)):
        objective = np.zeros(len(unknown))
        objective[n] = 1.0
        low = linprog(objective, A_eq=np.array(rows), b_eq=rhs, bounds=(0, None), method="highs")
        high = linprog(-objective, A_eq=np.array(rows), b_eq=rhs, bounds=(0, None), method="highs")
        assert low.status == 0 and high.status in (0, 3)  # 3: unbounded above
        ranges.append((low.fun, -high.fun if high.status == 0 else float("inf")))
    return ranges


SMALL_OR_LARGE = st.one_of(st.just(0), st.integers(1, 9), st.integers(10, 60), st.integers(10, 400))


@st.composite
def count_tables(
    draw: st.DrawFn, max_dims: int = 3, max_size: int = 4
) -> tuple[pd.DataFrame, list[str]]:
    sizes = draw(st.lists(st.integers(1, max_size), min_size=1, max_size=max_dims))
    dims = {f"d{i}": [f"v{j}" for j in range(n)] for i, n in enumerate(sizes)}
    total = int(np.prod(sizes))
    counts = draw(st.lists(SMALL_OR_LARGE, min_size=total, max_size=total))
    return long(dims, counts), list(dims)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count_tables(), st.sampled_from([5, 10, 11]))
def test_property_no_small_cell_published_and_none_recoverable(
    case: tuple[pd.DataFrame, list[str]], threshold: int
) -> None:
    frame, dims = case
    result = suppress(frame, threshold=threshold)
    assert_protected(result.table, dims, threshold, {})
    truth = suppress(frame, threshold=1).table  # nothing hidden: the true counts
    shown = result.table[~result.table["suppressed"]]
    assert (shown["count"] == truth.loc[shown.index, "count"]).all()
    assert_not_pinned(result.table, dims)


def assert_not_pinned(table: pd.DataFrame, dims: list[str]) -> None:
    for low, high in feasible_ranges(table, dims):
        assert high - low > 1e-6, (low, high)  # not pinned to one value
        if len(dims) <= 2:
            assert high - low >= 1 - 1e-6  # two-way tables: a whole-number range


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count_tables(max_dims=2, max_size=3))
def test_property_with_zeros_hidden_nothing_below_threshold_is_shown_or_pinned(
    case: tuple[pd.DataFrame, list[str]],
) -> None:
    frame, dims = case
    result = suppress(frame, suppress_zeros=True)
    assert_protected(result.table, dims, 10, {"suppress_zeros": True})
    assert_not_pinned(result.table, dims)


def test_hidden_zeros_whose_line_sum_is_known_are_pinned() -> None:
    values = np.array([0, 0, 5, 5])
    assert pinned_zeros(np.array([True, True, False, False]), values) == [(0,), (1,)]
    assert pinned_zeros(np.array([True, True, True, False]), values) == []
