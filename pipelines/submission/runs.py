"""A run's life in the ledger: ``running`` with a heartbeat, then ``success``, ``partial``,
``failed``, ``refused`` (another run of the destination was live) or ``abandoned``.

Every task of a run touches ``runs.heartbeat_at`` when it starts, and the plan records who
runs it (``summary["owner"]``: host, process id, and whether every task runs in that one
process, as under ``airflow dags test`` or when the steps are called directly). The next run
of the same destination settles every earlier run still marked ``running``; it is
``abandoned`` (it crashed) when

- it ran in one process on this host and that process is gone (``kill -9`` of ``datashare
  run``); or
- Airflow says its DAG run is over (``is_live``: the DAG run's state, asked through the Task
  SDK; Airflow would not start a new scheduled run while the old one is running); or
- its heartbeat is older than the destination's ``stale_after`` (execution timeout plus the
  longest retry delay), whatever else is known.

Otherwise it is alive, and this run stops (:class:`ConcurrentRun`): two runs of one
destination at once could both send the same batch. A dry run applies the same rule (and
stops the same way) but marks nothing: it reports the runs a real run would mark abandoned
(:func:`would_abandon`), and those stay ``running`` until a real run comes.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from pipelines.db import session_scope
from pipelines.submission.context import RunContext, SubmissionError
from schemas import Run

OPEN = "running"
LiveCheck = Callable[[dict], bool | None]


class ConcurrentRun(SubmissionError):
    """Another run of the same destination is still running; this one stops before planning."""


def heartbeat(engine: Engine, run_id: str) -> None:
    """Mark ``run_id`` alive now."""
    with session_scope(engine) as session:
        session.execute(
            update(Run).where(Run.id == run_id).values(heartbeat_at=dt.datetime.now(dt.UTC))
        )


def owner(in_process: bool | None = None) -> dict[str, Any]:
    """Who runs a run's plan: host, process id, and whether the whole run stays in this
    process (``airflow dags test``, or no Airflow at all)."""
    if in_process is None:
        argv = sys.argv[1:4]
        in_process = ("dags" in argv and "test" in argv) or "airflow" not in sys.modules
    return {"host": socket.gethostname(), "pid": os.getpid(), "in_process": in_process}


def _gone(who: dict[str, Any]) -> bool:
    """True when ``who`` ran in one process on this host and that process no longer exists."""
    if not who.get("in_process") or who.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(who["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, ValueError, TypeError):
        return False
    return False


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is not None and moment.tzinfo is None:  # SQLite hands back naive UTC
        return moment.replace(tzinfo=dt.UTC)
    return moment


def settle_open_runs(
    context: RunContext, *, is_live: LiveCheck | None = None, now: dt.datetime | None = None
) -> list[str]:
    """Mark abandoned the destination's crashed runs; return their ids. Raises
    :class:`ConcurrentRun` when one of them is still alive. A dry run marks nothing: it
    returns the runs it would mark (:func:`would_abandon`), which stay as they are."""
    if context.run.dry_run:
        return would_abandon(context, is_live=is_live, now=now)
    now = now or dt.datetime.now(dt.UTC)
    with session_scope(context.engine) as session:
        crashed = _crashed(session, context, is_live, now)
        for row in crashed:
            row.status = "abandoned"
            row.finished_at = now
            row.summary = {**row.summary, "abandoned_by": context.run.run_id}
        return [row.id for row in crashed]


def would_abandon(
    context: RunContext, *, is_live: LiveCheck | None = None, now: dt.datetime | None = None
) -> list[str]:
    """The destination's crashed runs a real run would mark abandoned now (the same rule),
    read only; raises :class:`ConcurrentRun` when one of them is still alive."""
    now = now or dt.datetime.now(dt.UTC)
    with Session(context.engine) as session:  # closed without a commit: read only
        return [row.id for row in _crashed(session, context, is_live, now)]


def _crashed(
    session: Session, context: RunContext, is_live: LiveCheck | None, now: dt.datetime
) -> list[Run]:
    """The destination's other runs still marked running, every one of them crashed; raises
    :class:`ConcurrentRun` at the first that is alive."""
    stale = dt.timedelta(minutes=context.destination.tasks.stale_after_minutes)
    rows = session.scalars(
        select(Run).where(
            Run.destination == context.run.destination,
            Run.status == OPEN,
            Run.id != context.run.run_id,
        )
    ).all()
    for row in rows:
        seen = _aware(row.heartbeat_at) or _aware(row.started_at)
        fresh = seen is not None and now - seen < stale
        over = _gone(row.summary.get("owner", {})) or (
            is_live is not None and is_live(row.summary.get("airflow", {})) is False
        )
        if fresh and not over:
            raise ConcurrentRun(
                f"run {row.id} of destination {row.destination} is still running (last "
                f"sign of life {seen:%Y-%m-%d %H:%M} UTC); a crashed run is marked "
                f"abandoned after {context.destination.tasks.stale_after_minutes} minutes "
                "without one"
            )
    return list(rows)
