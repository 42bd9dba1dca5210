"""0015: one index (child, program, seq) serves both of a child's lookups in the disclosure
log. Entries logged before it are found as before, a child's entries of one program in seq
order; on PostgreSQL both lookups read that index (no scan of the log, no sort), and going
back down restores the two indexes it replaced."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session

from pipelines.db import make_engine
from privacy.ledger import disclosures_for_child, programs_for_child
from schemas.migrate import downgrade, upgrade
from tests.conftest import reset_schema

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
WHEN = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
ENTRY = text(
    "INSERT INTO disclosure_log (seq, run_id, program_code, child_local_id, recipient_code, "
    "agreement_id, legal_basis, purpose, fields, action, run_date, disclosed_at, "
    "payload_digest, prev_hash, entry_hash) VALUES (:seq, 'run-1', :program, :child, "
    "'VT-AOE', 'vt', 'consent', 'p', '[]', 'disclose', :day, :when, 'd', 'p', 'h')"
)
# (seq, program, child): a child under two programs, entries of one program not adjacent
ENTRIES = [(1, "VT-B", "C1"), (2, "VT-A", "C1"), (3, "VT-A", "C2"), (4, "VT-B", "C1")]


@pytest.fixture(params=BACKENDS)
def before_0015(request: pytest.FixtureRequest, tmp_path) -> Engine:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url = reset_schema(request.getfixturevalue("pg_url"))
    engine = make_engine(url)
    upgrade(engine, "0014")
    with engine.begin() as connection:
        for seq, program, child in ENTRIES:
            values = {"seq": seq, "program": program, "child": child}
            connection.execute(ENTRY, values | {"day": WHEN.date(), "when": WHEN})
    yield engine
    engine.dispose()


def indexes(engine: Engine) -> dict[str, list[str]]:
    found = inspect(engine).get_indexes("disclosure_log")
    return {i["name"]: list(i["column_names"]) for i in found if str(i["name"]).startswith("ix_")}


def test_entries_from_before_are_found_by_child_after_it(before_0015: Engine) -> None:
    engine = before_0015
    upgrade(engine, "0015")
    assert indexes(engine) == {
        "ix_disclosure_log_child_program_seq": ["child_local_id", "program_code", "seq"],
        "ix_disclosure_log_run_id": ["run_id"],
    }
    with Session(engine) as session:
        assert [e.seq for e in disclosures_for_child(session, "VT-B", "C1")] == [1, 4]
        assert [e.seq for e in disclosures_for_child(session, "VT-A", "C1")] == [2]
        assert programs_for_child(session, "C1") == ["VT-A", "VT-B"]
        assert programs_for_child(session, "C3") == []
    downgrade(engine, "0014")
    assert indexes(engine) == {
        "ix_disclosure_log_child_program": ["child_local_id", "program_code"],
        "ix_disclosure_log_program_child_seq": ["program_code", "child_local_id", "seq"],
        "ix_disclosure_log_run_id": ["run_id"],
    }


@pytest.mark.postgres
def test_both_lookups_read_the_one_index_without_a_sort(pg_url: str) -> None:
    engine = make_engine(reset_schema(pg_url))
    upgrade(engine)
    queries = [
        "SELECT * FROM disclosure_log WHERE program_code = 'VT-A' AND child_local_id = 'C1' "
        "ORDER BY seq",
        "SELECT DISTINCT program_code FROM disclosure_log WHERE child_local_id = 'C1' "
        "ORDER BY program_code",
    ]
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL enable_seqscan = off"))  # an empty table otherwise
        for query in queries:
            plan = "\n".join(connection.scalars(text(f"EXPLAIN {query}")))
            assert "ix_disclosure_log_child_program_seq" in plan, plan
            assert "Sort" not in plan, plan
    engine.dispose()
