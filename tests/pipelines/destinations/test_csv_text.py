"""An artifact's CSV is byte for byte what pandas writes (the files a state already receives
must not change), whatever the cells hold: quotes, commas, line breaks, blanks, missing
values, non-ASCII text; text frames take the fast path, others are rendered by pandas."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.destinations.base import Artifact
from pipelines.destinations.csv_text import _fast, csv_bytes


def pandas_csv(frame: pd.DataFrame) -> bytes:
    """The oracle: what file drops have always received."""
    return frame.to_csv(index=False, lineterminator="\n").encode("utf-8")


CELLS = st.one_of(
    st.none(),
    st.just(np.nan),
    st.sampled_from(["", " ", ",", '"', '""', "\n", "\r", "\r\n", "a,b", 'say "hi"', "é", "0"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8),
)
STRING_DTYPES = [
    "str",
    object,
    pd.StringDtype("python"),
    pd.StringDtype("pyarrow"),
    pd.StringDtype("pyarrow", na_value=np.nan),
]
"""Every way a frame's column holds text: Arrow-backed columns render from their Arrow
array, the others from their values."""
LABELS = st.text(min_size=1, max_size=6).filter(lambda s: s.strip() == s)


@st.composite
def text_frames(draw: st.DrawFn) -> pd.DataFrame:
    rows = draw(st.integers(0, 6))
    width = draw(st.integers(1, 4))
    labels = draw(st.lists(LABELS, min_size=width, max_size=width))
    data = {}
    for index in range(width):
        cells = draw(st.lists(CELLS, min_size=rows, max_size=rows))
        dtype = draw(st.sampled_from(STRING_DTYPES))
        data[f"{index}"] = pd.Series(cells, dtype=dtype)
    frame = pd.DataFrame(data)
    frame.columns = labels  # duplicates allowed, as pandas allows them
    return frame


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_frames())
def test_any_text_frame_is_rendered_as_pandas_renders_it(frame: pd.DataFrame) -> None:
    assert csv_bytes(frame) == pandas_csv(frame)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_frames(), st.integers(1, 3))
def test_a_frame_read_back_from_parquet_and_narrowed_is_rendered_as_pandas_renders_it(
    frame: pd.DataFrame, step: int
) -> None:
    """As a delivery has it: staged as parquet, read back (Arrow-backed text), some rows
    kept (``Batch.only``): its Arrow arrays are slices of the ones read."""
    frame.columns = [f"{i}" for i in range(frame.shape[1])]
    buffer = io.BytesIO()
    frame.astype("str").to_parquet(buffer, engine="pyarrow", index=False)
    back = pd.read_parquet(io.BytesIO(buffer.getvalue()), engine="pyarrow")
    narrowed = back.loc[[i % step == 0 for i in range(len(back))]].reset_index(drop=True)
    for shown in (back, narrowed, back.iloc[1:]):
        assert csv_bytes(shown) == pandas_csv(shown)


@pytest.mark.parametrize(
    ("case", "frame"),
    [
        ("one column of blanks", pd.DataFrame({"a": ["", None, ""]}, dtype="str")),
        ("no rows", pd.DataFrame({"a": [], "b": []}, dtype="str")),
        (
            "all missing objects",
            pd.DataFrame({"a": ["x", "y"], "b": pd.Series([None, np.nan], dtype=object)}),
        ),
        ("a header to quote", pd.DataFrame({'Last, "First"': ["x"], "b\nc": ["y"]})),
    ],
)
def test_text_frames_take_the_fast_path(case: str, frame: pd.DataFrame) -> None:
    assert _fast(frame) is not None, case
    assert csv_bytes(frame) == pandas_csv(frame), case


@pytest.mark.parametrize(
    ("case", "frame"),
    [
        ("integers", pd.DataFrame({"a": ["x", "y"], "n": [1, 2]})),
        ("floats with a gap", pd.DataFrame({"a": ["x", "y"], "f": [1.5, np.nan]})),
        ("a number among texts", pd.DataFrame({"a": ["x", 3]}, dtype=object)),
        ("dates", pd.DataFrame({"d": [dt.date(2026, 2, 28), None]})),
        ("a numeric label", pd.DataFrame({0: ["x"]})),
        ("no columns", pd.DataFrame(index=range(2))),
    ],
)
def test_other_frames_are_left_to_pandas(case: str, frame: pd.DataFrame) -> None:
    assert _fast(frame) is None, case
    assert csv_bytes(frame) == pandas_csv(frame), case


def test_an_artifact_digests_the_bytes_it_writes() -> None:
    import hashlib

    frame = pd.DataFrame({"ProgramID": ["P1", "P1"], "Name": ['O"Brien, Jo', None]}, dtype="str")
    artifact = Artifact("a.csv", frame)
    assert artifact.csv_bytes() == b'ProgramID,Name\nP1,"O""Brien, Jo"\nP1,\n'
    assert artifact.sha256 == hashlib.sha256(artifact.csv_bytes()).hexdigest()
