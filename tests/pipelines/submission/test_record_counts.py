"""A group's logged count per program: of the group's disclosures (each program's one after
the other), the positions the repeat check kept, counted per program. The oracle counts
position by position."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.submission.record import kept_per_part


@pytest.mark.parametrize(
    ("sizes", "kept", "expected"),
    [
        pytest.param([3, 2], None, [3, 2], id="nothing_repeated"),
        pytest.param([3, 2], [], [0, 0], id="all_repeated"),
        pytest.param([3, 0, 2], [0, 2, 4], [2, 0, 1], id="empty_program_between"),
        pytest.param([2, 2], [2, 3], [0, 2], id="first_program_all_repeated"),
        pytest.param([0], [], [0], id="nothing_at_all"),
    ],
)
def test_when_some_disclosures_repeat_then_each_program_counts_its_own(
    sizes: list[int], kept: list[int] | None, expected: list[int]
) -> None:
    assert kept_per_part(sizes, kept) == expected


@given(st.lists(st.integers(0, 6), max_size=8), st.data())
def test_counts_match_a_position_by_position_count(sizes: list[int], data: st.DataObject) -> None:
    total = sum(sizes)
    kept = sorted(data.draw(st.sets(st.integers(0, max(total - 1, 0)))) if total else [])
    owner = [part for part, size in enumerate(sizes) for _ in range(size)]
    expected = [sum(owner[i] == part for i in kept) for part in range(len(sizes))]
    assert kept_per_part(sizes, kept) == expected
