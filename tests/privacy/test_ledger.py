"""The hash-chained ledgers: appends, tamper detection, keyed chains and concurrent writers."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from pipelines.db import session_scope
from privacy import ledger
from privacy.errors import LedgerError
from privacy.ledger import (
    GENESIS,
    LEDGER_KEY_ENV,
    Disclosure,
    Redaction,
    append_disclosures,
    append_redactions,
    canonical,
    disclosures_for_child,
    programs_for_child,
    redactions,
    verify,
)

KEY = "k" * 40
WHEN = dt.datetime(2026, 11, 27, 18, 30, 5, 123456, tzinfo=dt.UTC)


def disclosure(i: int, **changes: object) -> Disclosure:
    values: dict[str, object] = {
        "run_id": "run-1",
        "program_code": "VT-HS-01",
        "child_local_id": f"C{i:04d}",
        "recipient_code": "VT-AOE",
        "agreement_id": "vt-aoe-2026",
        "legal_basis": "consent",
        "purpose": "state longitudinal data system",
        "fields": ("child_local_id", "race", "enrollment_date"),
        "run_date": dt.date(2026, 11, 27),
        "payload_digest": hashlib.sha256(str(i).encode()).hexdigest(),
        "disclosed_at": WHEN,
    }
    values.update(changes)
    return Disclosure(**values)  # type: ignore[arg-type]


def redaction(i: int, **changes: object) -> Redaction:
    values: dict[str, object] = {
        "run_id": "run-1",
        "program_code": "VT-HS-01",
        "subject": f"C{i:04d}",
        "agreement_id": "vt-aoe-2026",
        "reason_code": "consent_missing",
        "rule": "1303.22(a): no valid written consent",
        "recorded_at": WHEN,
    }
    values.update(changes)
    return Redaction(**values)  # type: ignore[arg-type]


def fill(engine: Engine, n: int = 10) -> None:
    with session_scope(engine) as session:
        append_disclosures(session, [disclosure(i) for i in range(n)])
        append_redactions(session, [redaction(i) for i in range(n)])


def check(
    engine: Engine, name: ledger.LedgerName = "disclosures", **kw: object
) -> ledger.VerifyReport:
    with session_scope(engine) as session:
        return verify(session, name, **kw)  # type: ignore[arg-type]


def sql(engine: Engine, *statements: str) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def id_at(engine: Engine, seq: int, table: str = "disclosure_log") -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(text(f"SELECT id FROM {table} WHERE seq = {seq}")).scalar_one()
        )


@pytest.fixture(autouse=True)
def unkeyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LEDGER_KEY_ENV, raising=False)


def test_when_appended_then_seqs_are_consecutive_and_chain_verifies(engine: Engine) -> None:
    with session_scope(engine) as session:
        assert append_disclosures(session, [disclosure(i) for i in range(3)]) == [1, 2, 3]
        assert append_disclosures(session, [disclosure(3)]) == [4]
        assert append_redactions(session, [redaction(0), redaction(1, field="race")]) == [1, 2]
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT seq, prev_hash, entry_hash FROM disclosure_log ORDER BY seq")
        ).all()
    assert rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.entry_hash for a, b in itertools.pairwise(rows))
    for name in ("disclosures", "redactions"):
        report = check(engine, name)  # type: ignore[arg-type]
        assert report.ok, report.breaks
        assert report.head_seq == report.entries
    assert check(engine).head_hash == rows[-1].entry_hash


def test_when_time_has_another_zone_then_hash_covers_utc_and_verifies(engine: Engine) -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    with session_scope(engine) as session:
        append_disclosures(session, [disclosure(0, disclosed_at=WHEN.astimezone(paris))])
        [entry] = disclosures_for_child(session, "VT-HS-01", "C0000")
    assert entry.disclosed_at == WHEN
    assert check(engine).ok


def test_when_empty_then_verify_is_ok_at_genesis(engine: Engine) -> None:
    report = check(engine)
    assert report.ok and report.entries == 0 and report.head_hash == GENESIS


# each case: SQL that tampers with a chain of 10 entries, the seq and kind of the first break
TAMPERING = [
    pytest.param(
        ["UPDATE disclosure_log SET purpose = 'marketing' WHERE seq = 5"], 5, "edited", id="edited"
    ),
    pytest.param(
        ["UPDATE disclosure_log SET fields = '[\"race\"]' WHERE seq = 7"], 7, "edited", id="fields"
    ),
    pytest.param(["DELETE FROM disclosure_log WHERE seq = 5"], 6, "deleted", id="deleted"),
    pytest.param(["DELETE FROM disclosure_log WHERE seq = 1"], 2, "deleted", id="deleted-first"),
    pytest.param(
        ["DELETE FROM disclosure_log WHERE seq = 5"]
        + [f"UPDATE disclosure_log SET seq = {s - 1} WHERE seq = {s}" for s in range(6, 11)],
        5,
        "deleted",
        id="deleted-and-renumbered",
    ),
    pytest.param(
        [
            "UPDATE disclosure_log SET seq = -1 WHERE seq = 5",
            "UPDATE disclosure_log SET seq = 5 WHERE seq = 6",
            "UPDATE disclosure_log SET seq = 6 WHERE seq = -1",
        ],
        5,
        "reordered",
        id="reordered",
    ),
]


@pytest.mark.parametrize(("statements", "seq", "kind"), TAMPERING)
def test_when_tampered_then_verify_names_seq_id_and_kind(
    engine: Engine, statements: list[str], seq: int, kind: str
) -> None:
    fill(engine)
    sql(engine, *statements)
    expected_id = id_at(engine, seq)  # the entry found at that seq after tampering
    report = check(engine)
    assert not report.ok
    first = report.breaks[0]
    assert (first.seq, first.entry_id, first.kind) == (seq, expected_id, kind)
    assert f"seq {seq} (id {expected_id})" in str(first)
    assert check(engine, "redactions").ok  # the other chain is untouched


def test_when_two_entries_swapped_then_both_reported_and_no_more(engine: Engine) -> None:
    fill(engine)
    sql(engine, *TAMPERING[-1].values[0])  # type: ignore[union-attr]
    breaks = check(engine).breaks
    assert [(b.seq, b.kind) for b in breaks] == [(5, "reordered"), (6, "reordered")]
    assert "written at seq 6, now at seq 5" in breaks[0].detail


def test_when_redaction_edited_then_its_chain_reports_it(engine: Engine) -> None:
    fill(engine)
    sql(engine, "UPDATE redaction_audit SET reason_code = 'disclosed' WHERE seq = 3")
    report = check(engine, "redactions")
    assert [(b.seq, b.kind) for b in report.breaks] == [(3, "edited")]


def test_when_edited_and_rehashed_unkeyed_then_next_link_breaks(engine: Engine) -> None:
    fill(engine)
    forge(engine, 4, lambda data: hashlib.sha256(data).hexdigest(), rest=False)
    report = check(engine)
    assert [(b.seq, b.kind) for b in report.breaks] == [(5, "relinked")]


def test_when_tail_cut_then_only_an_anchor_catches_it(engine: Engine) -> None:
    fill(engine)
    head = check(engine)
    sql(engine, "DELETE FROM disclosure_log WHERE seq = 10")
    assert check(engine).ok  # a chain alone cannot see its lost tail
    report = check(engine, anchor=(head.head_seq, head.head_hash))
    assert [(b.seq, b.kind) for b in report.breaks] == [(10, "anchor")]


def forge(engine: Engine, seq: int, digest: Callable[[bytes], str], *, rest: bool = True) -> None:
    """Change entry ``seq`` and recompute its hash (and, with ``rest``, every later one)."""
    spec = ledger._LEDGERS["disclosures"]
    table = spec.table
    with session_scope(engine) as session:
        query = select(table).where(table.c.seq >= seq).order_by(table.c.seq)
        rows = [dict(r) for r in session.execute(query).mappings()]
        prev = rows[0]["prev_hash"]
        rows[0]["purpose"] = "marketing"
        for row in rows if rest else rows[:1]:
            row["prev_hash"] = prev
            prev = digest(canonical({c: row[c] for c in spec.content_columns}))
            session.execute(
                update(table)
                .where(table.c.id == row["id"])
                .values(purpose=row["purpose"], prev_hash=row["prev_hash"], entry_hash=prev)
            )


def test_when_keyed_then_chain_rehashed_with_sha256_is_caught(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LEDGER_KEY_ENV, KEY)
    fill(engine)
    report = check(engine)
    assert report.ok and report.keyed
    forge(engine, 4, lambda data: hashlib.sha256(data).hexdigest())
    breaks = check(engine).breaks
    assert breaks[0].seq == 4 and breaks[0].kind == "edited"
    assert {b.seq for b in breaks} == set(range(4, 11))  # every forged entry fails


def test_when_keyed_chain_checked_with_other_or_no_key_then_it_fails(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LEDGER_KEY_ENV, KEY)
    fill(engine, 3)
    monkeypatch.setenv(LEDGER_KEY_ENV, "x" * 40)
    assert check(engine).breaks[0].seq == 1
    monkeypatch.delenv(LEDGER_KEY_ENV)
    assert check(engine).breaks[0].seq == 1


def test_when_key_too_short_then_append_fails_closed(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LEDGER_KEY_ENV, "short")
    with pytest.raises(LedgerError, match="shorter than 32"), session_scope(engine) as session:
        append_disclosures(session, [disclosure(0)])
    assert check_count(engine) == 0


def check_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM disclosure_log")).scalar_one())


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        pytest.param({"disclosed_at": dt.datetime(2026, 11, 27, 12)}, "timezone-aware", id="naive"),
        pytest.param({"action": "share"}, "action", id="action"),
        pytest.param({"fields": "race"}, "sequence", id="fields-string"),
    ],
)
def test_when_one_item_invalid_then_nothing_is_appended(
    engine: Engine, bad: dict[str, object], message: str
) -> None:
    with pytest.raises(LedgerError, match=message), session_scope(engine) as session:
        append_disclosures(session, [disclosure(0), disclosure(1, **bad)])
    assert check_count(engine) == 0


def _append_many(engine: Engine, worker: int, batches: int, errors: list[BaseException]) -> None:
    try:
        for batch in range(batches):
            with session_scope(engine) as session:
                append_disclosures(
                    session, [disclosure(worker * 10_000 + batch * 100 + i) for i in range(20)]
                )
    except BaseException as error:  # pragma: no cover - reported by the test
        errors.append(error)


def test_when_two_writers_append_concurrently_then_chain_stays_valid(engine: Engine) -> None:
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_append_many, args=(engine, w, 15, errors)) for w in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    report = check(engine)
    assert report.ok, report.breaks
    assert report.entries == report.head_seq == 3 * 15 * 20


def test_when_lock_held_then_second_writer_waits_for_commit(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serializes by its write lock; the advisory lock is PostgreSQL's")
    with Session(engine) as first:
        append_disclosures(first, [disclosure(0)])
        done: list[list[int]] = []
        other = threading.Thread(target=lambda: done.append(_append_one(engine)))
        other.start()
        other.join(timeout=1.0)
        assert other.is_alive()  # blocked on the advisory lock
        first.commit()
    other.join(timeout=10)
    assert done == [[2]]
    assert check(engine).ok


def _append_one(engine: Engine) -> list[int]:
    with session_scope(engine) as session:
        return append_disclosures(session, [disclosure(1)])


def test_queries_find_a_childs_disclosures_and_filter_redactions(engine: Engine) -> None:
    with session_scope(engine) as session:
        append_disclosures(
            session,
            [
                disclosure(1),
                disclosure(1, program_code="MO-HS-03", recipient_code="MO-DESE"),
                disclosure(1, action="delete", run_id="run-2"),
                disclosure(2),
            ],
        )
        append_redactions(
            session,
            [
                redaction(1),
                redaction(2, field="race", reason_code="field_not_in_agreement"),
                redaction(3, run_id="run-2"),
            ],
        )
    with session_scope(engine) as session:
        mine = disclosures_for_child(session, "VT-HS-01", "C0001")
        assert [(d.seq, d.action, d.run_id) for d in mine] == [
            (1, "disclose", "run-1"),
            (3, "delete", "run-2"),
        ]
        assert mine[0].fields == ("child_local_id", "race", "enrollment_date")
        assert mine[0].disclosed_at == WHEN
        assert programs_for_child(session, "C0001") == ["MO-HS-03", "VT-HS-01"]
        assert [r.subject for r in redactions(session, run_id="run-1")] == ["C0001", "C0002"]
        assert [r.field for r in redactions(session, fields_only=True)] == ["race"]
        assert [r.subject for r in redactions(session, run_id="run-1", fields_only=False)] == [
            "C0001"
        ]
        assert redactions(session, reason_code="nothing") == []
