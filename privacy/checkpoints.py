"""Verified-through checkpoints: a routine verify walks only the entries written since.

Walking a whole chain costs about two minutes per million entries. Each verification that
finds a ledger intact appends a checkpoint (``ledger_checkpoints``): the ledger, the ``seq`` it
was verified through and that entry's ``entry_hash``, signed like the anchors (``checkpoint_hash``
is the ledgers' own digest of the other columns: HMAC-SHA256 when ``$DATASHARE_LEDGER_KEY`` is
set). A routine verify then

1. vouches for the newest checkpoint (:func:`vouch`): its signature holds under the current
   key; the entry at its ``seq`` is still there, still has that ``entry_hash`` and its content
   still gives it; exactly ``seq`` entries lie at or before it (no entry deleted or slipped in
   before it). When any of this fails the checkpoint is reported (a ``checkpoint`` break) and
   the whole chain is walked instead;
2. walks the entries after the checkpoint, the first linked to the checkpoint's hash;
3. spot-checks every stored anchor at or before the checkpoint (:func:`anchor_spot_checks`):
   the anchored entry still has the anchored hash and its content still gives it.

What a routine verify cannot see: an entry before the checkpoint edited in place, unless it is
a checkpointed or anchored one (1, 3). The full verify (``datashare audit verify --full``, the
console's full job) walks every entry and catches it; run it now and then.

Against whom: keyed, nobody without the key can forge or edit a checkpoint (its signature
breaks), nor re-hash entries to match one. Unkeyed, like the chain itself, anyone who can write
the database can write a checkpoint past an edit: there, only the full verify is a check.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from privacy.ledger import (
    Break,
    LedgerName,
    VerifyReport,
    digest,
    entry_matches,
    ledger_key,
    ledger_table,
)
from schemas.verification import LedgerCheckpoint

__all__ = ["Checkpoint", "anchor_spot_checks", "latest", "record", "vouch"]


@dataclass(frozen=True)
class Checkpoint:
    """``ledger`` verified through ``seq`` (``entry_hash`` there), by a full walk or not."""

    ledger: str
    seq: int
    entry_hash: str
    full: bool
    keyed: bool
    verified_at: dt.datetime
    checkpoint_hash: str = ""
    id: int | None = None

    def content(self) -> dict[str, Any]:
        """The columns ``checkpoint_hash`` covers."""
        return {
            "ledger": self.ledger,
            "seq": self.seq,
            "entry_hash": self.entry_hash,
            "full": self.full,
            "keyed": self.keyed,
            "verified_at": self.verified_at,
        }

    def describe(self) -> str:
        """One line: where, how and when (no PII: seqs and times only)."""
        how = "full" if self.full else "incremental"
        return f"seq {self.seq} ({how} verify of {self.verified_at.isoformat()})"


def _from_row(row: LedgerCheckpoint) -> Checkpoint:
    at = row.verified_at
    return Checkpoint(
        ledger=row.ledger,
        seq=int(row.seq),
        entry_hash=row.entry_hash,
        full=bool(row.full),
        keyed=bool(row.keyed),
        verified_at=at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC),
        checkpoint_hash=row.checkpoint_hash,
        id=int(row.id),
    )


def latest(session: Session, ledger: LedgerName) -> Checkpoint | None:
    """The newest checkpoint of ``ledger`` (the one written last), or None."""
    row = session.scalars(
        select(LedgerCheckpoint)
        .where(LedgerCheckpoint.ledger == ledger)
        .order_by(LedgerCheckpoint.id.desc())
        .limit(1)
    ).first()
    return None if row is None else _from_row(row)


def record(session: Session, report: VerifyReport, *, full: bool) -> Checkpoint | None:
    """Append a checkpoint at the head ``report`` verified intact (in the caller's
    transaction); None when there is nothing new to vouch for or the report found a break."""
    if not report.ok or report.head_seq == 0:
        return None
    name: LedgerName = report.ledger  # type: ignore[assignment]
    newest = latest(session, name)
    if (
        newest is not None
        and (newest.seq, newest.entry_hash) == (report.head_seq, report.head_hash)
        and (newest.full or not full)
    ):
        return None
    made = Checkpoint(
        ledger=name,
        seq=report.head_seq,
        entry_hash=report.head_hash,
        full=full,
        keyed=ledger_key() is not None,
        verified_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
    )
    signed = replace(made, checkpoint_hash=digest(made.content()))
    session.add(LedgerCheckpoint(**signed.content(), checkpoint_hash=signed.checkpoint_hash))
    session.flush()
    return signed


def vouch(session: Session, checkpoint: Checkpoint) -> list[Break]:
    """Why ``checkpoint`` cannot be trusted (each a ``checkpoint`` break); empty when it can."""
    name: LedgerName = checkpoint.ledger  # type: ignore[assignment]
    where = f"checkpoint id {checkpoint.id} at seq {checkpoint.seq}"
    if not hmac.compare_digest(digest(checkpoint.content()), checkpoint.checkpoint_hash):
        detail = f"{where}: its hash does not match (edited or forged, or another key)"
        return [Break(checkpoint.seq, None, "checkpoint", detail)]
    if checkpoint.keyed != (ledger_key() is not None):
        detail = f"{where} was made {'with' if checkpoint.keyed else 'without'} a key"
        return [Break(checkpoint.seq, None, "checkpoint", detail)]
    table = ledger_table(name)
    row = session.execute(select(table).where(table.c.seq == checkpoint.seq)).mappings().first()
    if row is None:
        detail = f"{where}: that entry is missing (entries cut or renumbered)"
        return [Break(checkpoint.seq, None, "checkpoint", detail)]
    entry_id = int(row["id"])
    if not hmac.compare_digest(str(row["entry_hash"]), checkpoint.entry_hash):
        detail = f"{where}: the entry's hash differs from the checkpoint (entry rewritten)"
        return [Break(checkpoint.seq, entry_id, "checkpoint", detail)]
    if not entry_matches(name, row):
        detail = f"{where}: the entry's content does not match its entry_hash (edited)"
        return [Break(checkpoint.seq, entry_id, "checkpoint", detail)]
    before = session.scalar(
        select(func.count()).select_from(table).where(table.c.seq <= checkpoint.seq)
    )
    if before != checkpoint.seq:
        detail = (
            f"{where}: {before} entries at or before it, not {checkpoint.seq} "
            "(entries deleted or added before the checkpoint)"
        )
        return [Break(checkpoint.seq, entry_id, "checkpoint", detail)]
    return []


def anchor_spot_checks(
    session: Session, ledger: LedgerName, through: int, anchored: Iterable[tuple[str, int, str]]
) -> list[Break]:
    """Each anchor ``(run_id, seq, entry_hash)`` at or before seq ``through`` (so not walked):
    the entry there still has the anchored hash, and its content still gives it."""
    wanted = [(run, seq, h) for run, seq, h in anchored if 0 < seq <= through]
    if not wanted:
        return []
    table = ledger_table(ledger)
    rows: dict[int, Any] = {}
    seqs = sorted({seq for _, seq, _ in wanted})
    for start in range(0, len(seqs), 500):
        query = select(table).where(table.c.seq.in_(seqs[start : start + 500]))
        rows.update((int(r["seq"]), r) for r in session.execute(query).mappings())
    breaks = []
    for run, seq, entry_hash in wanted:
        row = rows.get(seq)
        if row is None:
            breaks.append(Break(seq, None, "anchor", f"anchored seq {seq} of run {run} is missing"))
        elif not hmac.compare_digest(str(row["entry_hash"]), entry_hash):
            detail = f"seq {seq} differs from run {run}'s anchor (entry rewritten)"
            breaks.append(Break(seq, int(row["id"]), "anchor", detail))
        elif not entry_matches(ledger, row):
            detail = f"seq {seq}, anchored by run {run}: content does not match its hash (edited)"
            breaks.append(Break(seq, int(row["id"]), "edited", detail))
    return breaks
