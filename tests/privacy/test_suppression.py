"""Small-cell and complementary suppression: table cases and properties over random tables."""

from __future__ import annotations

from itertools import product
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from privacy.suppression import (
    code_percentage,
    determined_cells,
    pinned_at_bounds,
    pinned_zeros,
    suppress,
    suppress_line,
    suppress_wide,
)
from tests.disclosure_oracle import (
    TOTAL,
    feasible_ranges,
    published,
    records_from_blocks,
    true_cells,
)
from tests.disclosure_oracle import lines as oracle_lines


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


RACE = ["american_indian_alaska_native", "asian", "black", "white", "unknown"]
KNOWN_CASES = [
    pytest.param(
        {"white": 20, "black": 1, "asian": 1}, None, False,
        {"black", "asian", "white"},
        id="white-20-total-22-listing-only-what-occurs-hides-a-third-cell",
    ),
    pytest.param(
        {"white": 20, "black": 1, "asian": 1}, RACE, True, set(RACE),
        id="white-20-total-22-whole-domain-listed-the-2-others-would-be-a-small-count",
    ),
    pytest.param(
        {"female": 12}, ["female", "male", "unknown"], True,
        {"female", "male", "unknown"},
        id="one-category-group-shows-no-category",
    ),
    pytest.param(
        {"female": 400}, ["female", "male", "unknown"], True,
        {"female", "male", "unknown"},
        id="one-category-large-group-shows-no-category-either",
    ),
    pytest.param(
        {"N": 25, "Y": 5}, ["Y", "N", "unknown"], True,
        {"Y", "unknown", "N"},
        id="small-remainder-hides-the-large-category-too",
    ),
    pytest.param(
        {"N": 25, "Y": 12}, ["Y", "N", "unknown"], True,
        {"unknown", "Y"},
        id="lone-hidden-zero-gets-a-non-zero-complement",
    ),
    pytest.param(
        {"N": 25, "Y": 12}, ["Y", "N", "unknown"], False,
        set(),
        id="zeros-shown-mode-shows-the-zero",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("counts", "domain", "zeros_hidden", "expected"), KNOWN_CASES)
def test_what_a_reader_knows_is_counted(
    counts: dict[str, int], domain: list[str] | None, zeros_hidden: bool, expected: set[str]
) -> None:
    frame = pd.DataFrame({"c": list(counts), "count": list(counts.values())})
    result = suppress(
        frame, ["c"], suppress_zeros=zeros_hidden, domains={"c": domain} if domain else None
    )
    table = result.table
    assert set(table.loc[table["suppressed"], "c"]) == expected
    if domain:
        assert list(table["c"]) == [*domain, TOTAL]  # every category, in the declared order
    shown = published(table, ["c"], "count")
    lower = reader_lower_bound(zeros_hidden, domain is not None, ["c"])
    for cell, (low, high) in feasible_ranges(shown, ["c"], lower).items():
        assert high - low >= 1, cell


def test_when_a_value_is_outside_its_declared_domain_then_refused() -> None:
    frame = pd.DataFrame({"c": ["female", "other"], "count": [12, 3]})
    with pytest.raises(ValueError, match="outside its declared domain"):
        suppress(frame, ["c"], domains={"c": ["female", "male"]})


def test_pinned_at_bounds_one_way_closed_form_agrees_with_the_line() -> None:
    values = np.array([1, 1, 20, 22])
    ones = np.ones(4, dtype=np.int64)
    assert pinned_at_bounds(np.array([True, True, False, False]), values, ones) == [(0,), (1,)]
    assert pinned_at_bounds(np.array([True, True, True, False]), values, ones) == []


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


SMALL_OR_LARGE = st.one_of(st.just(0), st.integers(1, 9), st.integers(10, 60), st.integers(10, 400))


@st.composite
def child_records(
    draw: st.DrawFn, max_dims: int = 3, max_size: int = 4
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Child records (one row per child) over up to ``max_dims`` dimensions; cell sizes mix
    zeros, small and large counts."""
    sizes = draw(st.lists(st.integers(1, max_size), min_size=1, max_size=max_dims))
    dims = {f"d{i}": [f"v{j}" for j in range(n)] for i, n in enumerate(sizes)}
    blocks = draw(
        st.lists(SMALL_OR_LARGE, min_size=int(np.prod(sizes)), max_size=int(np.prod(sizes)))
    )
    assume(sum(blocks) > 0)
    return records_from_blocks(dims, blocks), dims


def reader_lower_bound(suppress_zeros: bool, declared: bool, dims: list[str]):  # type: ignore[no-untyped-def]
    """What a reader knows of a hidden cell's least value, from how the table is published:
    zeros always shown -> a hidden cell is at least 1; zeros hidden but only occurring
    categories listed -> a category's margin (and the grand total) is at least 1; zeros hidden
    and every declared category listed -> nothing beyond 0."""

    def lower(cell: tuple[Any, ...]) -> int:
        if not suppress_zeros:
            return 1
        if declared:
            return 0
        return 1 if sum(v != TOTAL for v in cell) <= 1 else 0

    return lower


def check_publication(
    records: pd.DataFrame,
    dims: dict[str, list[str]],
    threshold: int,
    suppress_zeros: bool,
    declared: bool,
) -> None:
    names = list(dims)
    counts = records.groupby(names).size().rename("count").reset_index()
    result = suppress(
        counts,
        names,
        threshold=threshold,
        suppress_zeros=suppress_zeros,
        domains=dims if declared else None,
    )
    truth = true_cells(records, names)
    shown = published(result.table, names, "count")
    for cell, value in shown.items():
        if value is not None:
            assert value == truth.get(cell, 0), cell  # published cells are the true counts
            small = value < threshold if suppress_zeros else 0 < value < threshold
            assert not small, (cell, value)  # no small cell published
    if declared:
        assert len(shown) == int(np.prod([len(v) + 1 for v in dims.values()]))  # all listed
    for members, total in oracle_lines(list(shown), names):
        hidden = [m for m in members if shown[m] is None]
        if hidden and shown[total] is not None:  # total - shown: the hidden cells' sum
            derived = shown[total] - sum(shown[m] or 0 for m in members)
            assert derived >= threshold, (total, derived)  # not a small count either
    lower = reader_lower_bound(suppress_zeros, declared, names)
    for cell, (low, high) in feasible_ranges(shown, names, lower).items():
        assert high - low > 1e-6, (cell, low, high)  # not pinned to one value
        assert low - 1e-6 <= truth.get(cell, 0) <= high + 1e-6  # the reader's view is honest
        if len(names) <= 2:
            assert high - low >= 1 - 1e-6  # two-way tables: a whole-number range


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(child_records(), st.sampled_from([5, 10, 11]), st.booleans())
def test_property_zeros_shown_no_small_cell_and_no_hidden_cell_pinned(
    case: tuple[pd.DataFrame, dict[str, list[str]]], threshold: int, declared: bool
) -> None:
    records, dims = case
    check_publication(records, dims, threshold, suppress_zeros=False, declared=declared)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(child_records(max_dims=2, max_size=4), st.sampled_from([5, 10]), st.booleans())
def test_property_zeros_hidden_no_small_cell_and_no_hidden_cell_pinned(
    case: tuple[pd.DataFrame, dict[str, list[str]]], threshold: int, declared: bool
) -> None:
    records, dims = case
    check_publication(records, dims, threshold, suppress_zeros=True, declared=declared)


def test_hidden_zeros_whose_line_sum_is_known_are_pinned() -> None:
    values = np.array([0, 0, 5, 5])
    assert pinned_zeros(np.array([True, True, False, False]), values) == [(0,), (1,)]
    assert pinned_zeros(np.array([True, True, True, False]), values) == []


@settings(max_examples=80, deadline=None)
@given(st.lists(SMALL_OR_LARGE, min_size=1, max_size=7), st.sampled_from([5, 10]))
def test_property_suppress_line_is_suppress_on_one_declared_line(
    counts: list[int], threshold: int
) -> None:
    domain = [f"c{i}" for i in range(len(counts))]
    frame = pd.DataFrame({"c": domain, "count": counts})
    table = suppress(frame, ["c"], threshold=threshold, suppress_zeros=True, domains={"c": domain})
    line = suppress_line(dict(zip(domain, counts, strict=True)), domain, threshold=threshold)
    assert line == list(table.table["count"])
