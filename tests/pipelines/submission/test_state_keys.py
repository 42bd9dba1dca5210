"""The row keys :func:`current_of` derives must stay the text earlier versions saved in
``delivery_state`` (a changed text would no longer match a held key: every child with a
natural key would be 'replaced' the next night). The oracle is the frame-wide pandas
conversion those versions used."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.destinations.base import Artifact, Batch
from pipelines.submission.state import current_of


def _oracle(frame: pd.DataFrame, columns: list[str]) -> list[list[str]]:
    keys = frame[columns].astype(object).where(frame[columns].notna(), "")
    return keys.astype(str).values.tolist()


def _keys(frame: pd.DataFrame, columns: list[str]) -> list[list[str]]:
    children = tuple(("P1", f"c{i}") for i in range(len(frame)))
    batch = Batch("r", "2026-11-27", "P1", (Artifact("a", frame, tuple(columns), children),))
    current = current_of(batch, {"disclosures": []})
    return [current.rows[child]["a"][0] for child in children]


COLUMNS = {
    "int64": pd.Series([1, -2, 0, 10**12], dtype="int64"),
    "float64": pd.Series([1.0, np.nan, 0.1, 1e16], dtype="float64"),
    "float32": pd.Series([1.5, np.nan, 0.1, -3.0], dtype="float32"),
    "Int64": pd.Series([1, None, 3, 4], dtype="Int64"),
    "string": pd.Series(["a", None, "", "é ü"], dtype="string"),
    "str": pd.Series(["x", "y", None, "z"]),
    "object": pd.Series(["x", None, 3, dt.date(2026, 1, 2)], dtype=object),
    "date objects": pd.Series([dt.date(2026, 1, 2), None, dt.date(2025, 12, 31), None]),
    "datetime64": pd.to_datetime(pd.Series(["2026-01-01", None, "2025-05-05", None])),
    "bool": pd.Series([True, False, True, False]),
    "boolean": pd.Series([True, None, False, None], dtype="boolean"),
    "category": pd.Series(["a", "b", None, "a"], dtype="category"),
    "nan object": pd.Series([math.nan, "a", pd.NA, None], dtype=object),
}


@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_row_key_text_is_unchanged_for_each_dtype(name: str) -> None:
    frame = pd.DataFrame({"id": ["1", "2", "3", "4"], "key": COLUMNS[name]})
    assert _keys(frame, ["id", "key"]) == _oracle(frame, ["id", "key"])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.text(max_size=5)),
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
            st.one_of(st.none(), st.integers(-(2**40), 2**40)),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_row_key_text_matches_the_frame_wide_conversion(rows: list[tuple]) -> None:  # type: ignore[type-arg]
    frame = pd.DataFrame(
        {
            "text": pd.Series([r[0] for r in rows], dtype=object),
            "number": pd.Series([r[1] for r in rows], dtype="float64"),
            "count": pd.Series([r[2] for r in rows], dtype="Int64"),
        }
    )
    assert _keys(frame, ["text", "number", "count"]) == _oracle(frame, ["text", "number", "count"])


def test_rows_keep_their_children_and_artifact_order() -> None:
    frame_a = pd.DataFrame({"id": ["1", "2", "3"]})
    frame_b = pd.DataFrame({"id": ["9", "8"]})
    batch = Batch(
        "r",
        "2026-11-27",
        "P1",
        (
            Artifact("a", frame_a, ("id",), (("P1", "x"), ("P1", "y"), ("P1", "x"))),
            Artifact("b", frame_b, ("id", "absent"), (("P1", "z"), ("P1", "x"))),
        ),
    )
    ledger = {"disclosures": [{"program_code": "P1", "child_local_id": "y", "digest": "d"}]}
    current = current_of(batch, ledger)
    assert current.rows == {
        ("P1", "y"): {"a": [["2"]]},
        ("P1", "x"): {"a": [["1"], ["3"]], "b": [["8"]]},
        ("P1", "z"): {"b": [["9"]]},
    }
    assert list(current.rows) == [("P1", "y"), ("P1", "x"), ("P1", "z")]
    assert list(current.rows[("P1", "x")]) == ["a", "b"]
