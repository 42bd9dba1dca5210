"""A report written with an entry serialized beforehand (shared by many reports) is the same
text as the report serialized whole."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pipelines.submission.reports import _text, report_text

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(),
    st.dates(min_value=dt.date(2000, 1, 1)),  # written by default=str
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=6), VALUES, max_size=4), st.data())
def test_entries_written_beforehand_give_the_same_text(
    content: dict[str, Any], data: st.DataObject
) -> None:
    shared = data.draw(st.sets(st.sampled_from(sorted(content))) if content else st.just(set()))
    written = {key: report_text(content[key]) for key in shared}
    assert _text(content, written) == report_text(content)
