"""What each Airflow task calls: one function per task, dicts in and out, no PII.

The DAG files import this module inside their tasks. Terminal failures (a privacy gate, a
policy or key problem) are raised as ``AirflowFailException`` so Airflow does not retry them;
transient delivery failures are left as they are, so the task's retries with backoff apply.
Tasks work on shards of programs (:mod:`pipelines.submission.shards`) and report per program:
a shard's prepare or deliver task records why each of its programs stopped (``run_stops``)
and goes on with the others, so ``finish`` can say which program stopped and why; ``verdict``,
the DAG's last task, fails the Airflow run when any program stopped.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from pipelines.destinations.base import TerminalDeliveryError, TransientDeliveryError
from pipelines.mapping import RenderError
from pipelines.quiet import quiet_libraries
from pipelines.staging import StagingKeyError
from pipelines.submission.context import RunContext, SubmissionError
from pipelines.submission.deliver import deliver_shard as _deliver
from pipelines.submission.finish import finish_run as _finish
from pipelines.submission.plan import plan_run as _plan
from pipelines.submission.prepare import prepare_shard as _prepare
from pipelines.submission.runs import heartbeat
from pipelines.submission.stops import record_stop
from privacy.errors import PrivacyError

log = logging.getLogger("datashare")
quiet_libraries()
T = TypeVar("T")
# a missing or unreadable staging key is a key problem like a recipient's, and a layout that
# cannot write the data (RenderError names spec, column and rule) stays so: not worth a retry
TERMINAL = (PrivacyError, SubmissionError, TerminalDeliveryError, StagingKeyError, RenderError)


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


def _heartbeat(run: dict[str, Any]) -> None:
    try:
        heartbeat(RunContext.of(run).engine, run["run_id"])
    except Exception as error:  # a heartbeat must not stop a delivery
        log.warning("run %s: heartbeat not recorded (%s)", run["run_id"], type(error).__name__)


def _stop(run: dict[str, Any], program: str, step: str, error: BaseException) -> None:
    """Keep why ``program`` stopped at ``step`` (PII-free), for ``finish``."""
    try:
        reason, _ = record_stop(RunContext.of(run).engine, run["run_id"], program, step, error)
        log.error("run %s program %s stopped at %s: %s", run["run_id"], program, step, reason)
    except Exception as recording:
        log.warning("run %s: stop not recorded (%s)", run["run_id"], type(recording).__name__)


def _shard_step(step: str, run: dict[str, Any], programs: list[str], call: Callable[[], T]) -> T:
    """Run a shard's step; a failure of the whole step is every program's stop."""
    _heartbeat(run)
    try:
        return call()
    except BaseException as error:
        for program in programs:
            _stop(run, program, step, error)
        raise


def _every_program_stopped(step: str, stopped: dict[str, Exception]) -> NoReturn:
    """Fail the shard's task for good: nothing is left to hand on."""
    from airflow.sdk.exceptions import AirflowFailException

    first = next(iter(stopped.values()))
    more = f" (and {len(stopped) - 1} more programs)" if len(stopped) > 1 else ""
    raise AirflowFailException(f"{type(first).__name__}: {first}{more}") from first


def prepare_shard(run: dict[str, Any], programs: list[str]) -> dict[str, Any]:
    """The prepare task of one shard of programs: the programs that passed go on to deliver;
    each program that stopped has its reason recorded (it stops alone). The task fails when
    every program of the shard stopped."""
    prepared, stopped = _terminal(
        lambda: _shard_step("prepare", run, programs, lambda: _prepare(run, programs))
    )
    for program, error in stopped.items():
        _stop(run, program, "prepare", error)
    for item in prepared:
        counts = item["counts"]
        log.info(
            "run %s program %s: %d considered, %d disclosed",
            run["run_id"],
            item["program"],
            counts["considered"],
            counts["disclosed"],
        )
    if not prepared:
        _every_program_stopped("prepare", stopped)
    return {"programs": list(programs), "prepared": prepared, "stopped": sorted(stopped)}


def deliver_shard(
    run: dict[str, Any], shard: dict[str, Any], *, final_attempt: bool = True
) -> dict[str, Any]:
    """The deliver task of one shard: each prepared program is delivered on its own and the
    delivered programs are logged in groups (each program alone should a group's write fail);
    a program that fails terminally stops alone. When a program met a transient fault
    and Airflow has an attempt left, the task fails after delivering the others so Airflow
    retries it; the retry sends only the programs not yet logged (:func:`deliver_shard
    <pipelines.submission.deliver.deliver_shard>`)."""
    prepared = list(shard["prepared"])
    programs = [str(p["program"]) for p in prepared]
    delivered, failed = _terminal(
        lambda: _shard_step("deliver", run, programs, lambda: _deliver(run, prepared))
    )
    for program, error in failed.items():
        _stop(run, program, "deliver", error)
    for outcome in delivered:
        log.info(
            "run %s program %s: %s, %d disclosures logged",
            run["run_id"],
            outcome["program"],
            outcome["status"],
            outcome.get("logged", 0),
        )
    transient = {p: e for p, e in failed.items() if isinstance(e, TransientDeliveryError)}
    if transient and not final_attempt:
        first = next(iter(transient.values()))
        raise TransientDeliveryError(
            f"programs {', '.join(sorted(transient))}: {first}; retrying sends only what "
            "is not yet logged"
        ) from first
    if failed and not delivered:
        _every_program_stopped("deliver", failed)
    return {
        "programs": list(shard["programs"]),
        "outcomes": delivered,
        "stopped": sorted({*shard.get("stopped", ()), *failed}),
    }


def outcomes(delivered: Any) -> list[dict[str, Any]]:
    """The programs' outcomes from the deliver tasks' results as Airflow hands them to
    ``finish``: a sequence of shard results with gaps (None) for shards whose task failed, a
    single result when only one map index has one, or nothing at all."""
    if delivered is None:
        return []
    shards = [delivered] if isinstance(delivered, dict) else list(delivered)
    return [o for s in shards if isinstance(s, dict) for o in s.get("outcomes", ())]


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
