"""Self-anchoring ledgers: a cut tail, a wipe, an edited anchor, a wrong key, and the
ledgers against the delivery ledger and the runs, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, update

from pipelines.db import session_scope
from privacy.anchors import (
    anchor_run,
    anchors,
    export_anchors,
    heads,
    read_anchor_file,
    verify_ledgers,
)
from privacy.errors import LedgerError
from privacy.ledger import GENESIS, LEDGER_KEY_ENV, append_disclosures, append_redactions
from schemas import Delivery, DisclosureEntry, LedgerAnchor, RedactionEntry, Run
from tests.privacy.test_ledger import disclosure, redaction

KEY = "k" * 40
OTHER_KEY = "o" * 40


@pytest.fixture(autouse=True)
def _unkeyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LEDGER_KEY_ENV, raising=False)


def night(engine: Engine, run_id: str, start: int, n: int = 4) -> dict:
    """One run: ``n`` disclosures and ``n`` redactions, then its anchor."""
    with session_scope(engine) as session:
        append_disclosures(session, [disclosure(i, run_id=run_id) for i in range(start, start + n)])
        append_redactions(session, [redaction(i, run_id=run_id) for i in range(start, start + n)])
        return anchor_run(session, run_id)


def verified(engine: Engine, **kw: object):  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        return verify_ledgers(session, **kw)  # type: ignore[arg-type]


def cut(engine: Engine, table: type, above: int) -> None:
    with session_scope(engine) as session:
        session.execute(delete(table).where(table.seq > above))


def test_when_a_run_anchors_then_its_heads_are_the_ledgers_heads(engine: Engine) -> None:
    night(engine, "run-1", 0)
    anchor = night(engine, "run-2", 10, n=3)
    with session_scope(engine) as session:
        now = heads(session)
        stored = anchors(session)
    assert anchor["disclosures"] == {"seq": 7, "hash": now["disclosures"][1]}
    assert anchor["redactions"]["seq"] == 7 and not anchor["keyed"]
    assert [a.run_id for a in stored] == ["run-1", "run-2"]
    check = verified(engine)
    assert check.ok and check.anchor is not None and check.anchor.run_id == "run-2"


def test_when_the_ledgers_are_empty_then_an_anchor_holds_genesis(engine: Engine) -> None:
    with session_scope(engine) as session:
        anchor = anchor_run(session, "dry-1")
    assert anchor["disclosures"] == {"seq": 0, "hash": GENESIS}
    assert verified(engine).ok


@pytest.mark.parametrize(
    ("table", "ledger", "above"),
    [
        (DisclosureEntry, "disclosures", 6),  # the newest two entries cut
        (DisclosureEntry, "disclosures", 0),  # wiped
        (RedactionEntry, "redactions", 7),  # only the newest one cut
        (RedactionEntry, "redactions", 0),
    ],
    ids=["disclosures-tail", "disclosures-wipe", "redactions-last", "redactions-wipe"],
)
def test_when_the_tail_is_cut_or_wiped_then_the_anchor_shows_it(
    engine: Engine, table: type, ledger: str, above: int
) -> None:
    night(engine, "run-1", 0)
    night(engine, "run-2", 10)
    cut(engine, table, above)
    check = verified(engine)
    report = check.reports[ledger]
    assert not check.ok and not report.ok
    assert [b.kind for b in report.breaks] == ["anchor"]
    assert "anchored seq 8 is missing" in str(report.breaks[0])
    assert f"ends at seq {above}" in str(report.breaks[0])


def test_when_the_tail_is_cut_and_regrown_then_the_anchored_hash_differs(engine: Engine) -> None:
    night(engine, "run-1", 0)
    cut(engine, DisclosureEntry, 2)
    with session_scope(engine) as session:  # an impostor appends as if nothing happened
        append_disclosures(session, [disclosure(90 + i, run_id="run-x") for i in range(2)])
    report = verified(engine).reports["disclosures"]
    assert [b.kind for b in report.breaks] == ["anchor"]
    assert "differs from the anchor" in str(report.breaks[0])


def test_when_entries_follow_the_anchor_then_still_intact(engine: Engine) -> None:
    night(engine, "run-1", 0)
    with session_scope(engine) as session:  # a run still under way: appended, not yet anchored
        append_disclosures(session, [disclosure(50, run_id="run-2")])
    assert verified(engine).ok


def test_when_an_anchor_is_edited_then_its_hash_shows_it(engine: Engine) -> None:
    night(engine, "run-1", 0)
    night(engine, "run-2", 10)
    cut(engine, DisclosureEntry, 4)
    with session_scope(engine) as session:  # cut the tail and move the newest anchor back
        first = heads(session)["disclosures"]
        session.execute(
            update(LedgerAnchor)
            .where(LedgerAnchor.run_id == "run-2")
            .values(disclosures_seq=first[0], disclosures_hash=first[1])
        )
    check = verified(engine)
    assert check.reports["disclosures"].ok
    assert check.anchor_problems == [
        "anchor of run run-2: its hash does not match (edited, or another key)"
    ]
    assert not check.ok


def test_when_anchors_are_deleted_then_an_exported_file_still_shows_the_cut(
    engine: Engine, tmp_path: Path
) -> None:
    night(engine, "run-1", 0)
    night(engine, "run-2", 10)
    kept = tmp_path / "anchors.json"
    with session_scope(engine) as session:
        assert export_anchors(session, kept) == 2
    assert "C0001" not in kept.read_text()  # run ids, seqs and hashes only
    cut(engine, DisclosureEntry, 4)
    with session_scope(engine) as session:
        session.execute(delete(LedgerAnchor).where(LedgerAnchor.run_id == "run-2"))
    assert verified(engine).ok  # the database alone cannot tell any more
    check = verified(engine, exported=read_anchor_file(kept))
    assert not check.ok
    assert check.anchor_problems == [
        "exported anchor of run run-2 is no longer stored",
        "disclosures: seq 8 of run run-2's anchor is missing",
    ]


def test_when_the_anchors_file_is_not_one_then_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"anchors": []}')
    with pytest.raises(LedgerError, match="not an anchors file"):
        read_anchor_file(bad)
    with pytest.raises(LedgerError, match="cannot read"):
        read_anchor_file(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("written", "verified_with", "hint"),
    [
        (KEY, OTHER_KEY, "is not the key this ledger was written with"),
        (None, KEY, "written without a key: unset"),
        (KEY, None, "written with a key: set"),
    ],
    ids=["other-key", "keyed-reader-unkeyed-ledger", "unkeyed-reader-keyed-ledger"],
)
def test_when_the_key_is_wrong_then_one_break_says_so(
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    written: str | None,
    verified_with: str | None,
    hint: str,
) -> None:
    if written:
        monkeypatch.setenv(LEDGER_KEY_ENV, written)
    night(engine, "run-1", 0, n=300)
    monkeypatch.delenv(LEDGER_KEY_ENV, raising=False)
    if verified_with:
        monkeypatch.setenv(LEDGER_KEY_ENV, verified_with)
    check = verified(engine)
    for report in check.reports.values():
        assert report.wrong_key and len(report.breaks) == 1 and report.more_breaks == 0
        assert report.breaks[0].kind == "key" and report.breaks[0].seq == 1
        assert "the key looks wrong" in str(report.breaks[0]) and hint in str(report.breaks[0])
        assert "the key looks wrong" in report.summary()


def test_when_the_key_is_right_and_one_entry_edited_then_edited_not_key(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LEDGER_KEY_ENV, KEY)
    night(engine, "run-1", 0)
    with session_scope(engine) as session:
        session.execute(
            update(DisclosureEntry).where(DisclosureEntry.seq == 1).values(purpose="edited")
        )
    report = verified(engine).reports["disclosures"]
    assert not report.wrong_key and [b.kind for b in report.breaks] == ["edited"]


def _delivery(engine: Engine, run_id: str, program: str, considered: int) -> None:
    now = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    with session_scope(engine) as session:
        session.add(
            Delivery(
                run_id=run_id,
                destination="vt",
                program_code=program,
                batch_digest=f"{run_id}-{program}".ljust(64, "0"),
                status="logged",
                artifacts={"prepared": {"counts": {"considered": considered}}},
                created_at=now,
                updated_at=now,
            )
        )


def test_when_a_logged_batch_has_no_entries_then_the_delivery_check_says_so(
    engine: Engine,
) -> None:
    night(engine, "run-1", 0)  # VT-HS-01 entries under run-1
    _delivery(engine, "run-1", "VT-HS-01", 4)
    _delivery(engine, "run-1", "VT-EHS-02", 0)  # nothing to consider: nothing to log
    assert verified(engine).ok
    _delivery(engine, "run-1", "VT-HS-03", 2)
    assert verified(engine).delivery_problems == [
        "delivery of VT-HS-03 to vt in run run-1 is logged, but neither ledger has an entry "
        "for it (entries deleted?)"
    ]


def test_when_a_batch_withheld_every_child_then_its_audit_entries_are_its_entries(
    engine: Engine,
) -> None:
    """Only the redaction audit has entries of a program whose children were all withheld:
    that counts, for that run only (its entries under another run do not)."""
    night(engine, "run-1", 0)
    with session_scope(engine) as session:
        append_redactions(session, [redaction(i, program_code="VT-HS-04") for i in (50, 51)])
    _delivery(engine, "run-1", "VT-HS-04", 2)
    assert verified(engine).ok and verified(engine, full=False).ok
    _delivery(engine, "run-2", "VT-HS-04", 2)
    problem = (
        "delivery of VT-HS-04 to vt in run run-2 is logged, but neither ledger has an entry "
        "for it (entries deleted?)"
    )
    assert verified(engine).delivery_problems == [problem]


def test_when_a_run_logged_more_than_the_log_holds_then_the_run_check_says_so(
    engine: Engine,
) -> None:
    night(engine, "run-1", 0)
    now = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    with session_scope(engine) as session:
        session.add(
            Run(
                id="run-1",
                destination="vt",
                run_date=now.date(),
                dry_run=False,
                status="success",
                started_at=now,
                finished_at=now,
                summary={"children": {"logged": 4}},
            )
        )
    assert verified(engine).ok
    with session_scope(engine) as session:  # an entry in the middle goes, the rest renumbered
        session.execute(delete(DisclosureEntry).where(DisclosureEntry.seq == 2))
    check = verified(engine)
    assert "run run-1 logged 4 disclosures; the disclosure log holds 3" in check.delivery_problems
