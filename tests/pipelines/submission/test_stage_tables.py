"""Program frames converted to Arrow together (:mod:`pipelines.submission.stage_tables`) read
back from parquet as the same frames as each converted alone by ``DataFrame.to_parquet``
(the oracle): same values, dtypes and row counts, whatever the other programs hold."""

from __future__ import annotations

import io

import pandas as pd
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

from pipelines.submission.stage_tables import as_tables

CELLS = st.one_of(st.none(), st.text(max_size=3), st.sampled_from(["", "0", "=1", "é"]))


def _alone(frame: pd.DataFrame) -> pd.DataFrame:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, engine="pyarrow", index=False)
    return pd.read_parquet(io.BytesIO(buffer.getvalue()), engine="pyarrow")


def _together(table) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="snappy")
    return pd.read_parquet(io.BytesIO(buffer.getvalue()), engine="pyarrow")


@st.composite
def _programs(draw):  # type: ignore[no-untyped-def]
    width = draw(st.integers(1, 4))
    columns = [f"C{j}" for j in range(width)]
    frames = []
    for _ in range(draw(st.integers(1, 5))):
        rows = draw(st.integers(0, 5))
        empty = draw(st.sets(st.sampled_from(columns)))  # columns with no value here
        frames.append(
            pd.DataFrame(
                {
                    c: pd.Series(
                        [None if c in empty else draw(CELLS) for _ in range(rows)], dtype=object
                    )
                    for c in columns
                }
            )
        )
    return frames


@settings(max_examples=200, deadline=None)
@given(_programs())
def test_each_program_reads_back_as_its_frame_alone(frames: list[pd.DataFrame]) -> None:
    tables = as_tables(frames)
    assert tables is not None
    for frame, table in zip(frames, tables, strict=True):
        assert table.num_rows == len(frame)
        assert_frame_equal(_together(table), _alone(frame), check_dtype=True)


def test_frames_that_are_not_all_text_are_left_to_pandas() -> None:
    text = pd.DataFrame({"A": pd.Series(["x"], dtype=object)})
    assert as_tables([text, pd.DataFrame({"A": [1]})]) is None  # a whole number column
    assert as_tables([text, pd.DataFrame({"B": pd.Series(["x"], dtype=object)})]) is None
    assert as_tables([text, pd.DataFrame({"A": pd.Series([float("nan")], dtype=object)})]) is None
    assert as_tables([text, pd.DataFrame({"A": pd.Series([3], dtype=object)})]) is None
    assert as_tables([text, pd.DataFrame({"A": pd.Series(["y"], dtype="str")})]) is None


def test_a_missing_value_other_than_none_beside_nones_is_left_to_pandas() -> None:
    """Arrow takes NaN, NA and NaT for null as it takes ``None``: only ``None`` is checked
    to read back as the frame alone would (pandas writes the others by its own rules)."""
    text = pd.DataFrame({"A": pd.Series(["x", None], dtype=object)})
    for missing in (float("nan"), pd.NA, pd.NaT):
        other = pd.DataFrame({"A": pd.Series([None, "y", missing, None], dtype=object)})
        assert as_tables([text, other]) is None
        assert as_tables([other]) is None
    assert as_tables([text, text]) is not None
