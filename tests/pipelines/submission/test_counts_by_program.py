"""counts_by_program: every program's counts at once, as count_into gives them per program
(the same counts, in the same order: most first, ties in order of first appearance)."""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from pipelines.submission.collect import count_into, counts_by_program

ROWS = st.lists(
    st.tuples(st.sampled_from(["P1", "P2", "P3"]), st.sampled_from(["a", "bb", "c", "d"])),
    max_size=60,
)


@given(ROWS, st.sampled_from(["object", "category"]))
def test_counts_by_program_as_count_into_per_program(
    rows: list[tuple[str, str]], kind: str
) -> None:
    frame = pd.DataFrame(rows, columns=["program_code", "reason"], dtype=object).astype(kind)
    expected: dict[str, list[tuple[str, int]]] = {}
    for program, part in frame.groupby("program_code", observed=True):
        counts: dict[str, int] = {}
        count_into(counts, part["reason"].astype(str))
        expected[str(program)] = list(counts.items())
    got = counts_by_program(frame["program_code"], frame["reason"])
    assert got == expected  # lists: the order too
