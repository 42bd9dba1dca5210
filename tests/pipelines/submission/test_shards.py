"""Programs are cut into near-equal shards by children and count, in order; never split."""

from __future__ import annotations

import pytest

from pipelines.submission.shards import label, shards

SIZES = {"A": 10, "B": 20, "C": 5, "D": 100, "E": 1}


@pytest.mark.parametrize(
    ("max_children", "max_programs", "expected"),
    [
        (1_000, 100, [["A", "B", "C", "D", "E"]]),  # a small night is one shard
        (30, 100, [["A", "B"], ["C"], ["D"], ["E"]]),  # D alone: bigger than a shard
        (35, 100, [["A", "B", "C"], ["D"], ["E"]]),
        (1_000, 2, [["A", "B"], ["C", "D"], ["E"]]),
        (1, 100, [["A"], ["B"], ["C"], ["D"], ["E"]]),
    ],
)
def test_when_programs_are_sharded_then_order_and_limits_hold(
    max_children: int, max_programs: int, expected: list[list[str]]
) -> None:
    got = shards(list(SIZES), SIZES, max_children=max_children, max_programs=max_programs)
    assert got == expected
    assert [p for shard in got for p in shard] == list(SIZES), "every program once, in order"


def test_when_children_spread_evenly_then_no_small_last_shard() -> None:
    sizes = {f"P{i:03d}": 333 + (i % 3 == 0) for i in range(300)}  # 100,000 children
    got = shards(list(sizes), sizes, max_children=25_000, max_programs=100)
    assert [len(s) for s in got] == [75, 75, 75, 75]
    assert max(sum(sizes[p] for p in s) for s in got) <= 25_000 + 334


def test_no_program_no_shard() -> None:
    assert shards([], {}, max_children=10, max_programs=10) == []


def test_labels_name_the_first_and_last_program_and_count() -> None:
    assert label(["VT-HS-01"]) == "VT-HS-01"
    assert label(["VT-HS-01", "VT-HS-02", "VT-HS-25"]) == "VT-HS-01 … VT-HS-25 (3)"
    assert label(["VT-HS-01", "VT-HS-25"], stopped=1) == "VT-HS-01 … VT-HS-25 (2, 1 stopped)"
