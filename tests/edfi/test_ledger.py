"""The idempotency ledger on SQLite and PostgreSQL: upserts by natural key, lookups,
what a revocation deletes."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from pipelines.db import session_scope
from pipelines.edfi import ledger as ledger_module
from pipelines.edfi.ledger import DELETED, SENT, LedgerEntry, SentLedger
from schemas.delivery import SentResource


def entry(key: str, *, program: str = "VT-HS-01", child: str = "C1", digest: str = "d1",
          resource_id: str | None = "id-1", status: str = SENT,
          resource: str = "students") -> LedgerEntry:  # fmt: skip
    return LedgerEntry(resource, key, digest, {"studentUniqueId": key}, program, child,
                       resource_id, status)  # fmt: skip


@pytest.fixture(params=["upsert", "portable"])
def ledger(request: pytest.FixtureRequest, engine: Engine,
           monkeypatch: pytest.MonkeyPatch) -> SentLedger:  # fmt: skip
    """The ledger, writing by ``ON CONFLICT`` upsert and by the portable lookup path."""
    if request.param == "portable":
        monkeypatch.setattr(ledger_module, "_UPSERTS", {})
    return SentLedger(engine, "edfi-test")


def rows(engine: Engine) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(SentResource)) or 0


def test_record_then_lookup(ledger: SentLedger, engine: Engine) -> None:
    ledger.record([entry("k1"), entry("k2", child="C2")], "run-1")
    found = ledger.lookup([("students", "k1"), ("students", "k2"), ("students", "k3")])
    assert set(found) == {("students", "k1"), ("students", "k2")}
    assert found[("students", "k1")].child_key == ("VT-HS-01", "C1")
    by_program = ledger.lookup([("students", "k1")], "VT-HS-01")
    assert set(by_program) == {("students", "k1")}
    assert rows(engine) == 2


def test_same_key_again_updates_and_keeps_the_resource_id(
    ledger: SentLedger, engine: Engine
) -> None:
    ledger.record([entry("k1", digest="d1", resource_id="id-1")], "run-1")
    ledger.record([entry("k1", digest="d2", resource_id=None)], "run-2")
    found = ledger.lookup([("students", "k1")])[("students", "k1")]
    assert (found.payload_digest, found.resource_id) == ("d2", "id-1")
    assert rows(engine) == 1


def test_a_child_who_moved_programs_under_the_same_key_is_updated(
    ledger: SentLedger, engine: Engine
) -> None:
    ledger.record([entry("9000000001", program="VT-HS-01", child="C1")], "run-1")
    ledger.record([entry("9000000001", program="VT-EHS-02", child="C7")], "run-2")
    found = ledger.lookup([("students", "9000000001")])[("students", "9000000001")]
    assert found.child_key == ("VT-EHS-02", "C7")
    assert rows(engine) == 1


def test_for_children_lists_only_what_is_still_held(ledger: SentLedger) -> None:
    ledger.record([
        entry("k1", child="C1"), entry("k1s", child="C1", resource="studentSchoolAssociations"),
        entry("k2", child="C2"), entry("k3", child="C3", status=DELETED),
    ], "run-1")  # fmt: skip
    held = ledger.for_children([("VT-HS-01", "C1"), ("VT-HS-01", "C3"), ("MO-HS-03", "C2")])
    assert sorted(e.key_digest for e in held) == ["k1", "k1s"]


def test_destinations_are_kept_apart(engine: Engine) -> None:
    SentLedger(engine, "a").record([entry("k1")], "run-1")
    assert SentLedger(engine, "b").lookup([("students", "k1")]) == {}
    SentLedger(engine, "b").record([entry("k1")], "run-1")
    assert rows(engine) == 2
