"""What each Airflow task calls: one function per task, dicts in and out, no PII.

The DAG files import this module inside their tasks. Terminal failures (a privacy gate, a
policy or key problem) are raised as ``AirflowFailException`` so Airflow does not retry them;
transient delivery failures are left as they are, so the task's retries with backoff apply.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from pipelines.destinations.base import TerminalDeliveryError, TransientDeliveryError
from pipelines.staging import StagingKeyError
from pipelines.submission.context import SubmissionError
from pipelines.submission.deliver import deliver_program as _deliver
from pipelines.submission.finish import finish_run as _finish
from pipelines.submission.plan import plan_run as _plan
from pipelines.submission.prepare import prepare_program as _prepare
from privacy.errors import PrivacyError

log = logging.getLogger("datashare")
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
        from airflow.exceptions import AirflowFailException

        raise AirflowFailException(f"{type(error).__name__}: {error}") from error


def plan_run(destination: str, ds: str | None, params: dict[str, Any]) -> dict[str, Any]:
    """The plan task: the run date is the DAG run's logical date."""
    run_date = dt.date.fromisoformat(ds) if ds else dt.date.today()
    plan = _terminal(
        lambda: _plan(
            destination,
            run_date,
            dry_run=bool(params.get("dry_run")),
            output=str(params.get("output") or ""),
        )
    )
    log.info(
        "run %s: %d programs to process, %d skipped",
        plan["run_id"],
        len(plan["programs"]),
        len(plan["skipped_programs"]),
    )
    return plan


def prepare_program(run: dict[str, Any], program: str) -> dict[str, Any]:
    """The prepare task of one program."""
    prepared = _terminal(lambda: _prepare(run, program))
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
    outcome = _terminal(lambda: _deliver(run, prepared))
    log.info(
        "run %s program %s: %s, %d disclosures logged",
        run["run_id"],
        outcome["program"],
        outcome["status"],
        outcome.get("logged", 0),
    )
    return outcome


def finish_run(run: dict[str, Any], delivered: list[dict[str, Any] | None]) -> dict[str, Any]:
    """The finish task: the run summary."""
    summary = _finish(run, delivered)
    log.info("run %s: %s", run["run_id"], summary["status"])
    return summary


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
