"""Record: the disclosure log for exactly what the destination accepted, the redaction audit
for what was withheld or removed, in the same transaction that marks the delivery logged."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from pipelines.destinations.base import ChildKey
from pipelines.submission.context import RunContext
from privacy.ledger import Disclosure, Redaction, append_disclosures, append_redactions
from privacy.reasons import Reason
from schemas import Delivery

REJECTED = Reason.DESTINATION_REJECTED.value


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
    deleted: Collection[ChildKey] = frozenset(),
) -> int:
    """Append the run's ledger entries for one program; ``accepted`` None logs no disclosure
    (a dry run or an unchanged batch). ``notes`` are what the destination itself left out
    (e.g. an Ed-Fi resource the agreement cannot fill); ``deleted`` are children whose records
    were withdrawn from the recipient after a revocation, logged as ``delete``. Returns how
    many disclosures were logged."""
    agreement = context.agreement
    disclosures = [
        Disclosure(
            run_id=run_id,
            program_code=d["program_code"],
            child_local_id=d["child_local_id"],
            recipient_code=agreement.recipient,
            agreement_id=agreement.id,
            legal_basis=agreement.legal_basis.value,
            purpose=agreement.purpose,
            fields=tuple(d["fields"]),
            run_date=run_date,
            payload_digest=d["digest"],
        )
        for d in ledger["disclosures"]
        if accepted is not None and (d["program_code"], d["child_local_id"]) in accepted
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
        Disclosure(
            run_id=run_id,
            program_code=program_code,
            child_local_id=local_id,
            recipient_code=agreement.recipient,
            agreement_id=agreement.id,
            legal_basis=agreement.legal_basis.value,
            purpose="records withdrawn after the parent revoked consent",
            fields=(),
            run_date=run_date,
            payload_digest=hashlib.sha256(f"delete:{program_code}:{local_id}".encode()).hexdigest(),
            action="delete",
        )
        for program_code, local_id in sorted(deleted)
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
    append_disclosures(session, disclosures)
    append_redactions(session, redactions)
    if delivery_id is not None:
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(status="logged", updated_at=dt.datetime.now(dt.UTC))
        )
    return len(disclosures)
