"""The idempotency ledger on SQLite and PostgreSQL: upserts by natural key, lookups,
what a revocation deletes."""

from __future__ import annotations

from dataclasses import replace

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
        monkeypatch.setattr(ledger_module, "UPSERTS", {})
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


def with_fields(found: LedgerEntry, fields: tuple[str, ...] | None) -> LedgerEntry:
    return LedgerEntry(found.resource, found.key_digest, found.payload_digest,
                       found.natural_key, found.program_code, found.child_local_id,
                       found.resource_id, found.status, found.id, fields)  # fmt: skip


def stored_fields(engine: Engine) -> dict[str, list[str] | None]:
    with session_scope(engine) as session:
        return dict(session.execute(select(SentResource.key_digest, SentResource.fields)).all())


@pytest.mark.parametrize(
    ("sends", "then", "kept"),
    [  # the fields each write carries, in turn; what the row holds after them
        pytest.param([("last_name", "first_name")], None, ["first_name", "last_name"],
                     id="sent: sorted"),
        pytest.param([("first_name",), ("birth_date", "first_name")], None,
                     ["birth_date", "first_name"], id="sent again: the new body's"),
        pytest.param([("first_name",), ()], None, [], id="sent again carrying none"),
        pytest.param([("first_name",)], DELETED, ["first_name"],
                     id="deleted: what the deleted copy carried"),
        pytest.param([None], None, None, id="written without fields: NULL"),
        pytest.param([("first_name",), None], None, ["first_name"],
                     id="a write without fields keeps them"),
    ],
)  # fmt: skip
def test_the_fields_a_body_carried_are_kept_per_row(
    ledger: SentLedger, engine: Engine, sends: list[tuple[str, ...] | None], then: str | None,
    kept: list[str] | None,
) -> None:  # fmt: skip
    for number, fields in enumerate(sends):
        ledger.record([with_fields(entry("k1", digest=f"d{number}"), fields)], f"run-{number}")
    if then is not None:
        found = ledger.lookup([("students", "k1")])[("students", "k1")]
        assert found.fields is None, "lookups do not read the fields"
        ledger.record([replace(found, status=then)], "run-gone")
    assert stored_fields(engine) == {"k1": kept}


def test_sent_by_children_gives_each_childs_resources_with_their_fields(
    ledger: SentLedger,
) -> None:
    ssa = "studentSchoolAssociations"
    ledger.record([
        with_fields(entry("s1", child="C1"), ("last_name", "first_name")),
        with_fields(entry("a1", child="C1", resource=ssa), ("entry_date",)),
        with_fields(entry("a2", child="C1", resource=ssa), ("exit_date", "entry_date")),
        with_fields(entry("s2", child="C2"), ("first_name",)),
        with_fields(entry("a3", child="C2", resource=ssa), ("entry_date",)),
        entry("a4", child="C2", resource=ssa),  # a row from before the ledger kept fields
        with_fields(entry("s3", child="C3", status=DELETED), ("first_name",)),
        with_fields(entry("s4", child="C4", program="MO-HS-03"), ("first_name",)),
    ], "run-1")  # fmt: skip
    ledger.record([with_fields(entry("s5", child="C5"), ("first_name",))], "run-2")
    assert ledger.sent_by_children("run-1", "VT-HS-01") == {
        (("VT-HS-01", "C1"), "students"): ("first_name", "last_name"),
        (("VT-HS-01", "C1"), ssa): ("entry_date", "exit_date"),
        (("VT-HS-01", "C2"), "students"): ("first_name",),
        (("VT-HS-01", "C2"), ssa): None,
    }
