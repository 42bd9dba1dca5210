"""Deliver one program's batch, then record exactly what the destination accepted.

The delivery ledger (``deliveries``) makes this safe to repeat: a batch already logged is not
sent again (an unchanged night sends nothing new); a batch sent but not logged (a crash between
the two) is reconciled by the next run (``reconcile``), which asks the destination whether it
holds the batch. A dry run writes the exact payloads to a local folder and logs nothing.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from pipelines.db import session_scope
from pipelines.destinations.base import Batch, ChildKey, DeliveryResult
from pipelines.destinations.local import LocalFolderDestination
from pipelines.settings import Settings
from pipelines.submission.batches import load_batch, load_ledger, remove_staged
from pipelines.submission.context import RunContext
from pipelines.submission.record import record_delivery
from privacy.fields import CATALOG
from privacy.reasons import Reason
from schemas import Delivery


def _dry_run(context: RunContext, batch: Batch) -> dict[str, Any]:
    """Write exactly what would be sent under ``--output``; send and log nothing."""
    folder = Path(context.run.output or context.settings.state_dir / "dry-run" / context.run.run_id)
    if context.destination.type.value == "edfi":
        destination = context.client
        destination.write_dry_run(batch, folder / batch.program_code)  # type: ignore[attr-defined]
    else:
        LocalFolderDestination(f"{context.run.destination}-dry-run", folder).deliver(batch)
    return {"location": str(folder)}


def _delivery_row(session, context: RunContext, batch: Batch, prepared: dict[str, Any]) -> Delivery:  # type: ignore[no-untyped-def]
    now = dt.datetime.now(dt.UTC)
    row = session.scalars(
        select(Delivery).where(
            Delivery.destination == context.run.destination,
            Delivery.program_code == batch.program_code,
            Delivery.batch_digest == batch.digest,
        )
    ).one_or_none()
    if row is None:
        row = Delivery(
            destination=context.run.destination,
            program_code=batch.program_code,
            batch_digest=batch.digest,
            created_at=now,
        )
        session.add(row)
    elif row.status == "logged":
        return row
    row.run_id = context.run.run_id
    row.status = "pending"
    row.artifacts = {"prepared": prepared}
    row.staged_path = prepared["ledger"]["path"]
    row.updated_at = now
    session.flush()
    return row


def _not_sent(result: DeliveryResult) -> list[dict[str, Any]]:
    """What an API destination left out for a child (a resource the agreement's fields cannot
    fill), as redaction-audit lines: names the resource and field, never a value."""
    return [
        {
            "program_code": item.child_key[0],
            "subject": item.child_key[1],
            "field": item.field if item.field in CATALOG else None,
            "reason": str(item.reason).lower()[:40],
            "rule": f"{item.resource}: {item.code}",
        }
        for item in getattr(result, "not_sent", ())
    ]


def _withdraw_revoked(
    context: RunContext, destination: Any, batch: Batch, ledger: dict[str, Any]
) -> set[ChildKey]:
    """Where the agreement says so and the destination can, delete what was sent earlier for
    children whose parent revoked consent; returns the children whose records were deleted."""
    if not context.agreement.delete_on_revocation or not hasattr(destination, "withdraw"):
        return set()
    revoked = [
        (batch.program_code, r["subject"])
        for r in ledger["redactions"]
        if r["field"] is None and r["reason"] == Reason.CONSENT_REVOKED.value
    ]
    if not revoked:
        return set()
    return {w.child_key for w in destination.withdraw(revoked) if w.status == "deleted"}


def deliver_program(
    run: dict[str, Any], prepared: dict[str, Any], settings: Settings | None = None
) -> dict[str, Any]:
    """Send ``prepared`` to the run's destination and record the outcome."""
    context = RunContext.of(run, settings)
    ledger = load_ledger(context, prepared)
    batch = load_batch(context, prepared, ledger)
    outcome: dict[str, Any] = {"program": batch.program_code, "counts": prepared["counts"]}
    if context.run.dry_run:
        outcome |= {"status": "dry_run", **_dry_run(context, batch)}
        remove_staged(context, prepared)
        return outcome
    with session_scope(context.engine) as session:
        row = _delivery_row(session, context, batch, prepared)
        delivery_id, already = row.id, row.status == "logged"
    if already:
        with session_scope(context.engine) as session:
            record_delivery(
                session,
                context,
                run_id=context.run.run_id,
                run_date=context.run.run_date,
                program=batch.program_code,
                ledger=ledger,
                accepted=None,
                rejected={},
                delivery_id=None,
            )
        remove_staged(context, prepared)
        return outcome | {"status": "unchanged", "logged": 0, "sent_nothing_new": True}
    destination = context.client
    started = time.perf_counter()
    result: DeliveryResult = destination.deliver(batch)
    deleted = _withdraw_revoked(context, destination, batch, ledger)
    sent = time.perf_counter()
    with session_scope(context.engine) as session:
        logged = record_delivery(
            session,
            context,
            run_id=context.run.run_id,
            run_date=context.run.run_date,
            program=batch.program_code,
            ledger=ledger,
            accepted=result.accepted,
            rejected=result.rejected,
            delivery_id=delivery_id,
            notes=_not_sent(result),
            deleted=deleted,
        )
    remove_staged(context, prepared)
    outcome["seconds"] = {
        "deliver": round(sent - started, 3),
        "record": round(time.perf_counter() - sent, 3),
    }
    return outcome | {
        "status": "delivered",
        "logged": logged,
        "rejected": len(result.rejected),
        "location": result.location,
        "sent_nothing_new": result.sent_nothing_new,
    }
