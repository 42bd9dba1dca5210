"""Reconcile batches an earlier run sent (or may have sent) but never logged.

For each such delivery of the destination: if the destination holds the batch, its
disclosures are logged now, under the run that sent them; if not, nothing arrived, nothing is
logged, and the batch is marked failed so this run sends it afresh. Either way the staged
files go.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from pipelines.db import session_scope
from pipelines.staging import StagingError
from pipelines.submission.batches import load_batch, load_ledger, remove_staged
from pipelines.submission.context import RunContext
from pipelines.submission.record import record_delivery
from schemas import Delivery

UNFINISHED = ("pending", "delivered")


def reconcile(context: RunContext) -> dict[str, str]:
    """Settle every unfinished delivery of the run's destination; program code -> outcome."""
    with session_scope(context.engine) as session:
        rows = session.execute(
            select(Delivery.id, Delivery.run_id, Delivery.program_code, Delivery.artifacts).where(
                Delivery.destination == context.run.destination, Delivery.status.in_(UNFINISHED)
            )
        ).all()
    outcomes: dict[str, str] = {}
    destination = context.client if rows else None
    for delivery_id, run_id, program, artifacts in rows:
        prepared: dict[str, Any] = artifacts["prepared"]
        try:
            ledger = load_ledger(context, prepared)
            batch = load_batch(context, prepared, ledger, run_id=run_id)
        except (StagingError, OSError):
            _mark(context, delivery_id, "failed")
            outcomes[program] = "failed: staged files unreadable, sent afresh"
            continue
        assert destination is not None
        if destination.holds(batch):
            with session_scope(context.engine) as session:
                logged = record_delivery(
                    session,
                    context,
                    run_id=run_id,
                    program=program,
                    ledger=ledger,
                    run_date=dt.date.fromisoformat(prepared["run_date"]),
                    accepted=set(batch.child_keys),
                    rejected={},
                    delivery_id=delivery_id,
                )
            outcomes[program] = f"logged {logged} disclosures of run {run_id}"
        else:
            _mark(context, delivery_id, "failed")
            outcomes[program] = f"run {run_id} did not arrive; sent afresh"
        remove_staged(context, prepared)
    return outcomes


def _mark(context: RunContext, delivery_id: int, status: str) -> None:
    with session_scope(context.engine) as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        row.status = status
        row.updated_at = dt.datetime.now(dt.UTC)
