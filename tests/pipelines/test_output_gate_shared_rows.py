"""The output gate shares work between the frames of one preparation: GE loads each frame
without fingerprinting it, the row values of the same children are looked up once, each
field's forms are made once, and "a protected form the row also sends as kept" is compared
as integer codes. Each is checked here against an oracle that imports nothing of the gate:
the rules say the same for every frame, whichever frame came first."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.quality.context import Loaded
from pipelines.quality.mentions import KeyIndex
from pipelines.quality.output_suite import RowValues, _SentAsKept, validate_output
from pipelines.submission.gate import IDENTITY_COLUMNS, Identities
from tests.pipelines.test_output_gate_vectorized import COLUMNS, KEPT, RULES, batches, oracle

KEY = ("program_code", "child_local_id")


def test_a_loaded_frame_is_not_fingerprinted() -> None:
    """GE's batch fingerprint (a hash of every cell) is not made: nothing reads it."""
    frame = pd.DataFrame({"a": ["x", "y"], "b": [1, 2]})
    with Loaded(frame) as loaded:
        markers = dict(loaded._validator.active_batch.batch_markers)
    assert "pandas_data_fingerprint" not in markers


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches(), first=st.sampled_from(["empty", "same", "reversed"]))
def test_frames_sharing_row_values_each_equal_the_oracle(
    batch: tuple[pd.DataFrame, pd.DataFrame], first: str
) -> None:
    """A frame checked after another frame of the same rows (the row values, and the forms
    made of them, shared) fails exactly as the per-row oracle says, as it does alone."""
    frame, values = batch
    n = len(frame)
    rows = RowValues(values, KEPT, [frozenset()] * n, KeyIndex.of([]))
    before = {
        "empty": pd.DataFrame({c: [None] * n for c in COLUMNS}, dtype=object),
        "same": frame,
        "reversed": frame.iloc[::-1].reset_index(drop=True),
    }[first]
    validate_output(before, expected_columns=COLUMNS, columns=RULES, rows=rows)
    assert rows.forms, "the first frame made the forms the second one reuses"
    result = validate_output(frame, expected_columns=COLUMNS, columns=RULES, rows=rows)
    assert set(result.failures) == oracle(frame, values)


FORMS = st.one_of(st.none(), st.sampled_from(["liam", "lee", "2022-03-14", "03/14/2022", "a b"]))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n=st.integers(0, 5), width=st.integers(0, 3), kept=st.integers(0, 4))
def test_sent_as_kept_equals_comparing_each_form(
    data: st.DataObject, n: int, width: int, kept: int
) -> None:
    """A form is sent as kept exactly when it is text equal to one of its own row's kept
    forms (``None`` equals nothing; another row's kept forms do not count)."""

    def matrix(width: int) -> np.ndarray:
        row = st.lists(FORMS, min_size=width, max_size=width)
        cells = data.draw(st.lists(row, min_size=n, max_size=n))
        return np.array(cells, dtype=object).reshape(n, width)

    forms, sent = matrix(width), matrix(kept)
    expected = np.array(
        [
            [f is not None and any(f == k for k in sent[i] if k is not None) for f in forms[i]]
            for i in range(n)
        ],
        dtype=bool,
    ).reshape(n, width)

    def table(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A matrix as a forms table: a row per row (in a drawn order) and a row of None."""
        order = np.array(data.draw(st.permutations(range(n))), dtype=np.intp).reshape(n)
        rows = np.full((n + 1, matrix.shape[1]), None, dtype=object)
        rows[order] = matrix
        return order, rows

    assert (_SentAsKept([table(sent)], n)(*table(forms)) == expected).all()


def _oracle_rows(extract: pd.DataFrame, keys: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Per key, the fields (key columns, whether it passed and the counts not asked for
    aside) of its first extracted row that passed the input gate, else of its first row;
    nothing for a key of no extracted child."""
    out = []
    for key in keys:
        mine = [row for _, row in extract.iterrows() if (row[KEY[0]], row[KEY[1]]) == key]
        mine = sorted(mine, key=lambda row: not row["passed_input_gate"])  # stable: passed first
        row = mine[0] if mine else None
        columns = [c for c in extract.columns if c not in {*KEY, *UNASKED, "passed_input_gate"}]
        out.append({c: (None if row is None else row[c]) for c in columns})
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


ASKED = frozenset({"days_present"})
UNASKED = ("days_scheduled",)
"""The catalog's counts: a row value only where asked (the plan bands it)."""
NAMES = st.sampled_from(["Liam", "Ana", "Lee", "Zoë"])
IDS = st.sampled_from(["C1", "C2", "C3"])


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["P1", "P2"]), IDS, NAMES, st.booleans(), st.dates()),
        min_size=1,
        max_size=6,
    ),
    asked=st.lists(st.tuples(st.sampled_from(["P1", "P2", "P3"]), IDS), min_size=1, max_size=6),
    mentions=st.lists(st.booleans(), min_size=2, max_size=3),
)
def test_rows_equal_the_first_passed_row_of_each_key(
    rows: list[tuple[str, str, str, bool, dt.date]],
    asked: list[tuple[str, str]],
    mentions: list[bool],
) -> None:
    """Asked several times (with or without mention keys), each key's row values are those
    of its extracted row that passed the input gate (else its first row), every value
    missing for a key of no extracted child; the count of such keys is returned."""
    extract = pd.DataFrame({c: [None] * len(rows) for c in IDENTITY_COLUMNS}, dtype=object)
    extract["program_code"] = [r[0] for r in rows]
    extract["child_local_id"] = [r[1] for r in rows]
    extract["first_name"] = [r[2] for r in rows]
    extract["birth_date"] = [r[4] for r in rows]
    extract["passed_input_gate"] = [r[3] for r in rows]
    identities = Identities([extract])
    expected = _oracle_rows(extract, asked)
    known = {(r[0], r[1]) for r in rows}
    for with_keys in mentions:
        values, unknown = identities.rows(asked, frozenset(), ASKED, mentions=with_keys)
        assert unknown == sum(key not in known for key in asked)
        assert len(values.own_keys) == len(asked)
        got = values.values.to_dict("records")
        for row, want in zip(got, expected, strict=True):
            assert set(row) == set(want)
            for column, value in want.items():
                assert _missing(row[column]) if _missing(value) else row[column] == value
