"""Property: whatever ``delivery_state`` rows a record writes (new children, changed ones,
a child written twice, a child the plan thought new but already held), the table afterwards
holds exactly what writing the rows one at a time, in order, would leave, on SQLite and on
PostgreSQL; and the row keys are stored as the text ``json.dumps`` writes for them.

The oracle is a dict updated row by row, written here from the rule in
``pipelines/submission/state.py`` (insert or update on destination, program and child; a
later row of a child wins); it does not call the code it checks.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from pipelines.db import session_scope
from pipelines.submission.state import StateWrites, write_state

PROPERTY = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
WHEN = dt.datetime(2026, 11, 27, 23, 5, tzinfo=dt.UTC)
# Text PostgreSQL stores (no NUL, no lone surrogate), rich in what JSON and COPY escape.
ODD = st.sampled_from(["\t", "\n", "\r", "\\", '"', "\b", "\x01", "é", "中", "😀", "\\N", "\\."])
TEXT = st.lists(
    st.one_of(ODD, st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")),
    max_size=6,
).map("".join)
KEYS = st.dictionaries(
    st.sampled_from(["hs_child_identity.csv", "hs_enrollment.csv", "x\ty"]),
    st.lists(st.lists(TEXT, min_size=1, max_size=3), max_size=2),
    max_size=2,
)
CHILD = st.tuples(st.sampled_from(["d", "e"]), st.sampled_from(["P1", "P\\2"]), TEXT)
ROW = st.tuples(
    CHILD,
    st.text(alphabet="0123456789abcdef", max_size=4),
    KEYS,
    st.sampled_from(["held", "deleted", "dropped"]),
    st.sampled_from(["r1", "r\n2"]),
)
NIGHT = st.lists(st.tuples(ROW, st.booleans()), max_size=12)  # (row, the plan thinks it new)


def _rows(engine: Engine) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    query = text(
        "SELECT destination, program_code, child_local_id, digest, rows, status, run_id "
        "FROM delivery_state"
    )
    with engine.connect() as connection:
        return {
            tuple(r[:3]): (r[3], json.loads(r[4]) if isinstance(r[4], str) else r[4], *r[5:])
            for r in connection.execute(query)
        }


def _stored_key_texts(engine: Engine) -> dict[tuple[str, str, str], str]:
    query = text(
        "SELECT destination, program_code, child_local_id, CAST(rows AS text) FROM delivery_state"
    )
    with engine.connect() as connection:
        return {tuple(r[:3]): r[3] for r in connection.execute(query)}


@PROPERTY
@given(nights=st.lists(NIGHT, min_size=1, max_size=3))
def test_state_written_in_bulk_is_the_rows_written_one_by_one(
    engine: Engine, nights: list[list[tuple[Any, bool]]]
) -> None:
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM delivery_state"))
    expected: dict[tuple[str, str, str], tuple[Any, ...]] = {}
    texts: dict[tuple[str, str, str], str] = {}
    for night in nights:
        writes = StateWrites()
        for (child, digest, keys, status, run_id), new in night:
            row = (*child, digest, keys, status, run_id)
            (writes.new if new else writes.changed).append(row)  # new: maybe held after all
        for destination, program, local_id, digest, keys, status, run_id in writes.rows():
            expected[(destination, program, local_id)] = (digest, keys, status, run_id)
            texts[(destination, program, local_id)] = json.dumps(keys)
        with session_scope(engine) as session:
            write_state(session, writes, WHEN)
        assert _rows(engine) == expected
    if engine.dialect.name == "postgresql":  # a json column keeps the text it was given
        assert _stored_key_texts(engine) == texts
