"""The record maker's bulk helpers against per-row oracles written from the rules: a child's
payload digest (its rows file by file in file-name order, ``name \\x1e cells joined by \\x1f
\\x1d``, a missing cell empty, parent statements' rows in their order), the fields each
disclosure line names, and each program's rows in their order."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.mapping import _distinct
from pipelines.submission.records import Statements, _by_program, _digests, _field_lists

CELLS = st.one_of(st.none(), st.text(max_size=4), st.sampled_from(["", " ", "a\x1fb", "é"]))


def _cell(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def _oracle_digest(files: dict[str, list[list[object]]], statements, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    out = []
    for i in range(n):
        text = ""
        names = sorted({*files, *([statements[0]] if statements else [])})
        for name in names:
            if name in files:
                text += f"{name}\x1e" + "\x1f".join(_cell(c) for c in files[name][i]) + "\x1d"
            else:
                _, rows, positions = statements
                for row, at in zip(rows, positions, strict=True):
                    if at == i:
                        text += f"{name}\x1e" + "\x1f".join(_cell(c) for c in row) + "\x1d"
        out.append(hashlib.sha256(text.encode()).hexdigest())
    return out


@st.composite
def _files(draw):  # type: ignore[no-untyped-def]
    n = draw(st.integers(0, 6))
    names = draw(st.lists(st.sampled_from(["b.csv", "a.csv", "c.csv"]), unique=True, max_size=3))
    files = {}
    for name in names:
        width = draw(st.integers(1, 4))
        files[name] = [[draw(CELLS) for _ in range(width)] for _ in range(n)]
    statements = None
    if n and draw(st.booleans()):
        positions = sorted(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=8)))
        rows = [[draw(CELLS), draw(CELLS)] for _ in positions]
        statements = ("s.csv", rows, positions)
    text_dtype = draw(st.booleans())  # pandas' Arrow-backed text columns, NaN for missing
    return n, files, statements, text_dtype


def _frame(rows: list[list[object]], width: int, text_dtype: bool) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[f"c{j}" for j in range(width)], dtype=object)
    return frame.astype("str") if text_dtype else frame


@settings(max_examples=200, deadline=None)
@given(_files())
def test_digests_equal_the_per_row_rule(case) -> None:  # type: ignore[no-untyped-def]
    n, files, statements, text_dtype = case
    frames = {
        name: _frame(rows, len(rows[0]) if rows else 1, text_dtype) for name, rows in files.items()
    }
    made = None
    if statements is not None:
        name, rows, positions = statements
        frame = _frame(rows, 2, text_dtype)
        made = Statements(name, frame, positions, pd.Series(["f"] * len(rows)))
    assert _digests(frames, n, made) == _oracle_digest(files, statements, n)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["race", "sex", "birth_date", "iep"]), unique=True, max_size=4),
    st.data(),
)
def test_field_lists_name_each_rows_carried_fields(fields: list[str], data) -> None:  # type: ignore[no-untyped-def]
    n = data.draw(st.integers(0, 12))
    rows = [[data.draw(st.booleans()) for _ in fields] for _ in range(n)]
    carried = np.array(rows, dtype=bool).reshape(n, len(fields))
    got = _field_lists(fields, carried)
    assert got == [[f for f, keep in zip(fields, row, strict=True) if keep] for row in rows]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["VT-B2", "VT-B10", "VT-A", "VT-B1"]), max_size=20))
def test_programs_rows_in_their_order(programs: list[str]) -> None:
    keys = [(p, str(i)) for i, p in enumerate(programs)]
    order, runs = _by_program(keys)
    got = [(p, order[a:b]) for p, a, b in runs]
    assert got == [(p, [i for i, k in enumerate(keys) if k[0] == p]) for p in sorted(set(programs))]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", " ", "=1", "é"])), max_size=12))
def test_distinct_text_values_as_plain_strings(values: list[str | None]) -> None:
    for series in (pd.Series(values, dtype=object), pd.Series(values, dtype="str")):
        codes, distinct = _distinct(series)
        present = [v for v in values if v is not None]
        assert distinct == list(dict.fromkeys(present))
        assert all(type(v) is str for v in distinct)
        assert [None if c < 0 else distinct[c] for c in codes] == values
