"""Finish: the run summary (counts, withheld by reason, delivery outcomes, which program
stopped and why), kept as data.

Rows: ``rows_delivered`` (per file, table or resource: what the destination took) and, apart,
``rows_deleted`` (what a staging database or an Ed-Fi API deleted: withdrawals and old copies a
changed natural key left behind); summaries of runs before ``rows_deleted`` lack it (read it
with ``.get``). A dry run delivers nothing: its ``would_deliver`` says what a real run would
send and delete now (children, rows per file, table or resource).

The run's status is honest: ``success`` when every planned program was delivered (or found
unchanged), ``partial`` when some were and some stopped, ``failed`` when every planned program
stopped. The DAG's last task fails the Airflow run unless the status is ``success``."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from pipelines.db import session_scope
from pipelines.settings import Settings
from pipelines.submission.cleanup import clean_run, sweep_closed_runs
from pipelines.submission.context import RunContext, SubmissionError
from pipelines.submission.deliver import recorded_outcomes
from pipelines.submission.reports import write_report
from pipelines.submission.stops import lost, stop_line, stops_of
from privacy.anchors import anchor_run
from privacy.errors import PrivacyError
from privacy.ledger import Redaction, append_redactions
from privacy.reasons import Level, Reason, citation
from schemas import Run


def summarize(
    plan: dict[str, Any],
    delivered: Sequence[dict[str, Any] | None],
    stops: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Add up the programs' outcomes; a program with no outcome stopped before delivery, for
    the reason its failing task recorded in ``stops`` (or lost, when none was recorded)."""
    done = [d for d in delivered if d]
    totals: Counter[str] = Counter()
    withheld: Counter[str] = Counter()
    removed: Counter[str] = Counter()
    quarantined: Counter[str] = Counter()
    rows: Counter[str] = Counter()
    deleted: Counter[str] = Counter()
    would: Counter[str] = Counter()
    would_rows: Counter[str] = Counter()
    would_delete: Counter[str] = Counter()
    for outcome in done:
        counts = outcome["counts"]
        totals.update(
            considered=counts["considered"],
            disclosed=counts["disclosed"],
            logged=outcome.get("logged", 0),
            rejected=outcome.get("rejected", 0),
        )
        withheld.update(counts["withheld_by_reason"])
        removed.update(counts["fields_removed_by_reason"])
        quarantined.update(counts["quarantined_by_rule"])
        rows.update(outcome.get("rows_delivered", {}))  # what the destination took, not prepared
        deleted.update(outcome.get("rows_deleted", {}))  # apart: a deletion is not a delivery
        would.update(outcome.get("would", {}))  # a dry run: what a real run would do now
        would_rows.update(outcome.get("rows_would_deliver", {}))
        would_delete.update(outcome.get("rows_would_delete", {}))
    finished = {d["program"] for d in done}
    stopped = sorted(set(plan["programs"]) - finished)
    why = {p: (stops or {}).get(p) or lost() for p in stopped}
    return {
        "run_id": plan["run_id"],
        "destination": plan["destination"],
        "run_date": plan["run_date"],
        "dry_run": plan["dry_run"],
        "agreement": plan["agreement"],
        "programs": {
            "considered": len({*plan["programs"], *plan["skipped_programs"]}),
            "processed": sorted(finished),
            "stopped": stopped,
            "skipped": plan["skipped_programs"],
            "skip_notes": plan.get("skip_notes", {}),
            "still_held": plan.get("still_held", {}),
            "withdrawing": plan.get("withdrawing", {}),
            "records_withheld": plan.get("records_withheld", {}),
            "aggregates_held": plan.get("aggregates_held", {}),
        },
        "stops": why,
        "stop_lines": [stop_line(p, why[p]) for p in stopped],
        "children": dict(totals),
        "withheld_by_reason": dict(withheld),
        "fields_removed_by_reason": dict(removed),
        "quarantined_by_rule": dict(quarantined),
        "rows_delivered": dict(rows),
        "rows_deleted": dict(deleted),
        "deliveries": {d["program"]: d["status"] for d in done},
        "reconciled": plan.get("reconciled", {}),
        **({"would_settle": plan["would_settle"]} if plan.get("would_settle") else {}),
        **{k: plan[k] for k in ("would_abandon", "abandoned_runs") if plan.get(k)},
        "validation": "passed" if not stopped else "stopped",
    } | (
        {
            "would_deliver": {
                "children_sent": would.get("send", 0),
                "children_withdrawn": would.get("withdraw", 0),
                "rows": dict(would_rows),
                "rows_deleted": dict(would_delete),
                "programs": {d["program"]: d["would"] for d in done if "would" in d},
            }
        }
        if plan["dry_run"]
        else {}
    )


def finish_run(
    plan: dict[str, Any],
    delivered: Sequence[dict[str, Any] | None],
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Record skipped programs, and programs whose child records are withheld as a whole
    (an AIAN program sharing aggregate outputs only), in the redaction audit, each line citing
    the rule that decided it (:func:`skip_basis`) and its note; then close the run with its
    summary.

    ``delivered`` holds the outcomes the deliver tasks handed on; a program missing there
    whose delivery this run logged (its shard task failed afterwards, on another program) is
    taken from the delivery ledger."""
    context = RunContext.of(plan, settings)
    have = {d["program"] for d in delivered if d}
    missing = [p for p in plan["programs"] if p not in have]
    if missing and not context.run.dry_run:  # delivered by a shard task that failed later
        delivered = [*delivered, *recorded_outcomes(context, missing).values()]
    summary = summarize(plan, delivered, stops_of(context.engine, context.run.run_id))
    # records or counts only (how the summary words its children line); an unreadable policy
    # leaves it out: the summary is kept whatever happened
    with suppress(PrivacyError, SubmissionError):
        summary["output"] = context.agreement.output.value
    status = run_status(summary)
    summary["status"] = status
    notes = plan.get("skip_notes", {})
    lines = sorted({**plan["skipped_programs"], **plan.get("records_withheld", {})}.items())
    with session_scope(context.engine) as session:
        if not context.run.dry_run:
            append_redactions(
                session,
                [
                    Redaction(
                        run_id=context.run.run_id,
                        program_code=program,
                        subject=program,
                        agreement_id=plan["agreement"],
                        reason_code=reason,
                        rule=skip_basis(reason, plan["agreement"])
                        + (f": {n}" if (n := notes.get(program)) else ""),
                    )
                    for program, reason in lines
                ],
            )
        summary["anchor"] = anchor_run(session, context.run.run_id)  # after the run's last append
        summary["report"] = write_report(context, "summary", summary)
        run = session.get(Run, context.run.run_id)
        if run is not None:
            run.status = status
            run.finished_at = dt.datetime.now(dt.UTC)
            run.summary = summary
    clean_run(context, plan["programs"])
    if context.run.dry_run:  # its own batches only: what other runs left, the real run sweeps
        context.staged.remove_run(context.run.run_id)
    else:
        sweep_closed_runs(context)
    return summary


JURISDICTION = frozenset({Reason.PROGRAM_NOT_IN_JURISDICTION, Reason.RECIPIENT_NO_JURISDICTION})


def skip_basis(reason: str, agreement_id: str) -> str:
    """The rule a program-level audit line cites: the recipient's jurisdiction (a recipient
    receives only programs of its own state), the agreement (not in force, lapsed, the
    recipient barred), the AIAN program's own opt-in (its scope), or the participation
    registry (45 CFR 1302.53(b))."""
    try:
        # Reason(code) looks a member up by value; mypy checks the call against
        # the __new__ that builds the members (value, level, description)
        known = Reason(reason)  # type: ignore[call-arg]
    except ValueError:
        return "program participation registry (45 CFR 1302.53(b))"
    if known in JURISDICTION:
        where = citation(reason)
        return f"jurisdiction: a recipient receives only programs of its own state ({where})"
    if known.level is Level.AGREEMENT:
        return f"data-sharing agreement {agreement_id} ({citation(reason) or '45 CFR 1303.22'})"
    if known is Reason.AIAN_AGGREGATE_ONLY:
        return f"the AIAN program's opt-in scope ({citation(reason)})"
    return "program participation registry (45 CFR 1302.53(b))"


def run_status(summary: dict[str, Any]) -> str:
    """``success``, ``partial`` (some programs stopped) or ``failed`` (every one stopped)."""
    programs = summary["programs"]
    if not programs["stopped"]:
        return "success"
    return "partial" if programs["processed"] else "failed"
