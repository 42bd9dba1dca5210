"""Removing staged batches once nothing awaits reconciliation.

A staged batch is kept while its delivery is unfinished (``pending`` or ``delivered`` but not
logged): the next run needs it to log what the destination holds. Everything else a run
staged goes when the run ends (``finish``), and what finished, failed or abandoned runs of
the destination left (a crash before ``finish``) goes when the next run starts (``plan``).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from pipelines.db import session_scope
from pipelines.submission.context import RunContext
from pipelines.submission.reconcile import UNFINISHED
from schemas import Delivery, Run


def _awaiting(context: RunContext) -> set[tuple[str, str]]:
    with session_scope(context.engine) as session:
        rows = session.execute(
            select(Delivery.run_id, Delivery.program_code).where(
                Delivery.destination == context.run.destination, Delivery.status.in_(UNFINISHED)
            )
        ).all()
    return {(r.run_id, r.program_code) for r in rows}


def clean_run(context: RunContext, programs: Iterable[str]) -> None:
    """Remove what this run staged for ``programs``, except batches awaiting reconciliation."""
    awaiting = _awaiting(context)
    run_id = context.run.run_id
    for program in programs:
        if (run_id, program) not in awaiting:
            context.staged.remove_program(run_id, program)


def sweep_closed_runs(context: RunContext) -> list[str]:
    """Remove what the destination's closed runs (not ``running``) left staged, unless one of
    their deliveries awaits reconciliation; returns the run ids swept."""
    held = context.staged.runs()
    if not held:
        return []
    with session_scope(context.engine) as session:
        closed = set(
            session.scalars(
                select(Run.id).where(
                    Run.destination == context.run.destination,
                    Run.status != "running",
                    Run.id.in_(held),
                )
            )
        )
    waiting = {run_id for run_id, _ in _awaiting(context)}
    swept = sorted(closed - waiting)
    for run_id in swept:
        context.staged.remove_run(run_id)
    return swept
