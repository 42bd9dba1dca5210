"""Plan: which programs take part in this run, and the run's ledger row. No PII."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select

from pipelines.db import session_scope
from pipelines.destinations.base import DeliveryError
from pipelines.destinations.staging_db import AgreementChanged
from pipelines.settings import Settings
from pipelines.submission import reconcile_view, staging_view
from pipelines.submission.cleanup import sweep_closed_runs
from pipelines.submission.context import RunContext, RunInfo
from pipelines.submission.reconcile import reconcile
from pipelines.submission.runs import ConcurrentRun, LiveCheck, owner, settle_open_runs
from pipelines.submission.shards import children_per_program, shards
from pipelines.submission.staging_copy import catch_up
from pipelines.submission.stops import StopReason, record_stop
from pipelines.submission.withdrawals import (
    aggregate_files,
    aggregates_held,
    aggregates_note,
    held_counts,
    still_held_note,
    withdrawing_note,
    withdraws_program,
)
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
    reconcile what earlier runs left unlogged, then list the programs to process. A dry run
    marks no run abandoned: it lists those a real run would in ``would_abandon`` (refused
    alike when one is alive), and previews the reconciliation of their open deliveries as the
    real run will settle them once they are abandoned (:mod:`.reconcile_view`).

    Only programs in the recipient's jurisdiction (its state, ``privacy.bases.in_jurisdiction``)
    are considered; programs of other states are not listed at all, unless the destination
    still holds records of them (a program that moved: ``program_not_in_jurisdiction``). A
    recipient without a state gets no program: every program is listed as skipped with
    ``recipient_no_jurisdiction``
    (default deny). Programs that do not share (not registered, withdrawn, AIAN without
    opt-in) are listed with their reason and processed no further; for an AIAN program whose
    opt-in is incomplete, ``skip_notes`` says what it lacks (of ``authority``, ``decided_by``,
    ``recorded_by``, ``effective_date``, ``scope``, ``excluded_fields``), by name only. An
    agreement not in force on the run date leaves no program. A skipped program whose records
    the destination still holds from earlier deliveries is, when the agreement asks for the
    deletion of what no longer qualifies (``delete_out_of_scope``) and the destination can
    delete, also listed among the programs to process and in ``withdrawing`` (program ->
    children held): its delivery withdraws them all and sends nothing else. Otherwise it is
    counted in ``still_held`` and its note says so (nothing more is sent). Aggregate tables a
    skipped program's destination still holds are counted in ``aggregates_held`` (never
    withdrawn). An AIAN program processed for aggregates only under a record agreement (its
    children withheld for that program-level reason) is listed in ``records_withheld``
    (program -> ``aian_aggregate_only``) with a note saying why; the records held of it from
    earlier nights are withdrawn like a stopped program's (``withdrawing``) when the agreement
    asks for it and the destination can delete, and otherwise counted in ``still_held``. Its
    aggregate tables keep going either way. See :mod:`.withdrawals`.

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
    if not dry_run:  # a dry run removes nothing: the real run sweeps the same batches
        sweep_closed_runs(context)
    agreement, recipient = context.agreement, context.recipient
    reconciled, unreachable = _caught_up(context, is_live)
    if not dry_run and unreachable is None:
        for code, text in reconcile(context).items():
            reconciled[code] = f"{reconciled[code]}; {text}" if code in reconciled else text
    would_settle: dict[str, Any] = {}
    if dry_run and unreachable is None:  # what the real run would settle first: read only
        texts, would_settle = reconcile_view.report(context)
        for code, text in texts.items():
            reconciled[code] = f"{reconciled[code]}; {text}" if code in reconciled else text
    with session_scope(context.engine) as session:
        blocked = agreement_reason(agreement, recipient, run_date)
        every = session.execute(select(Program.code, Program.state).order_by(Program.code)).all()
        skipped: dict[str, str] = {}
        in_state = [
            code
            for code, state in every
            if in_jurisdiction(state, recipient) or blocked is Reason.RECIPIENT_NO_JURISDICTION
        ]
        # a program no longer in the recipient's state is listed only while the destination
        # still holds records of it (to be withdrawn, or counted); the agreement's own reason
        # comes first, as for every program
        moved = [code for code, _ in every if code not in in_state]
        for code in _held(context, session, moved):
            skipped[code] = str(blocked or Reason.PROGRAM_NOT_IN_JURISDICTION)
        statuses = current_participation(session, recipient.code, run_date)
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
        held, withdrawing, tables = _stopped(context, session, skipped, notes, programs)
        withheld = _narrowed(context, session, narrowed, notes, held, withdrawing)
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
                    "withdrawing": withdrawing,
                    "records_withheld": withheld,
                    "aggregates_held": tables,
                    "reconciled": reconciled,
                    **({"would_settle": would_settle} if would_settle else {}),
                    # a dry run marks nothing abandoned: it says which runs a real run would
                    **({"would_abandon": abandoned} if dry_run else {"abandoned_runs": abandoned}),
                    "airflow": airflow or {},
                    "owner": owner(),
                },
            )
        )
    if unreachable is not None:  # fail closed: nothing of the destination goes tonight
        for code in programs:
            record_stop(context.engine, run.run_id, code, "plan", unreachable)
    tasks = context.destination.tasks
    # a program whose held records are withdrawn is not extracted (it weighs nothing), unless
    # its aggregate tables still go
    unextracted = [
        code
        for code in withdrawing
        if code not in withheld or not aggregate_files(context.destination)
    ]
    return {
        **run.to_dict(),
        "agreement": agreement.id,
        "programs": programs,
        "shards": []
        if unreachable is not None
        else shards(
            programs,
            children_per_program(context.engine, programs) | dict.fromkeys(unextracted, 0),
            max_children=tasks.shard_children,
            max_programs=tasks.shard_programs,
        ),
        "skipped_programs": skipped,
        "skip_notes": notes,
        "still_held": held,
        "withdrawing": withdrawing,
        "records_withheld": withheld,
        "aggregates_held": tables,
        "reconciled": reconciled,
        **({"would_settle": would_settle} if would_settle else {}),
        **({"would_abandon" if dry_run else "abandoned_runs": abandoned} if abandoned else {}),
    }


def _held(context: RunContext, session: Any, programs: list[str]) -> dict[str, int]:
    """Children the destination holds per program (:func:`.withdrawals.held_counts`); a dry
    run counts them as the real run's take-over (a staging database: :mod:`.staging_view`)
    and reconciliation (:mod:`.reconcile_view`) would leave them."""
    counts = held_counts(session, context.run.destination, programs)
    counts = staging_view.held_counts(session, context, counts, programs)
    return reconcile_view.held_counts(session, context, counts, programs)


def _caught_up(
    context: RunContext, is_live: LiveCheck | None
) -> tuple[dict[str, str], DeliveryError | None]:
    """A staging database's other names caught up (:func:`.staging_copy.catch_up`: their
    open deliveries settled, this name's delivery state taken over; a dry run only reads what
    it would take over). When the database cannot be reached, nothing is and the error says
    which destination and database (never a password): each program to process then stops at
    plan with it, as when the database records other agreements or formats than the
    destination's (rule ``staging_db_agreement_changed``, checked first; a dry run too);
    the skipped ones are reported as always, and open deliveries stay open for the next run."""
    try:
        check = getattr(context.client, "check_agreement", None)
        if check is not None and staging_view.is_staging(context):
            check()  # the database's record of its agreement, before anything is touched
        return catch_up(context, is_live), None
    except AgreementChanged as error:
        return {}, error  # it names the destination, the database and the rule
    except DeliveryError as error:
        name = context.run.destination
        where = str(getattr(context.client, "where", lambda: "")())
        detail = str(error) if where in str(error) else f"staging database {where}: {error}"
        return {}, type(error)(
            f"destination {name}, before planning: {detail}; nothing of it was sent, deleted "
            "or taken over (open deliveries stay open)"
        )


def _narrowed(
    context: RunContext,
    session: Any,
    narrowed: list[str],
    notes: dict[str, str],
    held: dict[str, int],
    withdrawing: dict[str, int],
) -> dict[str, str]:
    """The AIAN programs sharing aggregate outputs only under a record agreement: program ->
    ``aian_aggregate_only``, each with its note (why no child record of it goes, and what
    becomes of the records the destination holds from earlier nights: withdrawn tonight into
    ``withdrawing``, or counted into ``held``)."""
    reason = Reason.AIAN_AGGREGATE_ONLY
    withheld = dict.fromkeys(narrowed, str(reason))
    counts = _held(context, session, narrowed)
    sends_tables = bool(aggregate_files(context.destination))
    for code in narrowed:
        note = f"no child record is sent ({reason.value}: {reason.description})"
        if (count := counts.get(code)) and withdraws_program(
            reason, context.agreement, context.destination
        ):
            withdrawing[code] = count
            note += "; " + withdrawing_note(count, aggregates=sends_tables)
        elif count:
            held[code] = count
            note += "; " + still_held_note(
                count, context.agreement.delete_out_of_scope, aggregates=sends_tables
            )
        notes[code] = f"{notes[code]}; {note}" if code in notes else note
    return withheld


def _stopped(
    context: RunContext,
    session: Any,
    skipped: dict[str, str],
    notes: dict[str, str],
    programs: list[str],
) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """What the destination still holds of the skipped programs: those whose held records are
    withdrawn tonight join ``programs`` (kept sorted); returns the children still held (not
    withdrawn), the children to withdraw and the aggregate tables held, per program. Adds
    each program's line to ``notes``."""
    held = _held(context, session, sorted(skipped))
    tables = aggregates_held(session, context.destination, sorted(skipped))
    withdrawing: dict[str, int] = {}
    for code, count in held.items():
        if withdraws_program(skipped[code], context.agreement, context.destination):
            withdrawing[code] = count
            note = withdrawing_note(count)
        else:
            note = still_held_note(count, context.agreement.delete_out_of_scope)
        notes[code] = f"{notes[code]}; {note}" if code in notes else note
    for code, count in tables.items():
        note = aggregates_note(count)
        notes[code] = f"{notes[code]}; {note}" if code in notes else note
    programs[:] = sorted({*programs, *withdrawing})
    still = {code: n for code, n in held.items() if code not in withdrawing}
    return still, withdrawing, tables


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
