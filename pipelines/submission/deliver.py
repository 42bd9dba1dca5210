"""Deliver one program's batch, then record exactly what the destination accepted.

Tonight's batch is compared with what the destination holds now (:mod:`.state`): only what
differs goes (``resend: changes``; a file drop gets its whole snapshot when anything differs),
or everything (``resend: full``); children withdrawn or whose old copy a natural-key change
left behind are deleted where the destination deletes (staging database, Ed-Fi) or listed in
the withdrawals file (file drops whose formats carry one), each logged as a ``delete`` entry.
An unchanged night sends nothing. A batch sent but not logged (a crash between the two) is
reconciled by the next run (``reconcile``), which asks the destination whether it holds the
batch. A dry run writes the exact payloads to a local folder and logs nothing.

A shard (:func:`deliver_shard`, what one mapped Airflow task does) delivers its programs one
after the other with one destination client (one connection pool, one Ed-Fi client, one SFTP
session where the destination keeps one open); a program that fails stops only itself. Each
program's outcome is kept with its delivery row in the same transaction as its disclosure log
entries (an unchanged night gets an ``unchanged`` row), so a retried shard task returns the
outcome of a program an earlier attempt delivered instead of sending it again.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from pipelines.db import session_scope
from pipelines.destinations.base import Batch, ChildKey, DeliveryResult
from pipelines.destinations.local import LocalFolderDestination
from pipelines.destinations.registry import Resend
from pipelines.paths import safe_join
from pipelines.settings import Settings
from pipelines.submission.batches import load_batch, load_ledger, remove_staged
from pipelines.submission.context import RunContext
from pipelines.submission.record import StateUpdate, record_delivery
from pipelines.submission.state import (
    Changes,
    Current,
    Held,
    current_of,
    differing,
    load_held,
    narrowed,
    plan_changes,
    with_rows,
    withheld_reasons,
)
from pipelines.submission.withdrawals import withdrawals_artifact, withdrawals_spec
from privacy.fields import CATALOG
from schemas import Delivery
from schemas.filespec import load_spec

SNAPSHOTS = ("local", "sftp")
"""File drops: each delivered folder is the program's complete current snapshot."""


def _dry_run(context: RunContext, batch: Batch) -> dict[str, Any]:
    """Write exactly what would be sent under ``--output``; send and log nothing."""
    folder = Path(context.run.output) if context.run.output else None
    folder = folder or safe_join(context.settings.state_dir, "dry-run", context.run.run_id)
    if context.destination.type.value == "edfi":
        destination = context.client
        target = safe_join(folder, batch.program_code, role="program code")
        destination.write_dry_run(batch, target)  # type: ignore[attr-defined]
    else:
        LocalFolderDestination(f"{context.run.destination}-dry-run", folder).deliver(batch)
    return {"location": str(folder)}


def _delivery_row(  # type: ignore[no-untyped-def]
    session, context: RunContext, batch: Batch, prepared: dict[str, Any], changes: Changes
) -> Delivery:
    """This run's delivery of the program, pending (a retried task finds its own row)."""
    now = dt.datetime.now(dt.UTC)
    row = session.scalars(
        select(Delivery).where(
            Delivery.destination == context.run.destination,
            Delivery.program_code == batch.program_code,
            Delivery.run_id == context.run.run_id,
        )
    ).one_or_none()
    if row is None:
        row = Delivery(
            destination=context.run.destination,
            program_code=batch.program_code,
            run_id=context.run.run_id,
            created_at=now,
        )
        session.add(row)
    elif row.status == "logged":
        return row
    row.batch_digest = batch.digest
    row.status = "pending"
    row.artifacts = {"prepared": prepared, "changes": changes.to_dict()}
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


def _planned(
    context: RunContext, batch: Batch, ledger: dict[str, Any]
) -> tuple[Current, dict[ChildKey, Held], Changes]:
    """Tonight's batch against what the destination holds now (:mod:`.state`)."""
    current = current_of(batch, ledger)
    with session_scope(context.engine) as session:
        held = load_held(session, context.run.destination, batch.program_code)
        held = with_rows(session, context.run.destination, held, differing(held, current))
    agreement = context.agreement
    changes = plan_changes(
        held,
        current,
        withheld_reasons(ledger, batch.program_code),
        program=batch.program_code,
        full=context.destination.resend is Resend.FULL,
        snapshot=context.destination.type.value in SNAPSHOTS,
        delete_on_revocation=agreement.delete_on_revocation,
        delete_out_of_scope=agreement.delete_out_of_scope,
    )
    return current, held, changes


def outgoing(
    context: RunContext, batch: Batch, changes: Changes, held: dict[ChildKey, Held]
) -> Batch:
    """What goes tonight: the changed children's rows (a file drop: the whole snapshot, with
    its withdrawals file when its formats carry one)."""
    out = narrowed(batch, changes)
    if not changes.snapshot:
        return out
    specs = [load_spec(name) for name in context.destination.formats]
    spec = withdrawals_spec(specs)
    if spec is None:
        return out
    run_date = dt.date.fromisoformat(batch.run_date)
    artifact = withdrawals_artifact(spec, specs, changes.withdraw, held, run_date)
    return Batch(out.run_id, out.run_date, out.program_code, (*out.artifacts, artifact))


def _delete(
    context: RunContext,
    destination: Any,
    program: str,
    changes: Changes,
    held: dict[ChildKey, Held],
) -> tuple[set[ChildKey], dict[ChildKey, tuple[str, ...]]]:
    """Delete at the destination what tonight withdraws or replaces, where it can delete;
    returns the children withdrawn and, per child, the old copies replaced."""
    if changes.snapshot:
        carried = withdrawals_spec([load_spec(n) for n in context.destination.formats])
        return (set(changes.withdraw) if carried else set()), {}
    if hasattr(destination, "delete_rows"):
        rows: dict[str, list[list[str]]] = {}
        for key in changes.withdraw:
            for name, keys in held[key].rows.items():
                rows.setdefault(name, []).extend(keys)
        for stale in changes.replace.values():
            for name, keys in stale.items():
                rows.setdefault(name, []).extend(keys)
        run = context.run
        destination.delete_rows(
            rows, program_code=program, run_id=run.run_id, run_date=run.run_date.isoformat()
        )
        return set(changes.withdraw), {k: tuple(sorted(v)) for k, v in changes.replace.items()}
    if hasattr(destination, "withdraw") and changes.withdraw:
        results = destination.withdraw(sorted(changes.withdraw))
        failed = {w.child_key for w in results if w.status == "failed"}
        return set(changes.withdraw) - failed, {}
    return set(), {}


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
    current, held, changes = _planned(context, batch, ledger)
    if changes.nothing:
        outcome |= {"status": "unchanged", "logged": 0, "sent_nothing_new": True}
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
            _keep_unchanged(session, context, batch, outcome)
        remove_staged(context, prepared)
        return outcome
    sending = outgoing(context, batch, changes, held)
    with session_scope(context.engine) as session:
        delivery_id = _delivery_row(session, context, sending, prepared, changes).id
    destination = context.client
    started = time.perf_counter()
    result: DeliveryResult = (
        destination.deliver(sending) if sending.artifacts or changes.snapshot else DeliveryResult()
    )
    withdrawn, replaced = _delete(context, destination, batch.program_code, changes, held)
    replaced |= result.replaced
    sent = time.perf_counter()
    outcome["seconds"] = {"deliver": round(sent - started, 3)}
    with session_scope(context.engine) as session:
        logged = record_delivery(
            session,
            context,
            run_id=context.run.run_id,
            run_date=context.run.run_date,
            program=batch.program_code,
            ledger=ledger,
            accepted=result.accepted & changes.send,
            rejected=result.rejected,
            delivery_id=delivery_id,
            notes=_not_sent(result),
            deleted={k: changes.withdraw[k] for k in withdrawn},
            replaced=replaced,
            carried=result.carried,
            state=StateUpdate(current, held, changes.program, changes.snapshot),
        )
        outcome |= {
            "status": "delivered",
            "logged": logged,
            "sent": len(changes.send),
            "withdrawn": len(withdrawn),
            "replaced": len(replaced),
            "rejected": len(result.rejected),
            "rows_delivered": result.rows,
            "location": result.location,
            "sent_nothing_new": result.sent_nothing_new,
        }
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(
                artifacts={"prepared": prepared, "changes": changes.to_dict(), "outcome": outcome}
            )
        )
    remove_staged(context, prepared)
    outcome["seconds"]["record"] = round(time.perf_counter() - sent, 3)
    return outcome


def _keep_unchanged(session, context: RunContext, batch: Batch, outcome: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    """An ``unchanged`` delivery row holding the outcome (nothing was sent; nothing awaits)."""
    now = dt.datetime.now(dt.UTC)
    session.add(
        Delivery(
            destination=context.run.destination,
            program_code=batch.program_code,
            run_id=context.run.run_id,
            batch_digest=batch.digest,
            status="unchanged",
            artifacts={"outcome": outcome},
            staged_path=None,
            created_at=now,
            updated_at=now,
        )
    )


def recorded_outcomes(
    context: RunContext, programs: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """program -> outcome of every program this run delivered (or found unchanged) and
    logged; limited to ``programs`` when given."""
    query = select(Delivery.program_code, Delivery.artifacts).where(
        Delivery.destination == context.run.destination,
        Delivery.run_id == context.run.run_id,
        Delivery.status.in_(("logged", "unchanged")),
    )
    if programs is not None:
        query = query.where(Delivery.program_code.in_(list(programs)))
    with session_scope(context.engine) as session:
        rows = session.execute(query).all()
    return {
        r.program_code: r.artifacts["outcome"]
        for r in rows
        if isinstance(r.artifacts, dict) and "outcome" in r.artifacts
    }


def deliver_shard(
    run: dict[str, Any], prepared: Sequence[dict[str, Any]], settings: Settings | None = None
) -> tuple[list[dict[str, Any]], dict[str, Exception]]:
    """Deliver a shard's prepared programs one after the other with one destination client;
    returns their outcomes and, per program that failed, its error (the others went on). A
    program an earlier attempt of the same run already delivered is not sent again: its
    recorded outcome is returned."""
    context = RunContext.of(run, settings)
    done = (
        {} if context.run.dry_run else recorded_outcomes(context, [p["program"] for p in prepared])
    )
    outcomes: list[dict[str, Any]] = []
    failed: dict[str, Exception] = {}
    with ExitStack() as stack:
        if not context.run.dry_run and prepared and hasattr(context.client, "shard_session"):
            stack.enter_context(context.client.shard_session())
        for item in prepared:
            program = str(item["program"])
            if program in done:
                outcomes.append(done[program])
                continue
            try:
                outcomes.append(deliver_program(run, item, settings))
            except Exception as error:  # one program's failure stops only that program
                failed[program] = error
    return outcomes, failed
