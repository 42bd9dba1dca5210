"""Record: the disclosure log for exactly what the destination accepted (and ``delete`` entries
for what it deleted), the redaction audit for what was withheld or removed, and what the
destination now holds (:mod:`.state`), in the same transaction that marks the delivery
logged."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from pipelines.destinations.base import ChildKey
from pipelines.submission.context import RunContext
from pipelines.submission.repeats import new_disclosures
from pipelines.submission.state import OUT_OF_SCOPE, Current, Held, save_state
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
    agreement = context.agreement
    deleted = deleted or {}
    replaced = replaced or {}
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
    disclosures += [
        Disclosure(
            run_id=run_id,
            program_code=d["program_code"],
            child_local_id=d["child_local_id"],
            recipient_code=agreement.recipient,
            agreement_id=agreement.id,
            legal_basis=agreement.legal_basis.value,
            purpose=agreement.purpose,
            fields=tuple(
                d["fields"]
                if carried is None
                else carried[(d["program_code"], d["child_local_id"])]
            ),
            run_date=run_date,
            payload_digest=d["digest"],
        )
        for d in ledger["disclosures"]
        if accepted is not None
        and (d["program_code"], d["child_local_id"]) in accepted
        and (carried is None or (d["program_code"], d["child_local_id"]) in carried)
    ]
    redactions = [
        Redaction(
            run_id=run_id,
            program_code=program,
            subject=r["subject"],
            agreement_id=agreement.id,
            reason_code=r["reason"],
            rule=r["rule"],
            field=r["field"],
        )
        for r in ledger["redactions"]
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
        for (program_code, local_id), problem in sorted(rejected.items())
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
        for note in notes
    ]
    disclosures = new_disclosures(session, disclosures)  # a repeat is one disclosure
    append_disclosures(session, disclosures)
    append_redactions(session, redactions)
    if state is not None and accepted is not None:
        save_state(
            session,
            destination=context.run.destination,
            program=program,
            run_id=run_id,
            current=state.current,
            held=state.held,
            sent=accepted,
            program_sent=state.program_sent,
            withdrawn=deleted,
            snapshot=state.snapshot,
        )
    if delivery_id is not None:
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(status="logged", updated_at=dt.datetime.now(dt.UTC))
        )
    return len(disclosures)
