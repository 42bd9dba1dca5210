"""Self-anchoring ledgers: each run keeps both chains' heads, and verification uses them.

A hash chain shows an edited, deleted or reordered entry but not a cut tail: remove the
newest entries (or all of them) and what is left is still a valid chain. So every run, when
it finishes, stores both heads (``seq`` and ``entry_hash``) in an anchor record of its own
(``ledger_anchors``) and in its run summary; :func:`verify_ledgers` then checks

1. each chain by itself (whole, or only the entries after its newest verified-through
   checkpoint: ``privacy/checkpoints.py``) and against the newest anchor (a cut tail or a
   wipe shows as "anchored seq N is missing"; a tail cut and re-grown as "hash differs from
   the anchor"), and against every anchor of an exported anchors file when one is given;
2. each anchor's own hash (keyed like the ledgers, so an edited anchor shows);
3. the ledgers against the delivery ledger and the runs: every batch the delivery ledger
   calls ``logged`` has entries for its program and run, and no finished run has fewer
   disclosure entries than its summary says it logged.

An anchor in the same database guards against accidents and a careless hand; against
someone who can delete the anchors too, :func:`export_anchors` writes them to a file the
state (or a ticket) keeps, which ``datashare audit verify --anchors FILE`` checks.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from privacy import checkpoints as checkpointing
from privacy.errors import LedgerError
from privacy.ledger import (
    GENESIS,
    Break,
    LedgerName,
    VerifyReport,
    digest,
    ledger_key,
    verify,
)
from schemas import Delivery, DisclosureEntry, LedgerAnchor, RedactionEntry, Run

__all__ = [
    "LEDGERS",
    "Anchor",
    "LedgerCheck",
    "anchor_run",
    "anchors",
    "export_anchors",
    "heads",
    "read_anchor_file",
    "verify_ledgers",
]

LEDGERS: tuple[LedgerName, ...] = ("disclosures", "redactions")
_TABLES: dict[str, type[DisclosureEntry] | type[RedactionEntry]] = {
    "disclosures": DisclosureEntry,
    "redactions": RedactionEntry,
}
_EXPORT_FORMAT = "datashare-ledger-anchors/1"


@dataclass(frozen=True)
class Anchor:
    """Both heads at one moment: ``{ledger: (seq, entry_hash)}``, with the run and the time."""

    run_id: str
    heads: dict[str, tuple[int, str]]
    keyed: bool
    anchored_at: dt.datetime
    anchor_hash: str = ""

    def content(self) -> dict[str, Any]:
        """The columns ``anchor_hash`` covers."""
        return {
            "run_id": self.run_id,
            "disclosures_seq": self.heads["disclosures"][0],
            "disclosures_hash": self.heads["disclosures"][1],
            "redactions_seq": self.heads["redactions"][0],
            "redactions_hash": self.heads["redactions"][1],
            "keyed": self.keyed,
            "anchored_at": self.anchored_at,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what a run summary and an exported file hold."""
        return {
            "run_id": self.run_id,
            **{name: {"seq": seq, "hash": h} for name, (seq, h) in self.heads.items()},
            "keyed": self.keyed,
            "anchored_at": self.anchored_at.astimezone(dt.UTC).isoformat(),
            "anchor_hash": self.anchor_hash,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Anchor:
        """The inverse of :meth:`to_dict`; :class:`LedgerError` when it does not read."""
        try:
            heads: dict[str, tuple[int, str]] = {
                name: (int(data[name]["seq"]), str(data[name]["hash"])) for name in LEDGERS
            }
            return cls(
                run_id=str(data["run_id"]),
                heads=heads,
                keyed=bool(data["keyed"]),
                anchored_at=dt.datetime.fromisoformat(data["anchored_at"]),
                anchor_hash=str(data.get("anchor_hash", "")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise LedgerError(f"an anchor does not read ({type(error).__name__})") from None


def heads(session: Session) -> dict[str, tuple[int, str]]:
    """The newest ``(seq, entry_hash)`` of each ledger; ``(0, GENESIS)`` when empty."""
    found: dict[str, tuple[int, str]] = {}
    for name in LEDGERS:
        table = _TABLES[name]
        row = session.execute(
            select(table.seq, table.entry_hash).order_by(table.seq.desc()).limit(1)
        ).first()
        found[name] = (int(row.seq), str(row.entry_hash)) if row else (0, GENESIS)
    return found


def anchor_run(session: Session, run_id: str) -> dict[str, Any]:
    """Store both ledgers' heads as the anchor of ``run_id`` (in the caller's transaction,
    after the run's last append); returns it as data for the run summary."""
    anchor = Anchor(
        run_id=run_id,
        heads=heads(session),
        keyed=ledger_key() is not None,
        anchored_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
    )
    signed = replace(anchor, anchor_hash=digest(anchor.content()))
    content = signed.content()
    session.add(LedgerAnchor(**content, anchor_hash=signed.anchor_hash))
    session.flush()
    return signed.to_dict()


def _row_anchor(row: LedgerAnchor) -> Anchor:
    at = row.anchored_at
    return Anchor(
        run_id=row.run_id,
        heads={
            "disclosures": (int(row.disclosures_seq), row.disclosures_hash),
            "redactions": (int(row.redactions_seq), row.redactions_hash),
        },
        keyed=bool(row.keyed),
        anchored_at=at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at,
        anchor_hash=row.anchor_hash,
    )


def anchors(session: Session) -> list[Anchor]:
    """Every stored anchor, oldest first."""
    rows = session.scalars(select(LedgerAnchor).order_by(LedgerAnchor.id))
    return [_row_anchor(r) for r in rows]


def export_anchors(session: Session, path: Path) -> int:
    """Write every anchor to ``path`` (JSON, no PII: run ids, sequence numbers, hashes);
    returns how many."""
    found = anchors(session)
    document = {"format": _EXPORT_FORMAT, "anchors": [a.to_dict() for a in found]}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return len(found)


def read_anchor_file(path: Path) -> list[Anchor]:
    """The anchors of a file :func:`export_anchors` wrote; :class:`LedgerError` otherwise."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        reason = type(error).__name__
        raise LedgerError(f"{path}: cannot read the anchors file ({reason})") from None
    if not isinstance(document, dict) or document.get("format") != _EXPORT_FORMAT:
        raise LedgerError(f"{path}: not an anchors file ({_EXPORT_FORMAT})")
    return [Anchor.from_dict(item) for item in document.get("anchors", [])]


@dataclass
class LedgerCheck:
    """Everything :func:`verify_ledgers` found: per-ledger reports and cross-checks."""

    reports: dict[str, VerifyReport]
    anchor: Anchor | None
    anchor_problems: list[str] = field(default_factory=list)
    delivery_problems: list[str] = field(default_factory=list)
    full: bool = True
    started_from: dict[str, checkpointing.Checkpoint] = field(default_factory=dict)
    recorded: dict[str, checkpointing.Checkpoint] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the chains, the anchors and the cross-checks all hold."""
        return (
            all(r.ok for r in self.reports.values())
            and not self.anchor_problems
            and not self.delivery_problems
        )


def verify_ledgers(
    session: Session,
    *,
    given: dict[str, tuple[int, str] | None] | None = None,
    exported: Sequence[Anchor] = (),
    full: bool = True,
    record: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> LedgerCheck:
    """Verify both chains against ``given`` heads (``SEQ:HASH`` typed by a person) or else
    the newest stored anchor, then every ``exported`` anchor, each anchor's own hash, and the
    delivery ledger and runs (see the module doc).

    ``full`` False: walk only the entries after each ledger's newest checkpoint, once it is
    vouched for, and spot-check the anchors before it (``privacy/checkpoints.py``); a
    checkpoint that fails is reported and the whole chain walked. ``record``: append a
    checkpoint at each head found intact (with intact anchors), in the caller's transaction.
    ``progress(ledger, entries walked)`` is called as the walks go.
    """
    stored = anchors(session)
    latest = stored[-1] if stored else None
    check = LedgerCheck(reports={}, anchor=latest, full=full)
    for name in LEDGERS:
        head = (given or {}).get(name) or (latest.heads[name] if latest else None)
        start, refused = _checkpoint(session, name, check) if not full else (None, [])
        report = verify(
            session,
            name,
            anchor=head,
            start=start,
            progress=None if progress is None else partial(progress, name),
        )
        if not report.wrong_key:
            report.breaks[:0] = refused
        if start is not None:
            anchored = [(a.run_id, *a.heads[name]) for a in stored]
            report.breaks += checkpointing.anchor_spot_checks(session, name, start[0], anchored)
        check.reports[name] = report
    check.anchor_problems += _signatures(stored)
    check.anchor_problems += _exported(session, exported, stored)
    recent = _recent_runs(session, _covered_until(check))
    logged = _logged(session, recent)
    check.delivery_problems += _deliveries(session, logged, recent)
    check.delivery_problems += _runs(session, logged, recent)
    if record and not check.anchor_problems:
        for report in check.reports.values():
            # a routine verify without a usable checkpoint walked every entry: a full one
            made = checkpointing.record(session, report, full=report.since == 0)
            if made is not None:
                check.recorded[report.ledger] = made
    return check


def _checkpoint(
    session: Session, name: LedgerName, check: LedgerCheck
) -> tuple[tuple[int, str] | None, list[Break]]:
    """Where a routine walk of ``name`` starts (None: from the first entry), and why a
    checkpoint was refused."""
    found = checkpointing.latest(session, name)
    if found is None:
        return None, []
    refused = checkpointing.vouch(session, found)
    if refused:
        return None, refused
    check.started_from[name] = found
    return (found.seq, found.entry_hash), []


def _signatures(stored: Iterable[Anchor]) -> list[str]:
    problems = []
    for anchor in stored:
        if not hmac.compare_digest(digest(anchor.content()), anchor.anchor_hash):
            problems.append(
                f"anchor of run {anchor.run_id}: its hash does not match (edited, or another key)"
            )
    return problems


def _exported(session: Session, exported: Sequence[Anchor], stored: list[Anchor]) -> list[str]:
    """Each exported anchor's heads must still be in the chains, and the anchor still stored."""
    problems = []
    kept = {(a.run_id, a.anchor_hash) for a in stored}
    for anchor in exported:
        if (anchor.run_id, anchor.anchor_hash) not in kept:
            problems.append(f"exported anchor of run {anchor.run_id} is no longer stored")
        for name, (seq, entry_hash) in anchor.heads.items():
            if seq == 0:
                continue
            table = _TABLES[name]
            found = session.scalar(select(table.entry_hash).where(table.seq == seq))
            if found is None:
                problems.append(f"{name}: seq {seq} of run {anchor.run_id}'s anchor is missing")
            elif found != entry_hash:
                problems.append(f"{name}: seq {seq} differs from run {anchor.run_id}'s anchor")
    return problems


# A run that finished this long before a checkpoint was taken has all its entries before it.
_CLOCK_MARGIN = dt.timedelta(hours=1)


def _covered_until(check: LedgerCheck) -> dt.datetime | None:
    """Runs finished before this are covered by both checkpoints a routine verify started
    from (their entries lie before them, and the count shows none deleted); None: check all."""
    if check.full or set(check.started_from) != set(LEDGERS):
        return None
    return min(c.verified_at for c in check.started_from.values()) - _CLOCK_MARGIN


def _recent_runs(session: Session, since: dt.datetime | None) -> set[str] | None:
    """Ids of runs unfinished or finished at or after ``since``; None when ``since`` is."""
    if since is None:
        return None
    query = select(Run.id).where(Run.finished_at.is_(None) | (Run.finished_at >= since))
    return {str(r) for r in session.scalars(query)}


def _logged(session: Session, runs: set[str] | None) -> dict[tuple[str, str], int]:
    """Disclosure-log entries by (run, program): one pass over the log serves both
    cross-checks (only the ``runs`` given, each chunk by the run_id index, when given)."""
    query = select(DisclosureEntry.run_id, DisclosureEntry.program_code, func.count()).group_by(
        DisclosureEntry.run_id, DisclosureEntry.program_code
    )
    chunks = [query] if runs is None else _by_runs(query, DisclosureEntry, runs)
    return {(str(r), str(p)): int(n) for chunk in chunks for r, p, n in session.execute(chunk)}


def _by_runs(
    query: Any, table: type[DisclosureEntry] | type[RedactionEntry], runs: set[str]
) -> list[Any]:
    """``query`` once per 500 of ``runs`` (a bounded IN list, each by the run_id index)."""
    ordered = sorted(runs)
    return [
        query.where(table.run_id.in_(ordered[start : start + 500]))
        for start in range(0, len(ordered), 500)
    ]


def _audited(session: Session, runs: set[str]) -> set[tuple[str, str]]:
    """(run, program) pairs of the redaction audit, for the ``runs`` given only."""
    query = select(RedactionEntry.run_id, RedactionEntry.program_code).distinct()
    return {
        (str(r), str(p))
        for chunk in _by_runs(query, RedactionEntry, runs)
        for r, p in session.execute(chunk)
    }


def _deliveries(
    session: Session, logged: dict[tuple[str, str], int], runs: set[str] | None = None
) -> list[str]:
    """A batch logged in the delivery ledger has entries for its run and program in either
    ledger (only the ``runs`` given, when given). ``logged``: disclosure entries by (run,
    program); the audit is read only for the runs of batches without disclosure entries (a
    program whose children were all withheld)."""
    query = (
        select(Delivery.run_id, Delivery.destination, Delivery.program_code, Delivery.artifacts)
        .where(Delivery.status == "logged")
        .order_by(Delivery.id)
    )
    rows = [r for r in session.execute(query).all() if runs is None or r.run_id in runs]
    unlogged = {r.run_id for r in rows if (r.run_id, r.program_code) not in logged}
    audited = _audited(session, unlogged) if unlogged else set()
    problems = []
    for run_id, destination, program, artifacts in rows:
        counts = ((artifacts or {}).get("prepared") or {}).get("counts") or {}
        pair = (run_id, program)
        if int(counts.get("considered", 1) or 0) and pair not in logged and pair not in audited:
            problems.append(
                f"delivery of {program} to {destination} in run {run_id} is logged, but neither "
                "ledger has an entry for it (entries deleted?)"
            )
    return problems


def _runs(
    session: Session, logged: dict[tuple[str, str], int], runs: set[str] | None = None
) -> list[str]:
    """A finished run's disclosure entries are at least as many as its summary logged (only
    the ``runs`` given, when given). ``logged``: disclosure entries by (run, program)."""
    logged_by_run: dict[str, int] = {}
    for (run_id, _), count in logged.items():
        logged_by_run[run_id] = logged_by_run.get(run_id, 0) + count
    problems = []
    for run_id, summary in session.execute(
        select(Run.id, Run.summary).where(Run.dry_run.is_(False), Run.finished_at.is_not(None))
    ):
        if runs is not None and run_id not in runs:
            continue
        children = (summary or {}).get("children") or {}
        expected = children.get("logged", 0)
        have = int(logged_by_run.get(run_id, 0))
        if isinstance(expected, int) and have < expected:
            problems.append(
                f"run {run_id} logged {expected} disclosures; the disclosure log holds {have}"
            )
    return problems
