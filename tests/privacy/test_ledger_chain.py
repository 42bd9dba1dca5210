"""The chain an append writes in one pass is, byte for byte, the one the entry format defines:
each entry hash is SHA-256 (or HMAC-SHA256 under the key, computed here independently with
``cryptography``) of :func:`privacy.ledger.canonical` of the entry, seq and prev_hash included.
The entries stored (COPY on PostgreSQL, inserts on SQLite) read back as written."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from sqlalchemy import Engine, select

from pipelines.db import session_scope
from privacy import ledger
from privacy.ledger import (
    GENESIS,
    LEDGER_KEY_ENV,
    Disclosure,
    Redaction,
    append_disclosures,
    append_redactions,
    canonical,
    disclosures_for_child,
    redactions,
    verify,
)
from schemas.ledgers import DisclosureEntry, RedactionEntry

KEY = "chain-key-" + "q" * 30
PARIS = dt.timezone(dt.timedelta(hours=1))
ODD_TEXT = [
    "plain",
    "",
    'quote " and back\\slash',
    "tab\tnew\nline\rcarriage",
    "\x01\x1f\x7f control",
    "é ü 中文 😀",
    '=HYPERLINK("x")',
    "\u2028\u2029 separators",
]


@pytest.fixture(autouse=True)
def unkeyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LEDGER_KEY_ENV, raising=False)


def _expected(rows: list[dict[str, object]], key: bytes | None) -> list[str]:
    """Entry hashes from the format's definition, one entry at a time."""
    out, prev = [], GENESIS
    for seq, row in enumerate(rows, start=1):
        data = canonical({**row, "seq": seq, "prev_hash": prev})
        if key is None:
            prev = hashlib.sha256(data).hexdigest()
        else:
            mac = crypto_hmac.HMAC(key, hashes.SHA256())
            mac.update(data)
            prev = mac.finalize().hex()
        out.append(prev)
    return out


def _disclosures() -> list[Disclosure]:
    return [
        Disclosure(
            run_id="run-odd",
            program_code="VT-HS-01",
            child_local_id=f"C{i}",
            recipient_code="VT-AOE",
            agreement_id="vt-aoe-ecids",
            legal_basis="audit_evaluation",
            purpose=text,
            fields=tuple(ODD_TEXT[: i % len(ODD_TEXT)]),
            run_date=dt.date(2026, 11, 27),
            payload_digest=hashlib.sha256(text.encode()).hexdigest(),
            action="delete" if i % 3 == 0 else "disclose",
            disclosed_at=dt.datetime(2026, 11, 27, 23, 59, i, 1000 * i, tzinfo=PARIS),
        )
        for i, text in enumerate(ODD_TEXT * 3)
    ]


def _redactions() -> list[Redaction]:
    return [
        Redaction(
            run_id="run-odd",
            program_code="VT-HS-01",
            subject=f"C{i}",
            agreement_id="vt-aoe-ecids",
            reason_code="consent_missing",
            rule=text,
            field=None if i % 2 else text,
            recorded_at=dt.datetime(2026, 11, 27, 18, 0, i, tzinfo=dt.UTC),
        )
        for i, text in enumerate(ODD_TEXT * 3)
    ]


@pytest.mark.parametrize("keyed", [False, True], ids=["sha256", "hmac"])
def test_when_appended_in_one_pass_then_hashes_are_the_formats_own(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, keyed: bool
) -> None:
    if keyed:
        monkeypatch.setenv(LEDGER_KEY_ENV, KEY)
    key = KEY.encode() if keyed else None
    with session_scope(engine) as session:
        append_disclosures(session, _disclosures())
        append_redactions(session, _redactions())
    for name, table, items, as_row in (
        ("disclosures", DisclosureEntry, _disclosures(), ledger._disclosure_row),
        ("redactions", RedactionEntry, _redactions(), ledger._redaction_row),
    ):
        with engine.connect() as connection:
            stored = connection.scalars(select(table.entry_hash).order_by(table.seq)).all()
        assert stored == _expected([as_row(i) for i in items], key), name  # type: ignore[arg-type]
        with session_scope(engine) as session:
            report = verify(session, name)  # type: ignore[arg-type]
        assert report.ok and report.entries == len(items), report.breaks


def test_when_an_append_spans_several_parts_then_each_part_is_the_formats_own(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts of 5 entries: a fields tuple, date or time first seen in a later part, equal
    tuples that are distinct objects, equal instants in two zones, all hashed and stored as
    one entry at a time would be."""
    monkeypatch.setattr(ledger, "_INSERT_BATCH", 5)
    items = _disclosures()
    same_instant = items[16].disclosed_at.astimezone(dt.UTC)  # equal, in another zone
    items[17] = dataclasses.replace(items[17], disclosed_at=same_instant)
    items[21] = dataclasses.replace(items[21], run_date=dt.date(2026, 11, 28))  # new, last part
    with session_scope(engine) as session:
        append_disclosures(session, items)
    rows = [ledger._disclosure_row(i) for i in items]
    with engine.connect() as connection:
        stored = connection.execute(
            select(DisclosureEntry.entry_hash, DisclosureEntry.fields).order_by(DisclosureEntry.seq)
        ).all()
    assert [h for h, _ in stored] == _expected(rows, None)
    assert [f for _, f in stored] == [list(i.fields) for i in items]
    with session_scope(engine) as session:
        report = verify(session, "disclosures")
    assert report.ok and report.entries == len(items), report.breaks


def test_when_stored_by_copy_or_insert_then_entries_read_back_as_written(engine: Engine) -> None:
    with session_scope(engine) as session:
        append_disclosures(session, _disclosures())
        append_redactions(session, _redactions())
    with session_scope(engine) as session:
        back = disclosures_for_child(session, "VT-HS-01", "C5")
        audit = redactions(session, subject="C4")
    [entry] = back
    sent = _disclosures()[5]
    assert entry.fields == sent.fields and entry.purpose == sent.purpose
    assert entry.disclosed_at == sent.disclosed_at and entry.action == sent.action
    assert [a.rule for a in audit] == [ODD_TEXT[4]] and audit[0].field == ODD_TEXT[4]


def test_when_a_second_append_follows_then_it_links_to_the_stored_head(engine: Engine) -> None:
    items = _disclosures()
    with session_scope(engine) as session:
        assert append_disclosures(session, items[:5]) == [1, 2, 3, 4, 5]
    with session_scope(engine) as session:
        assert append_disclosures(session, items[5:]) == list(range(6, len(items) + 1))
    with engine.connect() as connection:
        stored = connection.scalars(
            select(DisclosureEntry.entry_hash).order_by(DisclosureEntry.seq)
        ).all()
    assert stored == _expected([ledger._disclosure_row(i) for i in items], None)


def _columns(items: list[Disclosure]) -> dict[str, list[object]]:
    rows = [ledger._disclosure_row(i) for i in items]
    return {name: [row[name] for row in rows] for name in rows[0]}


def test_when_appending_then_the_block_runs_with_the_seqs_and_the_entries_are_stored_after(
    engine: Engine,
) -> None:
    items = _disclosures()
    ran = []
    with session_scope(engine) as session:
        with ledger.appending(session, "disclosures", _columns(items)) as seqs:
            ran.append(list(seqs))  # the caller's own work, the session left alone
        report = verify(session, "disclosures")
    assert ran == [list(range(1, len(items) + 1))]
    assert report.ok and report.entries == len(items), report.breaks


def test_when_the_block_of_appending_fails_then_nothing_is_stored(engine: Engine) -> None:
    class Boom(Exception):
        pass

    with (
        pytest.raises(Boom),
        session_scope(engine) as session,
        ledger.appending(session, "disclosures", _columns(_disclosures())),
    ):
        raise Boom
    with session_scope(engine) as session:
        assert verify(session, "disclosures").entries == 0
        assert append_disclosures(session, _disclosures()[:1]) == [1]
