"""Reconcile batches an earlier run sent (or may have sent) but never logged.

For each such delivery of the destination: if the destination holds the batch as it was sent
(the children it carried, from the delivery's recorded changes), its disclosures are logged
now, under the run that sent them and with its run date (the batch keeps the identity it was
staged with, :func:`.batches.load_batch`: a file drop is looked for in that date's folder, on
whatever night the reconciliation happens), and the delivery state records them as held; if not,
nothing arrived, nothing is logged, and the batch is marked failed so this run sends it afresh.
Deletions of that run are not logged here: the state still lists those children as held, so
this run plans them again (deleting what is already gone changes nothing) and logs them.
Either way the staged files go.

A destination that takes a batch part by part and can say which parts it holds (Ed-Fi,
resource by resource: ``carried_by``) has exactly those logged, whole or not, with the
``resource:field`` pairs its deliveries log. A crash between the students and their school
associations logs the students under the run that sent them, with its date; the delivery state
holds the child as partly sent, so this run sends the rest (what is there is not sent again),
logs it, and can withdraw the child if it no longer qualifies.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipelines.db import session_scope
from pipelines.destinations.base import Batch, ChildKey
from pipelines.staging import StagingError
from pipelines.submission.batches import load_batch, load_ledger, remove_staged
from pipelines.submission.context import RunContext
from pipelines.submission.deliver import outgoing
from pipelines.submission.record import StateUpdate, record_delivery
from pipelines.submission.state import Changes, Current, current_of, load_held, with_rows
from schemas import Delivery

UNFINISHED = ("pending", "delivered")
PARTIAL = "partial"
"""The ``delivery_state`` digest of a child of whom a crashed run left only part at the
destination: no batch has it, so the next run sends the child (what is there already is not
sent again) and can withdraw what is there."""


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
            with session_scope(context.engine) as session:
                _mark(session, delivery_id, "failed")
            outcomes[program] = "failed: staged files unreadable, sent afresh"
            continue
        assert destination is not None
        recorded = artifacts.get("changes") or {}
        snapshot = bool(recorded.get("snapshot", True))
        changes = Changes(
            send={(p, c) for p, c in recorded.get("send", [])},
            program=bool(recorded.get("program", True)),
            withdraw={(p, c): why for p, c, why in recorded.get("withdraw", [])},
            snapshot=snapshot,
        )
        with session_scope(context.engine) as session:
            held = load_held(session, context.run.destination, program)
            held = with_rows(session, context.run.destination, held, changes.withdraw)
        if recorded:
            sent = outgoing(context, batch, changes, held)
            accepted = changes.send & batch.child_keys
        else:  # a delivery recorded before the delivery state existed
            sent, accepted = batch, set(batch.child_keys)
        whole = destination.holds(sent)
        carried = _carried(destination, sent, run_id, whole)
        current = current_of(batch, ledger)
        if whole:
            with session_scope(context.engine) as session:
                logged = record_delivery(
                    session,
                    context,
                    run_id=run_id,
                    program=program,
                    ledger=ledger,
                    run_date=dt.date.fromisoformat(batch.run_date),
                    accepted=set(accepted),
                    rejected={},
                    delivery_id=delivery_id,
                    carried=carried,
                    state=StateUpdate(current, held, changes.program, snapshot),
                )
            outcomes[program] = f"logged {logged} disclosures of run {run_id}"
        elif carried:
            part = set(carried) & set(accepted)
            partial = Current({k: PARTIAL for k in part}, current.rows, current.program_digest)
            with session_scope(context.engine) as session:
                logged = record_delivery(
                    session,
                    context,
                    run_id=run_id,
                    program=program,
                    ledger={**ledger, "redactions": []},
                    run_date=dt.date.fromisoformat(prepared["run_date"]),
                    accepted=part,
                    rejected={},
                    delivery_id=None,
                    carried=carried,
                    state=StateUpdate(partial, held, False, snapshot),
                )
                _mark(session, delivery_id, "failed")
            outcomes[program] = (
                f"run {run_id} arrived in part: logged {logged} disclosures of it; the rest "
                "sent afresh"
            )
        else:
            with session_scope(context.engine) as session:
                _mark(session, delivery_id, "failed")
            outcomes[program] = f"run {run_id} did not arrive; sent afresh"
        remove_staged(context, prepared)
    return outcomes


def _carried(
    destination: Any, sent: Batch, run_id: str, whole: bool
) -> dict[ChildKey, tuple[str, ...]] | None:
    """Per child, what the crashed run left at a destination that says it (Ed-Fi, resource
    by resource); None for the others (a batch is there whole or not at all)."""
    carried_by = getattr(destination, "carried_by", None)
    if carried_by is None:
        return None
    return dict(carried_by(sent, run_id, held_by_api=whole))


def _mark(session: Session, delivery_id: int, status: str) -> None:
    row = session.get(Delivery, delivery_id)
    assert row is not None
    row.status = status
    row.updated_at = dt.datetime.now(dt.UTC)
