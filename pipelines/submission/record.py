"""Record: the disclosure log for exactly what the destination accepted (and ``delete`` entries
for what it deleted), the redaction audit for what was withheld or removed, and what the
destination now holds (:mod:`.state`), in the same transaction that marks the delivery
logged.

A shard records its programs in groups (:func:`record_group`): one transaction, one repeat
check, one append per ledger (the ledger lock held only for that), one ``delivery_state``
upsert and one update of the delivery rows for the whole group. Should that transaction fail,
each program of the group is recorded alone, so one program's bad record stops only itself.
Recording always follows delivery: a crash in between leaves the group's deliveries open, and
the next run reconciles each (:mod:`.reconcile`)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from pipelines.db import session_scope
from pipelines.destinations.base import ChildKey
from pipelines.submission.context import RunContext
from pipelines.submission.repeats import new_disclosures
from pipelines.submission.state import OUT_OF_SCOPE, Current, Held, state_rows, upsert_state
from privacy.ledger import Disclosure, Redaction, append_disclosures, append_redactions
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
    """What to record as held after the delivery (see :func:`.state.save_state`)."""

    current: Current
    held: Mapping[ChildKey, Held]
    program_sent: bool
    snapshot: bool = False


def _delete_entry(
    agreement: Any, run_id: str, run_date: dt.date, key: ChildKey, purpose: str, what: str
) -> Disclosure:
    program_code, local_id = key
    return Disclosure(
        run_id=run_id,
        program_code=program_code,
        child_local_id=local_id,
        recipient_code=agreement.recipient,
        agreement_id=agreement.id,
        legal_basis=agreement.legal_basis.value,
        purpose=purpose,
        fields=(),
        run_date=run_date,
        payload_digest=hashlib.sha256(
            f"delete:{program_code}:{local_id}{what}".encode()
        ).hexdigest(),
        action="delete",
    )


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
    return record_many(session, context, [recording])[0]


def record_many(
    session: Session, context: RunContext, recordings: Sequence[Recording]
) -> list[int]:
    """:func:`record_delivery` for several programs in the caller's transaction, in bulk: one
    repeat check, one append to each ledger (one ``COPY``, the chain hashed in one pass), one
    ``delivery_state`` upsert and one update of the delivery rows. Returns, per recording, how
    many disclosures (and deletions) were logged."""
    built = [_entries(context, r) for r in recordings]
    disclosures = [d for entries, _ in built for d in entries]
    fresh = new_disclosures(session, disclosures)  # a repeat is one disclosure
    kept = {id(d) for d in fresh}
    append_disclosures(session, fresh)
    append_redactions(session, [r for _, redactions in built for r in redactions])
    now = dt.datetime.now(dt.UTC)
    rows = [
        row
        for r in recordings
        if r.state is not None and r.accepted is not None
        for row in state_rows(
            destination=context.run.destination,
            program=r.program,
            run_id=r.run_id,
            current=r.state.current,
            held=r.state.held,
            sent=r.accepted,
            program_sent=r.state.program_sent,
            withdrawn=r.deleted or {},
            snapshot=r.state.snapshot,
            now=now,
        )
    ]
    upsert_state(session, rows)
    logged = [r.delivery_id for r in recordings if r.delivery_id is not None]
    if logged:
        session.execute(
            update(Delivery).where(Delivery.id.in_(logged)).values(status="logged", updated_at=now)
        )
    return [sum(id(d) in kept for d in entries) for entries, _ in built]


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


def _entries(context: RunContext, r: Recording) -> tuple[list[Disclosure], list[Redaction]]:
    """The disclosure log and redaction audit entries of one program's record."""
    agreement = context.agreement
    run_id, run_date, program, ledger = r.run_id, r.run_date, r.program, r.ledger
    accepted, carried = r.accepted, r.carried
    deleted = r.deleted or {}
    replaced = r.replaced or {}
    disclosures = [
        _delete_entry(
            agreement,
            run_id,
            run_date,
            key,
            f"old copy deleted: tonight's record no longer has it ({', '.join(what)})",
            ":" + ",".join(what),
        )
        for key, what in sorted(replaced.items())
    ]
    if accepted is not None:
        common = {
            "run_id": run_id,
            "recipient_code": agreement.recipient,
            "agreement_id": agreement.id,
            "legal_basis": agreement.legal_basis.value,
            "purpose": agreement.purpose,
            "run_date": run_date,
        }
        for d in ledger["disclosures"]:
            key = (d["program_code"], d["child_local_id"])
            if key not in accepted or (carried is not None and key not in carried):
                continue
            disclosures.append(
                Disclosure(
                    **common,
                    program_code=key[0],
                    child_local_id=key[1],
                    fields=tuple(d["fields"] if carried is None else carried[key]),
                    payload_digest=d["digest"],
                )
            )
    redactions = [
        Redaction(
            run_id=run_id,
            program_code=program,
            subject=x["subject"],
            agreement_id=agreement.id,
            reason_code=x["reason"],
            rule=x["rule"],
            field=x["field"],
        )
        for x in ledger["redactions"]
    ]
    redactions += [
        Redaction(
            run_id=run_id,
            program_code=program_code,
            subject=local_id,
            agreement_id=agreement.id,
            reason_code=REJECTED,
            rule=problem[:500],
        )
        for (program_code, local_id), problem in sorted(r.rejected.items())
    ]
    disclosures += [
        _delete_entry(agreement, run_id, run_date, key, WHY_DELETED[why], "")
        for key, why in sorted(deleted.items())
    ]
    redactions += [
        Redaction(
            run_id=run_id,
            program_code=note["program_code"],
            subject=note["subject"],
            agreement_id=agreement.id,
            reason_code=note["reason"],
            rule=note["rule"],
            field=note["field"],
        )
        for note in r.notes
    ]
    return disclosures, redactions
