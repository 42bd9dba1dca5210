"""Record: the disclosure log for exactly what the destination accepted (and ``delete`` entries
for what it deleted), the redaction audit for what was withheld or removed, and what the
destination now holds (:mod:`.state`), in the same transaction that marks the delivery
logged.

A shard records its programs in groups (:func:`record_group`): one transaction, one repeat
check, one append per ledger (the ledger lock held only for that), one ``delivery_state``
write (:func:`.state.write_state`: new children ``COPY``ed in, changed ones upserted) and one
update of the delivery rows for the whole group; the group's ``delivery_state`` rows and their
``COPY`` text are made while the server stores the disclosures (:func:`privacy.ledger.appending`),
which would otherwise keep Python waiting. Should that transaction fail,
each program of the group is recorded alone, so one program's bad record stops only itself.
Recording always follows delivery: a crash in between leaves the group's deliveries open, and
the next run reconciles each (:mod:`.reconcile`).

Entries are built as columns (:func:`privacy.ledger.append_columns`), never as an object per
entry, and every entry of a group carries the group's one time (``disclosed_at``,
``recorded_at``): they are written in one transaction, at one moment as far as the log can
tell. The log keeps the date a disclosure was made (45 CFR 1303.24(b), FERPA 99.32); no rule
asks for the instants of entries written together to differ."""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from pipelines.db import session_scope
from pipelines.destinations.base import ChildKey
from pipelines.submission.context import RunContext
from pipelines.submission.repeats import new_disclosures
from pipelines.submission.state import (
    OUT_OF_SCOPE,
    Current,
    Held,
    StateWrites,
    new_rows_text,
    state_changes,
    write_state,
)
from privacy.ledger import append_columns, appending
from privacy.reasons import Reason
from schemas import Delivery

REJECTED = Reason.DESTINATION_REJECTED.value
WHY_DELETED = {
    Reason.CONSENT_REVOKED.value: "records withdrawn after the parent revoked consent",
    OUT_OF_SCOPE: "records withdrawn: the child no longer qualifies under the agreement",
    Reason.PROGRAM_OUT_OF_SCOPE.value: "records withdrawn: the program no longer shares with "
    "this recipient or the agreement no longer covers it (program_out_of_scope)",
}


@dataclass(frozen=True)
class StateUpdate:
    """What to record as held after the delivery (see :func:`.state.state_changes`)."""

    current: Current
    held: Mapping[ChildKey, Held]
    program_sent: bool
    snapshot: bool = False


@dataclass(frozen=True)
class Recording:
    """One program's record (the arguments of :func:`record_delivery`), logged with a group
    of programs by :func:`record_group`."""

    run_id: str
    run_date: dt.date
    program: str
    ledger: dict[str, Any]
    accepted: set[ChildKey] | None
    rejected: dict[ChildKey, str]
    delivery_id: int | None
    notes: Sequence[dict[str, Any]] = ()
    deleted: Mapping[ChildKey, str] | None = None
    replaced: Mapping[ChildKey, Sequence[str]] | None = None
    carried: Mapping[ChildKey, Sequence[str]] | None = None
    state: StateUpdate | None = None


def record_delivery(
    session: Session,
    context: RunContext,
    *,
    run_id: str,
    run_date: dt.date,
    program: str,
    ledger: dict[str, Any],
    accepted: set[ChildKey] | None,
    rejected: dict[ChildKey, str],
    delivery_id: int | None,
    notes: Sequence[dict[str, Any]] = (),
    deleted: Mapping[ChildKey, str] | None = None,
    replaced: Mapping[ChildKey, Sequence[str]] | None = None,
    carried: Mapping[ChildKey, Sequence[str]] | None = None,
    state: StateUpdate | None = None,
) -> int:
    """Append the run's ledger entries for one program; ``accepted`` None logs no disclosure
    (a dry run or an unchanged batch). ``notes`` are what the destination itself left out
    (e.g. an Ed-Fi resource the agreement cannot fill). ``deleted`` (child -> reason) are
    children whose records were withdrawn from the recipient, ``replaced`` (child -> what) old
    copies deleted because their natural key changed; each is logged as ``delete`` (a
    replacement before the child's new disclosure). ``carried``, when the destination says it,
    names per child what it took now (only those children are logged, with those fields).
    ``state`` records what the destination holds now. A disclosure already logged (same
    child, content, recipient, agreement and date: a same-day rerun) is not logged again
    (:mod:`.repeats`). Returns how many disclosures (and deletions) were logged."""
    recording = Recording(
        run_id=run_id,
        run_date=run_date,
        program=program,
        ledger=ledger,
        accepted=accepted,
        rejected=rejected,
        delivery_id=delivery_id,
        notes=notes,
        deleted=deleted,
        replaced=replaced,
        carried=carried,
        state=state,
    )
    return record_one(session, context, recording)


def record_one(session: Session, context: RunContext, recording: Recording) -> int:
    """:func:`record_delivery` of a recording already made."""
    return record_many(session, context, [recording])[0]


def record_many(
    session: Session, context: RunContext, recordings: Sequence[Recording]
) -> list[int]:
    """:func:`record_delivery` for several programs in the caller's transaction, in bulk: one
    repeat check, one append to each ledger (one ``COPY``, the chain hashed in one pass), one
    ``delivery_state`` write and one update of the delivery rows. Returns, per recording, how
    many disclosures (and deletions) were logged."""
    now = dt.datetime.now(dt.UTC)  # the group's one transaction: one time for its entries
    built, disclosures, fresh = _built(session, context, recordings, now)
    if fresh is not None:
        disclosures = {name: [values[i] for i in fresh] for name, values in disclosures.items()}
    copied = session.get_bind().dialect.name == "postgresql"  # new state rows go in by COPY
    with appending(session, "disclosures", disclosures):  # Python only, while the server stores
        redactions = _joined([r for _, r in built], REDACTION_COLUMNS)
        writes = StateWrites()
        for r in recordings:
            if r.state is not None and r.accepted is not None:
                writes += state_changes(
                    destination=context.run.destination,
                    program=r.program,
                    run_id=r.run_id,
                    current=r.state.current,
                    held=r.state.held,
                    sent=r.accepted,
                    program_sent=r.state.program_sent,
                    withdrawn=r.deleted or {},
                    snapshot=r.state.snapshot,
                )
        new_text = new_rows_text(writes, now) if copied else None
    append_columns(session, "redactions", redactions)
    write_state(session, writes, now, new_text)
    logged = [r.delivery_id for r in recordings if r.delivery_id is not None]
    if logged:
        session.execute(
            update(Delivery).where(Delivery.id.in_(logged)).values(status="logged", updated_at=now)
        )
    return kept_per_part([len(d["run_id"]) for d, _ in built], fresh)


def would_log(session: Session, context: RunContext, recordings: Sequence[Recording]) -> list[int]:
    """How many disclosures (and deletions) :func:`record_many` would log per recording now
    (repeats not counted); reads only (a dry run's view of reconciliation)."""
    built, _, fresh = _built(session, context, recordings, dt.datetime.now(dt.UTC))
    return kept_per_part([len(d["run_id"]) for d, _ in built], fresh)


def _built(
    session: Session, context: RunContext, recordings: Sequence[Recording], now: dt.datetime
) -> tuple[list[tuple[Columns, Columns]], Columns, list[int] | None]:
    """Each recording's entries, their disclosures joined, and the positions of those not
    already logged (:func:`.repeats.new_disclosures`: a repeat is one disclosure)."""
    built = [_entries(context, r, now) for r in recordings]
    disclosures = _joined([d for d, _ in built], DISCLOSURE_COLUMNS)
    return built, disclosures, new_disclosures(session, disclosures)


def kept_per_part(sizes: Sequence[int], kept: Sequence[int] | None) -> list[int]:
    """How many of each part's entries are kept: the parts (``sizes`` entries each) lie one
    after the other, ``kept`` lists the positions kept in ascending order (None: all)."""
    if kept is None:
        return list(sizes)
    ends = list(itertools.accumulate(sizes))  # each part's entries end there
    return [
        bisect.bisect_left(kept, end) - bisect.bisect_left(kept, end - size)
        for size, end in zip(sizes, ends, strict=True)
    ]


Finish = Callable[[Session, Sequence[tuple[Recording, int]]], None]
"""Called in the transaction that logs a group, with each recording and its logged count."""


def record_group(
    context: RunContext, recordings: Sequence[Recording], finish: Finish | None = None
) -> tuple[dict[str, int], dict[str, Exception]]:
    """Log several programs' deliveries in one transaction (:func:`record_many`), then
    ``finish`` in it. When that fails, each program is logged alone, in a transaction of its
    own, so one program's bad record stops only that program (its delivery stays open: the
    next run reconciles it). Returns the count logged per program and, per program that could
    not be logged, the error."""
    if not recordings:
        return {}, {}
    try:
        with session_scope(context.engine) as session:
            counts = record_many(session, context, recordings)
            if finish is not None:
                finish(session, list(zip(recordings, counts, strict=True)))
        return {r.program: n for r, n in zip(recordings, counts, strict=True)}, {}
    except Exception as error:  # one bad program must not stop the others: one by one
        if len(recordings) == 1:
            return {}, {recordings[0].program: error}
    logged: dict[str, int] = {}
    failed: dict[str, Exception] = {}
    for recording in recordings:
        try:
            with session_scope(context.engine) as session:
                (count,) = record_many(session, context, [recording])
                if finish is not None:
                    finish(session, [(recording, count)])
            logged[recording.program] = count
        except Exception as error:
            failed[recording.program] = error
    return logged, failed


DISCLOSURE_COLUMNS = (
    "run_id",
    "program_code",
    "child_local_id",
    "recipient_code",
    "agreement_id",
    "legal_basis",
    "purpose",
    "fields",
    "action",
    "run_date",
    "disclosed_at",
    "payload_digest",
)
REDACTION_COLUMNS = (
    "run_id",
    "program_code",
    "subject",
    "agreement_id",
    "field",
    "reason_code",
    "rule",
    "recorded_at",
)
Columns = dict[str, list[Any]]
"""Ledger entries as columns (:data:`privacy.ledger.Columns`): name -> one value per entry."""


def _add(columns: Columns, same: Mapping[str, Any], each: Mapping[str, list[Any]]) -> None:
    """Add entries to ``columns``: ``each`` one value per entry, ``same`` one for all."""
    count = len(next(iter(each.values())))
    for name, values in each.items():
        columns[name] += values
    for name, value in same.items():
        columns[name] += [value] * count


def _joined(parts: Iterable[Columns], names: Sequence[str]) -> Columns:
    """The entries of ``parts`` one after the other."""
    out: Columns = {name: [] for name in names}
    for part in parts:
        for name in names:
            out[name] += part[name]
    return out


def _deletions(
    columns: Columns,
    same: Mapping[str, Any],
    keys: list[ChildKey],
    whys: list[str],
    what: list[str],
) -> None:
    """``delete`` entries for ``keys``: the reason per child (``purpose``) and what went
    (part of the payload digest, which names the deletion)."""
    if not keys:
        return
    _add(
        columns,
        {**same, "fields": (), "action": "delete"},
        {
            "program_code": [p for p, _ in keys],
            "child_local_id": [c for _, c in keys],
            "purpose": whys,
            "payload_digest": [
                hashlib.sha256(f"delete:{p}:{c}{w}".encode()).hexdigest()
                for (p, c), w in zip(keys, what, strict=True)
            ],
        },
    )


def _entries(context: RunContext, r: Recording, now: dt.datetime) -> tuple[Columns, Columns]:
    """The disclosure log and redaction audit entries of one program's record, as columns,
    all written at ``now``: replaced copies deleted, then each accepted child, then children
    withdrawn; redactions as the ledger lists them, then children the destination rejected,
    then what it left out."""
    agreement = context.agreement
    run_id, run_date, program, ledger = r.run_id, r.run_date, r.program, r.ledger
    accepted, carried = r.accepted, r.carried
    disclosures: Columns = {name: [] for name in DISCLOSURE_COLUMNS}
    same = {
        "run_id": run_id,
        "recipient_code": agreement.recipient,
        "agreement_id": agreement.id,
        "legal_basis": agreement.legal_basis.value,
        "run_date": run_date,
        "disclosed_at": now,
    }
    replaced = sorted((r.replaced or {}).items())
    _deletions(
        disclosures,
        same,
        [key for key, _ in replaced],
        [
            f"old copy deleted: tonight's record no longer has it ({', '.join(what)})"
            for _, what in replaced
        ],
        [":" + ",".join(what) for _, what in replaced],
    )
    if accepted is not None:
        kept = [
            d
            for d in ledger["disclosures"]
            if (key := (d["program_code"], d["child_local_id"])) in accepted
            and (carried is None or key in carried)
        ]
        if kept:
            _add(
                disclosures,
                {**same, "purpose": agreement.purpose, "action": "disclose"},
                {
                    "program_code": [d["program_code"] for d in kept],
                    "child_local_id": [d["child_local_id"] for d in kept],
                    "fields": [
                        tuple(d["fields"])
                        if carried is None
                        else tuple(carried[(d["program_code"], d["child_local_id"])])
                        for d in kept
                    ],
                    "payload_digest": [d["digest"] for d in kept],
                },
            )
    deleted = sorted((r.deleted or {}).items())
    _deletions(
        disclosures,
        same,
        [key for key, _ in deleted],
        [WHY_DELETED[why] for _, why in deleted],
        [""] * len(deleted),
    )
    redactions: Columns = {name: [] for name in REDACTION_COLUMNS}
    audit = {"run_id": run_id, "agreement_id": agreement.id, "recorded_at": now}
    if ledger["redactions"]:
        x = ledger["redactions"]
        _add(
            redactions,
            {**audit, "program_code": program},
            {
                "subject": [i["subject"] for i in x],
                "field": [i["field"] for i in x],
                "reason_code": [i["reason"] for i in x],
                "rule": [i["rule"] for i in x],
            },
        )
    rejected = sorted(r.rejected.items())
    if rejected:
        _add(
            redactions,
            {**audit, "field": None, "reason_code": REJECTED},
            {
                "program_code": [p for (p, _), _ in rejected],
                "subject": [c for (_, c), _ in rejected],
                "rule": [problem[:500] for _, problem in rejected],
            },
        )
    if r.notes:
        _add(
            redactions,
            audit,
            {
                "program_code": [n["program_code"] for n in r.notes],
                "subject": [n["subject"] for n in r.notes],
                "field": [n["field"] for n in r.notes],
                "reason_code": [n["reason"] for n in r.notes],
                "rule": [n["rule"] for n in r.notes],
            },
        )
    return disclosures, redactions
