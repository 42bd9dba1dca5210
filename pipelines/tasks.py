"""What each Airflow task calls: one function per task, dicts in and out, no PII.

The DAG files import this module inside their tasks. Terminal failures (a privacy gate, a
policy or key problem) are raised as ``AirflowFailException`` so Airflow does not retry them;
transient delivery failures are left as they are, so the task's retries with backoff apply.
A program's prepare or deliver task records why it failed (``run_stops``) before re-raising,
so ``finish`` can say which program stopped and why; ``verdict``, the DAG's last task, fails
the Airflow run when any program stopped.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from pipelines.destinations.base import TerminalDeliveryError, TransientDeliveryError
from pipelines.quiet import quiet_libraries
from pipelines.staging import StagingKeyError
from pipelines.submission.context import RunContext, SubmissionError
from pipelines.submission.deliver import deliver_program as _deliver
from pipelines.submission.finish import finish_run as _finish
from pipelines.submission.plan import plan_run as _plan
from pipelines.submission.prepare import prepare_program as _prepare
from pipelines.submission.runs import heartbeat
from pipelines.submission.stops import record_stop
from privacy.errors import PrivacyError

log = logging.getLogger("datashare")
quiet_libraries()
T = TypeVar("T")
# a missing or unreadable staging key is a key problem like a recipient's: not worth a retry
TERMINAL = (PrivacyError, SubmissionError, TerminalDeliveryError, StagingKeyError)


def _terminal(call: Callable[[], T]) -> T:
    """Run ``call``; a terminal error fails the task without retries, its message kept."""
    try:
        return call()
    except TransientDeliveryError:
        raise
    except TERMINAL as error:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"{type(error).__name__}: {error}") from error


def _airflow_live(ids: dict[str, str]) -> bool | None:
    """False when Airflow says the DAG run ``ids`` names is over (so its ledger run crashed);
    None when it cannot tell or says running (a killed ``airflow dags test`` stays running
    there), leaving the decision to the run's heartbeat."""
    if not ids.get("dag_id") or not ids.get("run_id"):
        return None
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        state = str(RuntimeTaskInstance.get_dagrun_state(ids["dag_id"], ids["run_id"]))
    except Exception:  # outside a task, or an older API: the heartbeat decides
        return None
    return None if state.lower().endswith(("running", "queued")) else False


def plan_run(
    destination: str,
    ds: str | None,
    params: dict[str, Any],
    airflow: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The plan task: the run date is the DAG run's logical date; ``airflow`` names the DAG
    run (dag_id, run_id) so a later run can ask Airflow whether this one is still alive."""
    run_date = dt.date.fromisoformat(ds) if ds else dt.date.today()
    plan = _terminal(
        lambda: _plan(
            destination,
            run_date,
            dry_run=bool(params.get("dry_run")),
            output=str(params.get("output") or ""),
            airflow=airflow,
            is_live=_airflow_live,
        )
    )
    log.info(
        "run %s: %d programs to process, %d skipped",
        plan["run_id"],
        len(plan["programs"]),
        len(plan["skipped_programs"]),
    )
    return plan


def _program_step(step: str, run: dict[str, Any], program: str, call: Callable[[], T]) -> T:
    """Run one program's step; on any failure keep why (PII-free) before re-raising."""
    engine = RunContext.of(run).engine
    try:
        heartbeat(engine, run["run_id"])
    except Exception as error:  # a heartbeat must not stop a delivery
        log.warning("run %s: heartbeat not recorded (%s)", run["run_id"], type(error).__name__)
    try:
        return call()
    except BaseException as error:
        try:
            reason, _ = record_stop(engine, run["run_id"], program, step, error)
            log.error("run %s program %s stopped at %s: %s", run["run_id"], program, step, reason)
        except Exception as recording:
            log.warning("run %s: stop not recorded (%s)", run["run_id"], type(recording).__name__)
        raise


def prepare_program(run: dict[str, Any], program: str) -> dict[str, Any]:
    """The prepare task of one program."""
    prepared = _terminal(
        lambda: _program_step("prepare", run, program, lambda: _prepare(run, program))
    )
    counts = prepared["counts"]
    log.info(
        "run %s program %s: %d considered, %d disclosed",
        run["run_id"],
        program,
        counts["considered"],
        counts["disclosed"],
    )
    return prepared


def deliver_program(run: dict[str, Any], prepared: dict[str, Any]) -> dict[str, Any]:
    """The deliver task of one program."""
    program = str(prepared["program"])
    outcome = _terminal(
        lambda: _program_step("deliver", run, program, lambda: _deliver(run, prepared))
    )
    log.info(
        "run %s program %s: %s, %d disclosures logged",
        run["run_id"],
        outcome["program"],
        outcome["status"],
        outcome.get("logged", 0),
    )
    return outcome


def outcomes(delivered: Any) -> list[dict[str, Any]]:
    """The deliver tasks' outcomes as Airflow hands them to ``finish``: a sequence with gaps
    (None) for programs that stopped, a single outcome when only one map index has one, or
    nothing at all when every program stopped."""
    if delivered is None:
        return []
    if isinstance(delivered, dict):
        return [delivered]
    return [d for d in delivered if isinstance(d, dict)]


def finish_run(run: dict[str, Any], delivered: Any) -> dict[str, Any]:
    """The finish task: the run summary."""
    summary = _finish(run, outcomes(delivered))
    log.info("run %s: %s", run["run_id"], summary["status"])
    return summary


def verdict(summary: dict[str, Any]) -> dict[str, Any]:
    """The DAG's last task: fail the Airflow run unless every program was delivered, after
    ``finish`` wrote the summary; the failure message lists each stopped program's line."""
    if summary["status"] == "success":
        return {"run_id": summary["run_id"], "status": "success"}
    from airflow.sdk.exceptions import AirflowFailException

    lines = "; ".join(summary.get("stop_lines", [])) or "see the run summary"
    raise AirflowFailException(f"run {summary['run_id']} is {summary['status']}: {lines}")


def report_failure(context: dict[str, Any]) -> None:
    """Failure callback: which task of which run failed, and the error's type. No values."""
    ti = context.get("task_instance") or context.get("ti")
    error = context.get("exception")
    log.error(
        "datashare task failed: dag=%s task=%s map_index=%s run=%s error=%s",
        getattr(ti, "dag_id", "?"),
        getattr(ti, "task_id", "?"),
        getattr(ti, "map_index", "?"),
        getattr(ti, "run_id", "?"),
        type(error).__name__ if error else "unknown",
    )

