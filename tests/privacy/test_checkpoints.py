"""Verified-through checkpoints: a routine verify walks only new entries, yet an edited or
forged checkpoint, a recent tamper, a deletion before the checkpoint and an edited anchored
entry still show; an edit elsewhere before the checkpoint takes the full verify.
On SQLite and PostgreSQL, unkeyed and keyed."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, delete, func, select, update

from pipelines.db import session_scope
from privacy.anchors import LedgerCheck, verify_ledgers
from privacy.checkpoints import Checkpoint, latest
from privacy.ledger import LEDGER_KEY_ENV, digest
from schemas import DisclosureEntry, LedgerAnchor, LedgerCheckpoint, RedactionEntry, Run
from tests.privacy.test_anchors import night

KEY = "k" * 40


@pytest.fixture(params=["unkeyed", "keyed"])
def keyed(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    if request.param == "keyed":
        monkeypatch.setenv(LEDGER_KEY_ENV, KEY)
        return True
    monkeypatch.delenv(LEDGER_KEY_ENV, raising=False)
    return False


def check(engine: Engine, *, full: bool = False, record: bool = True) -> LedgerCheck:
    with session_scope(engine) as session:
        return verify_ledgers(session, full=full, record=record)


def kinds(result: LedgerCheck, name: str = "disclosures") -> list[tuple[int | None, str]]:
    return [(b.seq, b.kind) for b in result.reports[name].breaks]


def two_nights(engine: Engine) -> None:
    """Run 1 (seq 1..4, anchored at 4), a verify (checkpoint at 4), run 2 (seq 5..7)."""
    night(engine, "run-1", 0)
    assert check(engine, full=True).ok
    night(engine, "run-2", 10, n=3)


def edit(engine: Engine, seq: int, table: type = DisclosureEntry) -> None:
    column = table.purpose if table is DisclosureEntry else table.rule  # type: ignore[attr-defined]
    with session_scope(engine) as session:
        session.execute(update(table).where(table.seq == seq).values({column: "changed"}))


def test_a_routine_verify_walks_only_the_entries_after_the_checkpoint(
    engine: Engine, keyed: bool
) -> None:
    two_nights(engine)
    result = check(engine)
    report = result.reports["disclosures"]
    assert result.ok and not result.full
    assert (report.since, report.entries, report.head_seq) == (4, 3, 7)
    assert "incremental: seq 5..7" in report.summary()
    assert result.started_from["disclosures"].seq == 4
    assert result.recorded["disclosures"].seq == 7  # the next routine verify starts there
    again = check(engine).reports["disclosures"]
    assert (again.since, again.entries) == (7, 0) and "nothing after" in again.summary()
    whole = check(engine, full=True).reports["disclosures"]
    assert (whole.since, whole.entries) == (0, 7) and "full: every entry" in whole.summary()


def test_a_tamper_after_the_checkpoint_is_caught_by_the_routine_verify(
    engine: Engine, keyed: bool
) -> None:
    two_nights(engine)
    edit(engine, 6)
    result = check(engine)
    assert not result.ok and (6, "edited") in kinds(result)
    assert result.reports["disclosures"].since == 4
    assert "disclosures" not in result.recorded  # a broken chain leaves no checkpoint


def test_an_edit_before_the_checkpoint_takes_the_full_verify(engine: Engine, keyed: bool) -> None:
    two_nights(engine)
    edit(engine, 2)  # neither the checkpointed nor an anchored entry
    assert check(engine, record=False).ok  # routine: not walked (the documented limit)
    full = check(engine, full=True)
    assert not full.ok and kinds(full) == [(2, "edited")]


def test_an_edit_of_an_anchored_entry_before_the_checkpoint_is_caught_by_the_anchor(
    engine: Engine, keyed: bool
) -> None:
    two_nights(engine)
    assert check(engine).recorded["disclosures"].seq == 7  # checkpoint now past run 1's anchor
    edit(engine, 4)  # run 1's anchored head
    result = check(engine)
    assert not result.ok and kinds(result) == [(4, "edited")]
    assert "anchored by run run-1" in str(result.reports["disclosures"].breaks[0])


def test_an_edit_of_the_checkpointed_entry_is_caught(engine: Engine, keyed: bool) -> None:
    two_nights(engine)
    edit(engine, 4, RedactionEntry)
    result = check(engine)
    assert not result.ok
    assert kinds(result, "redactions")[0] == (4, "checkpoint")
    assert result.reports["redactions"].since == 0  # refused: the whole chain was walked
    assert (4, "edited") in kinds(result, "redactions")


def test_a_deletion_before_the_checkpoint_is_caught_by_the_count(
    engine: Engine, keyed: bool
) -> None:
    two_nights(engine)
    with session_scope(engine) as session:
        session.execute(delete(DisclosureEntry).where(DisclosureEntry.seq == 2))
    result = check(engine)
    assert not result.ok
    first = result.reports["disclosures"].breaks[0]
    assert first.kind == "checkpoint" and "3 entries at or before it, not 4" in first.detail
    assert (3, "deleted") in kinds(result)


def test_a_cut_tail_is_caught_by_the_checkpoint_even_without_anchors(
    engine: Engine, keyed: bool
) -> None:
    two_nights(engine)
    assert check(engine).recorded["disclosures"].seq == 7
    with session_scope(engine) as session:
        session.execute(delete(DisclosureEntry).where(DisclosureEntry.seq > 5))
        session.execute(delete(LedgerAnchor))
    result = check(engine, record=False)
    assert not result.ok and kinds(result) == [(7, "checkpoint")]
    assert "that entry is missing" in result.reports["disclosures"].breaks[0].detail


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"seq": 3}, id="seq-moved-back"),
        pytest.param({"entry_hash": "f" * 64}, id="hash-replaced"),
        pytest.param({"full": False}, id="mode-changed"),
    ],
)
def test_an_edited_checkpoint_is_detected_and_the_chain_walked_whole(
    engine: Engine, keyed: bool, change: dict[str, object]
) -> None:
    two_nights(engine)
    with session_scope(engine) as session:
        session.execute(update(LedgerCheckpoint).values(change))
    result = check(engine, record=False)
    assert not result.ok
    first = result.reports["disclosures"].breaks[0]
    assert first.kind == "checkpoint" and "its hash does not match" in first.detail
    assert result.reports["disclosures"].since == 0
    assert result.reports["disclosures"].entries == 7


def test_a_checkpoint_forged_without_the_key_is_detected(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone who can write the database but lacks the key edits an early entry, then writes
    a checkpoint at the head so a routine verify would skip the edit: it is refused."""
    monkeypatch.setenv(LEDGER_KEY_ENV, KEY)
    two_nights(engine)
    edit(engine, 2)
    with session_scope(engine) as session:
        head = session.execute(
            select(DisclosureEntry.seq, DisclosureEntry.entry_hash)
            .order_by(DisclosureEntry.seq.desc())
            .limit(1)
        ).one()
        forged = Checkpoint(
            ledger="disclosures",
            seq=head.seq,
            entry_hash=head.entry_hash,
            full=True,
            keyed=True,
            verified_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
        )
        monkeypatch.setenv(LEDGER_KEY_ENV, "x" * 40)  # the forger's guess
        signature = digest(forged.content())
        monkeypatch.setenv(LEDGER_KEY_ENV, KEY)
        session.add(LedgerCheckpoint(**forged.content(), checkpoint_hash=signature))
    result = check(engine, record=False)
    assert not result.ok
    assert kinds(result) == [(7, "checkpoint"), (2, "edited")]


def test_an_unkeyed_checkpoint_is_refused_once_a_key_is_set(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(LEDGER_KEY_ENV, raising=False)
    two_nights(engine)
    monkeypatch.setenv(LEDGER_KEY_ENV, KEY)
    result = check(engine, record=False)
    report = result.reports["disclosures"]
    assert report.wrong_key and [b.kind for b in report.breaks] == ["key"]


def test_checkpoints_are_appended_only_when_something_new_was_verified(engine: Engine) -> None:
    two_nights(engine)
    check(engine)
    check(engine)
    with session_scope(engine) as session:
        count = session.scalar(select(func.count()).select_from(LedgerCheckpoint))
        newest = latest(session, "disclosures")
    assert count == 4  # each ledger: seq 4 (full), seq 7 (routine); the repeat adds none
    assert newest is not None and (newest.seq, newest.full) == (7, False)


def test_a_routine_verify_without_a_checkpoint_walks_every_entry_and_says_so(
    engine: Engine,
) -> None:
    night(engine, "run-1", 0)
    result = check(engine)
    report = result.reports["disclosures"]
    assert result.ok and (report.since, report.entries) == (0, 4)
    assert "full: every entry, seq 1..4" in report.summary()
    assert result.started_from == {}
    assert (result.recorded["disclosures"].seq, result.recorded["disclosures"].full) == (4, True)


def finished_run(engine: Engine, run_id: str, when: dt.datetime, logged: int) -> None:
    with session_scope(engine) as session:
        session.add(
            Run(
                id=run_id,
                destination="vt",
                run_date=when.date(),
                dry_run=False,
                status="success",
                started_at=when,
                finished_at=when,
                summary={"children": {"logged": logged}},
            )
        )


def test_a_routine_verify_checks_the_runs_since_its_checkpoints_and_full_checks_all(
    engine: Engine,
) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    night(engine, "run-1", 0)
    finished_run(engine, "run-1", now - dt.timedelta(days=2), logged=4)
    assert check(engine, full=True).ok  # checkpoints now
    night(engine, "run-2", 10, n=3)
    finished_run(engine, "run-2", now + dt.timedelta(minutes=1), logged=5)  # 3 in the log
    with session_scope(engine) as session:  # an older run's summary no longer matches
        session.execute(
            update(Run).where(Run.id == "run-1").values(summary={"children": {"logged": 9}})
        )
    routine = check(engine, record=False)
    assert routine.delivery_problems == [
        "run run-2 logged 5 disclosures; the disclosure log holds 3"
    ]
    full = check(engine, full=True, record=False)
    assert sorted(full.delivery_problems) == [
        "run run-1 logged 9 disclosures; the disclosure log holds 4",
        "run run-2 logged 5 disclosures; the disclosure log holds 3",
    ]
