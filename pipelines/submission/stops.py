"""Why a program stopped: one reason code and one PII-free line per program, kept in the
program database (``run_stops``) by the failing task, read by ``finish``.

A program's prepare or deliver task records its failure before Airflow sees it (every attempt;
the last one wins, and a program that finished later is not stopped). A program with no
outcome and no recorded failure was lost: its worker was killed, or the task never started.

The line names a file, a rule, a key or a destination, never a value: only messages of this
project's own errors (written to that rule) are kept; anything else is named by its type.
"""

from __future__ import annotations

import datetime as dt
import errno
from enum import StrEnum

from sqlalchemy import Engine, select

from pipelines.db import session_scope
from schemas import RunStop

MAX_DETAIL = 300


class StopReason(StrEnum):
    """Why a program (or a whole run) stopped before its data was delivered and logged."""

    MISSING_KEY = "missing_key"
    CONCURRENT_RUN = "concurrent_run"
    DISK_FULL = "disk_full"
    GATE_FAILED = "gate_failed"
    POLICY_ERROR = "policy_error"
    CONFIG_ERROR = "config_error"
    STAGED_BATCH_UNREADABLE = "staged_batch_unreadable"
    DESTINATION_REFUSED = "destination_refused"
    DESTINATION_UNAVAILABLE = "destination_unavailable"
    TIMEOUT = "timeout"
    TASK_LOST = "task_lost"
    UNEXPECTED_ERROR = "unexpected_error"

    @property
    def description(self) -> str:
        """Plain words for data managers."""
        return _WORDS[self]


_WORDS = {
    StopReason.MISSING_KEY: "a key is missing or unusable (pseudonymization or staging key)",
    StopReason.CONCURRENT_RUN: "another run of the same destination is still running",
    StopReason.DISK_FULL: "no space left on a disk or in the database",
    StopReason.GATE_FAILED: "a validation gate (input or output privacy gate) stopped the batch",
    StopReason.POLICY_ERROR: "the agreement or the privacy policy refused the batch",
    StopReason.CONFIG_ERROR: "the destination or submission settings are unusable",
    StopReason.STAGED_BATCH_UNREADABLE: "the encrypted staged batch is missing or altered",
    StopReason.DESTINATION_REFUSED: "the destination refused the delivery",
    StopReason.DESTINATION_UNAVAILABLE: "the destination stayed unreachable after every retry",
    StopReason.TIMEOUT: "the task ran past its execution timeout",
    StopReason.TASK_LOST: "no outcome and no recorded failure: the worker was killed or the "
    "task never ran; see the Airflow log",
    StopReason.UNEXPECTED_ERROR: "an unexpected error; see the Airflow log",
}


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    line = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
    return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 1] + "…"


def classify(error: BaseException) -> tuple[StopReason, str]:
    """The reason code and one PII-free line for ``error`` (or what caused it)."""
    from pipelines.destinations.base import TerminalDeliveryError, TransientDeliveryError
    from pipelines.destinations.registry import DestinationConfigError
    from pipelines.mapping import RenderError
    from pipelines.staging import StagingError, StagingKeyError
    from pipelines.submission.context import SubmissionError
    from privacy.errors import InvalidKeyError, MissingKeyError, PrivacyError

    ours = (
        PrivacyError,
        SubmissionError,
        StagingError,
        TerminalDeliveryError,
        TransientDeliveryError,
        DestinationConfigError,
        RenderError,
    )
    for cause in _chain(error):
        name = type(cause).__name__
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            return StopReason.DISK_FULL, f"{name}: no space left on device"
        if "DiskFull" in name or "no space left" in str(cause).lower()[:200]:
            return StopReason.DISK_FULL, f"{name}: no space left"
        if name in {"AirflowTaskTimeout", "TimeoutError"}:
            return StopReason.TIMEOUT, name
        if not isinstance(cause, ours):
            continue
        line = _first_line(cause)
        if isinstance(cause, StagingKeyError | MissingKeyError | InvalidKeyError):
            return StopReason.MISSING_KEY, line
        if isinstance(cause, StagingError):
            return StopReason.STAGED_BATCH_UNREADABLE, line
        if isinstance(cause, TransientDeliveryError):
            return StopReason.DESTINATION_UNAVAILABLE, line
        if isinstance(cause, TerminalDeliveryError):
            return StopReason.DESTINATION_REFUSED, line
        if isinstance(cause, DestinationConfigError | RenderError):
            return StopReason.CONFIG_ERROR, line  # a layout that cannot write the data
        if name == "ConcurrentRun":
            return StopReason.CONCURRENT_RUN, line
        if name == "BatchStopped":
            return StopReason.GATE_FAILED, line
        if isinstance(cause, PrivacyError):
            return StopReason.POLICY_ERROR, line
        return StopReason.CONFIG_ERROR, line
    return StopReason.UNEXPECTED_ERROR, type(error).__name__


def record_stop(
    engine: Engine, run_id: str, program: str, step: str, error: BaseException, attempt: int = 1
) -> tuple[StopReason, str]:
    """Keep why ``program`` stopped at ``step`` (the latest failure replaces an earlier one)."""
    reason, detail = classify(error)
    with session_scope(engine) as session:
        session.merge(
            RunStop(
                run_id=run_id,
                program_code=program,
                step=step,
                reason_code=reason.value,
                detail=detail,
                attempt=attempt,
                recorded_at=dt.datetime.now(dt.UTC),
            )
        )
    return reason, detail


def stops_of(engine: Engine, run_id: str) -> dict[str, dict[str, str]]:
    """program -> {step, reason, detail} of every failure recorded for ``run_id``."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(RunStop.program_code, RunStop.step, RunStop.reason_code, RunStop.detail).where(
                RunStop.run_id == run_id
            )
        ).all()
    return {
        r.program_code: {"step": r.step, "reason": r.reason_code, "detail": r.detail} for r in rows
    }


def lost(step: str = "prepare or deliver") -> dict[str, str]:
    """The stop of a program with no outcome and no recorded failure."""
    return {
        "step": step,
        "reason": StopReason.TASK_LOST.value,
        "detail": StopReason.TASK_LOST.description,
    }


def stop_line(program: str, stop: dict[str, str]) -> str:
    """One line a data manager reads: program, step, reason code and what happened."""
    return f"{program}: stopped at {stop['step']} ({stop['reason']}): {stop['detail']}"
