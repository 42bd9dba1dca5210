"""A column the agreement cuts to three ZIP digits may carry only the row child's ZIP3.

The rule (``pipelines/quality/output_suite.py``, ``exact`` columns): a cell of a column made by
the ``zip3`` transform is empty or exactly the row child's own ZIP3 (the first three digits of
the row child's ZIP, as ``privacy/transforms/zip3.py`` writes it). Another child's ZIP3, another
child's full ZIP (``05401``), a ZIP+4, a four- or two-digit text, letters: ``value_mismatch``.
The row child's own full ZIP stays ``full_value`` (and so does a full date); each bad cell
counts under one rule.

The table runs the real ``uvm-crc-study`` agreement (it sends ``address_zip: zip3`` in its
API records), the real transforms and the gate. The property checks ``validate_output``
against an oracle written from the rule above, which imports nothing of the gate or the
transform.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.quality.mentions import KeyIndex
from pipelines.quality.output_suite import Columns, RowValues, validate_output
from tests.pipelines.gate_world import RECORDS, children, gate, preparation, record_frames

ZIPS = ["05401", "05402", "00501-1234", "99801-1234", "80202", "05001"]
"""Recorded ZIPs (two children share ``054``), none of them Excel's day number (10000-73050:
a full date in a ZIP3 column already)."""
N = len(ZIPS)
OWN = [z[:3] for z in ZIPS]
COLUMN = "address_zip"


def _other(i: int) -> int:
    """Another child's row whose ZIP3 is not row ``i``'s."""
    j = next(k for k in range(1, N) if OWN[(i + k) % N] != OWN[i])
    return (i + j) % N


@pytest.fixture(scope="module")
def world() -> Any:
    p = preparation("uvm-crc-study", children([{"address_zip": z} for z in ZIPS]), [])
    frames = record_frames(p)
    frame = frames[RECORDS][0]
    assert frame[COLUMN].tolist() == OWN  # what the transform writes
    return p, frames


MISMATCH = [f"value_mismatch on column {COLUMN}: {N} of {N} rows"]
FULL = [f"full_value on column {COLUMN}: {N} of {N} rows"]
CASES: list[tuple[str, Callable[[int], Any], list[str]]] = [
    ("own_zip3", lambda i: OWN[i], []),
    ("own_zip3_spaced", lambda i: f" {OWN[i]} ", []),
    ("empty", lambda i: None, []),
    ("blank", lambda i: "  ", []),
    ("other_zip3", lambda i: OWN[_other(i)], MISMATCH),
    ("other_zip5", lambda i: ZIPS[_other(i)][:5], MISMATCH),
    ("other_zip_plus4", lambda i: ZIPS[_other(i)][:5] + "-1234", MISMATCH),
    ("own_zip_plus4_other_digits", lambda i: ZIPS[i][:5] + "-9999", MISMATCH),
    ("four_digits", lambda i: ZIPS[i][:4], MISMATCH),
    ("own_zip3_and_a_digit", lambda i: OWN[i] + "0", MISMATCH),
    ("two_digits", lambda i: OWN[i][:2], MISMATCH),
    # "54" for "054": a mismatch but where the ZIP3 has no leading zero ("998", "802")
    (
        "lost_leading_zero",
        lambda i: str(int(OWN[i])),
        [f"value_mismatch on column {COLUMN}: 4 of {N} rows"],
    ),
    ("letters", lambda i: "abc", MISMATCH),
    ("own_zip3_with_letters", lambda i: f"{OWN[i]}xx", MISMATCH),
    ("own_full_zip", lambda i: ZIPS[i], FULL),
    ("full_date", lambda i: "15.11.2021", FULL),
]


@pytest.mark.parametrize(("cell", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_zip3_cell_is_empty_or_the_row_childs_own(
    world: Any, cell: Callable[[int], Any], expected: list[str]
) -> None:
    p, frames = world
    frame = frames[RECORDS][0]
    original = frame[COLUMN].copy()
    try:
        frame[COLUMN] = pd.Series([cell(i) for i in range(N)], dtype=object)
        assert gate(p, frames) == expected
    finally:
        frame[COLUMN] = original


def test_each_bad_cell_counts_once(world: Any) -> None:
    """One row each: the own full ZIP, another's full ZIP, another's ZIP3, a full date."""
    p, frames = world
    frame = frames[RECORDS][0]
    original = frame[COLUMN].copy()
    try:
        frame[COLUMN] = pd.Series(
            [ZIPS[0], ZIPS[_other(1)][:5], OWN[_other(2)], "2021-11-15", None, OWN[5]],
            dtype=object,
        )
        assert gate(p, frames) == [
            f"full_value on column {COLUMN}: 2 of {N} rows",
            f"value_mismatch on column {COLUMN}: 2 of {N} rows",
        ]
    finally:
        frame[COLUMN] = original


def test_no_recorded_zip_lets_only_an_empty_cell_leave(tmp_path: Any) -> None:
    """A child with no ZIP, or one the transform cannot read, has no ZIP3 to send."""
    zips = [None, "5401", "05401"]
    p = preparation("uvm-crc-study", children([{"address_zip": z} for z in zips]), [])
    frames = record_frames(p)
    frame = frames[RECORDS][0]
    assert frame[COLUMN].tolist() == [None, None, "054"]
    assert gate(p, frames) == []
    frame[COLUMN] = pd.Series(["054", "540", "054"], dtype=object)
    assert gate(p, frames) == [f"value_mismatch on column {COLUMN}: 2 of 3 rows"]


# --- property: validate_output against an oracle written from the rule --------------------


def _own_zip3(recorded: Any) -> str | None:
    """The rule's row child's ZIP3: the first three of five digits (optionally + four)."""
    if not isinstance(recorded, str):
        return None
    found = re.fullmatch(r"(\d{3})\d{2}(?:-?\d{4})?", recorded.strip())
    return found.group(1) if found else None


def _norm(value: Any) -> str | None:
    if value is None:
        return None
    return " ".join(str(value).split()).casefold() or None


def oracle(cells: list[Any], recorded: list[Any]) -> tuple[int, int]:
    """(full_value, value_mismatch) rows: the own full ZIP is full_value, anything else that
    is neither empty nor the own ZIP3 is a mismatch (the cells drawn hold no date)."""
    full = mismatch = 0
    for cell, zip_ in zip(cells, recorded, strict=True):
        text = _norm(cell)
        if text is None or text == _own_zip3(zip_):
            continue
        if zip_ is not None and text == _norm(zip_):
            full += 1
        else:
            mismatch += 1
    return full, mismatch


ZIP5 = st.from_regex(r"0[0-9]{4}|7[4-9][0-9]{3}|[89][0-9]{4}", fullmatch=True)
"""Five digits that are not Excel's day number (10000-73050 is a full date in a ZIP3)."""
PLUS4 = st.builds(lambda z, p: f"{z}-{p}", ZIP5, st.from_regex(r"[0-9]{4}", fullmatch=True))
RECORDED = st.none() | ZIP5 | PLUS4 | st.sampled_from(["5401", "abcde", ""])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.tuples(
            RECORDED,
            RECORDED,
            st.sampled_from(["own", "other", "other_full", "own_full", "none", "text"]),
            st.from_regex(r"[a-z]{1,5}|[0-9]{1,4}", fullmatch=True),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_zip3_cells_equal_the_oracle(rows: list[Any]) -> None:
    recorded = [own for own, *_ in rows]

    def cell(own: Any, other: Any, kind: str, text: str) -> Any:
        if kind == "own":
            return _own_zip3(own)
        if kind == "other":
            return _own_zip3(other)
        if kind == "other_full":
            return other
        if kind == "own_full":
            return own
        if kind == "none":
            return None
        return text

    cells = [cell(*row) for row in rows]
    frame = pd.DataFrame({"zip": pd.Series(cells, dtype=object)})
    values = pd.DataFrame({"address_zip": pd.Series(recorded, dtype=object)})
    n = len(rows)

    def zip3(series: pd.Series) -> pd.Series:  # what the transform writes, from the brief
        return series.map(_own_zip3, na_action="ignore")

    result = validate_output(
        frame,
        expected_columns=["zip"],
        columns=Columns(
            generalized={"zip": "address_zip"},
            exact={"zip": zip3},
            serial_dates=frozenset({"zip"}),
        ),
        rows=RowValues(values, frozenset(), [frozenset()] * n, KeyIndex.of([])),
    )
    counts = {"full_value": 0, "value_mismatch": 0}
    for failure in result.failures:
        found = re.fullmatch(rf"(\w+) on column zip: (\d+) of {n} rows", failure)
        assert found is not None and found.group(1) in counts, failure
        counts[found.group(1)] = int(found.group(2))
    assert (counts["full_value"], counts["value_mismatch"]) == oracle(cells, recorded)
