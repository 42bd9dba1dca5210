"""Plan: which programs take part in this run, and the run's ledger row. No PII."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select

from pipelines.db import session_scope
from pipelines.settings import Settings
from pipelines.submission.cleanup import sweep_closed_runs
from pipelines.submission.context import RunContext, RunInfo
from pipelines.submission.reconcile import reconcile
from pipelines.submission.runs import ConcurrentRun, LiveCheck, owner, settle_open_runs
from pipelines.submission.shards import children_per_program, shards
from pipelines.submission.stops import StopReason
from pipelines.submission.withdrawals import held_counts, still_held_note
from privacy.bases import agreement_reason, in_jurisdiction
from privacy.decision import program_outcome
from privacy.participation import current_participation
from privacy.reasons import Reason
from schemas import Program, Run


def plan_run(
    destination: str,
    run_date: dt.date,
    *,
    dry_run: bool = False,
    output: str = "",
    settings: Settings | None = None,
    airflow: dict[str, str] | None = None,
    is_live: LiveCheck | None = None,
) -> dict[str, Any]:
    """Open a run: settle earlier runs of the destination still marked running (abandoned
    when crashed; this run is refused when one is alive), remove what closed runs left staged,
    reconcile what earlier runs left unlogged, then list the programs to process.

    Only programs in the recipient's jurisdiction (its state, ``privacy.bases.in_jurisdiction``)
    are considered; programs of other states are not listed at all. A recipient without a state
    gets no program: every program is listed as skipped with ``recipient_no_jurisdiction``
    (default deny). Programs that do not share (not registered, withdrawn, AIAN without
    opt-in) are listed with their reason and processed no further; for an AIAN program whose
    opt-in is incomplete, ``skip_notes`` says what it lacks (of ``authority``, ``decided_by``,
    ``recorded_by``, ``effective_date``, ``scope``, ``excluded_fields``), by name only. An
    agreement not in force on the run date leaves no program. A skipped program whose records
    the destination still holds from earlier deliveries is counted in ``still_held`` and its
    note says so (:mod:`.withdrawals`: nothing more is sent, nothing withdrawn automatically);
    so is an AIAN program processed for aggregates only under a record agreement (its children
    withheld for that program-level reason), whose earlier records are held all the same.

    The programs to process are also cut into ``shards`` (:mod:`.shards`), by the
    destination's ``tasks.shard_children`` and ``tasks.shard_programs``: the DAG maps one
    prepare and one deliver task over each shard.
    """
    stamp = run_date.strftime("%Y%m%d")
    run = RunInfo(
        f"{destination}-{stamp}-{uuid.uuid4().hex[:8]}", destination, run_date, dry_run, output
    )
    context = RunContext.of(run, settings)
    try:
        abandoned = settle_open_runs(context, is_live=is_live)
    except ConcurrentRun as error:
        _refuse(context, str(error), airflow)
        raise
    sweep_closed_runs(context)
    agreement, recipient = context.agreement, context.recipient
    reconciled = {} if dry_run else reconcile(context)
    with session_scope(context.engine) as session:
        blocked = agreement_reason(agreement, recipient, run_date)
        every = session.execute(select(Program.code, Program.state).order_by(Program.code)).all()
        in_state = [
            code
            for code, state in every
            if in_jurisdiction(state, recipient) or blocked is Reason.RECIPIENT_NO_JURISDICTION
        ]
        statuses = current_participation(session, recipient.code, run_date)
        skipped: dict[str, str] = {}
        notes: dict[str, str] = {}  # what an AIAN program's opt-in lacks: names, never values
        programs: list[str] = []
        narrowed: list[str] = []  # AIAN aggregate-only under a record agreement: no records
        for code in in_state:
            status = statuses[code]
            outcome = program_outcome(status, status.is_aian, agreement)
            if blocked is not None:
                skipped[code] = str(blocked)
            elif outcome.shares:
                programs.append(code)
                if outcome.reason is Reason.AIAN_AGGREGATE_ONLY:
                    narrowed.append(code)
            else:
                skipped[code] = str(outcome.reason)
                if outcome.reason is Reason.AIAN_OPT_IN_INCOMPLETE:
                    notes[code] = "the AIAN opt-in lacks " + ", ".join(status.opt_in_missing)
        held = held_counts(session, destination, sorted({*skipped, *narrowed}))
        for code, count in held.items():
            note = still_held_note(count, agreement.delete_out_of_scope)
            notes[code] = f"{notes[code]}; {note}" if code in notes else note
        now = dt.datetime.now(dt.UTC)
        session.add(
            Run(
                id=run.run_id,
                destination=destination,
                run_date=run_date,
                dry_run=dry_run,
                status="running",
                started_at=now,
                heartbeat_at=now,
                summary={
                    "skipped_programs": skipped,
                    "skip_notes": notes,
                    "still_held": held,
                    "reconciled": reconciled,
                    "abandoned_runs": abandoned,
                    "airflow": airflow or {},
                    "owner": owner(),
                },
            )
        )
    tasks = context.destination.tasks
    return {
        **run.to_dict(),
        "agreement": agreement.id,
        "programs": programs,
        "shards": shards(
            programs,
            children_per_program(context.engine, programs),
            max_children=tasks.shard_children,
            max_programs=tasks.shard_programs,
        ),
        "skipped_programs": skipped,
        "skip_notes": notes,
        "still_held": held,
        "reconciled": reconciled,
    }


def _refuse(context: RunContext, why: str, airflow: dict[str, str] | None) -> None:
    """Keep a ``refused`` run whose summary says why, so the CLI and the console show it."""
    now = dt.datetime.now(dt.UTC)
    line = f"(all programs): stopped at plan ({StopReason.CONCURRENT_RUN.value}): {why}"
    with session_scope(context.engine) as session:
        session.add(
            Run(
                id=context.run.run_id,
                destination=context.run.destination,
                run_date=context.run.run_date,
                dry_run=context.run.dry_run,
                status="refused",
                started_at=now,
                finished_at=now,
                summary={
                    "run_id": context.run.run_id,
                    "status": "refused",
                    "stop_lines": [line],
                    "airflow": airflow or {},
                },
            )
        )
