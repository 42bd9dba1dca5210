"""Ledger verification as a background job: never inside a request.

Walking a million entries takes minutes, longer than a person waits or a proxy keeps a request
open. ``start`` records a job (``ledger_verify_jobs``) and runs ``verify_ledgers`` (the same
function as ``datashare audit verify``) on a thread of the serving process; the job's row holds
its progress (entries walked, of about how many) and then its result, so any api-server worker
can show it. A job that finds both ledgers intact records verified-through checkpoints.

**One job at a time**, held by the database, not by this process: a partial unique index lets
one row only be ``running`` (``schemas/verification.py``). Two requests racing (two api-server
workers, two browsers) both try to insert; the loser's insert fails and it returns the winner's
job. A job whose progress stopped moving for :data:`STALE` (its process ended: the api-server
restarted or the worker died) is shown as stalled; the next request marks it ``stalled`` and
inserts the new job in one transaction. A job writes its result, and its checkpoints, only
while its row is still ``running``: one marked stalled behind its back writes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipelines.db import session_scope
from privacy import anchors as anchoring
from privacy import checkpoints
from privacy.errors import LedgerError
from schemas.verification import LedgerVerifyJob

log = logging.getLogger(__name__)
MODES = ("routine", "full")
STALE = dt.timedelta(minutes=5)
_PROGRESS_EVERY = 1.0  # seconds between progress writes
_ATTEMPTS = 5  # reads of the running job before giving up (each lost race reads it again)
STALLED = "no progress for {minutes} minutes: the server process running it stopped"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def _shown(value: dt.datetime | None) -> str | None:
    return None if value is None else _aware(value).replace(microsecond=0).isoformat()


def view(job: LedgerVerifyJob | None) -> dict[str, Any] | None:
    """What a page or a JSON client is shown of ``job`` (no PII: counts, seqs, hashes)."""
    if job is None:
        return None
    updated = _aware(job.updated_at)
    stalled = job.state == "running" and _now() - updated > STALE
    return {
        "id": job.id,
        "mode": job.mode,
        "state": "stalled" if stalled else job.state,
        "requested_by": job.requested_by,
        "started_at": _shown(job.started_at),
        "updated_at": _shown(updated),
        "finished_at": _shown(job.finished_at),
        "checked": int(job.checked),
        "total": int(job.total),
        "result": job.result,
        "error": job.error,
    }


def latest(engine: Engine) -> dict[str, Any] | None:
    """The newest job, as :func:`view` shows it."""
    with session_scope(engine) as session:
        job = session.scalars(
            select(LedgerVerifyJob).order_by(LedgerVerifyJob.id.desc()).limit(1)
        ).first()
        return view(job)


def find(engine: Engine, job_id: int) -> dict[str, Any] | None:
    """Job ``job_id`` as :func:`view` shows it, or None."""
    with session_scope(engine) as session:
        return view(session.get(LedgerVerifyJob, job_id))


def newest_checkpoints(engine: Engine) -> dict[str, str]:
    """Each ledger's newest checkpoint, described (where a routine verify would start)."""
    with session_scope(engine) as session:
        found = {name: checkpoints.latest(session, name) for name in anchoring.LEDGERS}
    return {name: cp.describe() for name, cp in found.items() if cp is not None}


def _planned(engine: Engine, full: bool) -> int:
    """About how many entries the job walks (a refused checkpoint makes it more)."""
    with session_scope(engine) as session:
        heads = anchoring.heads(session)
        total = 0
        for name in anchoring.LEDGERS:
            since = None if full else checkpoints.latest(session, name)
            total += heads[name][0] - (since.seq if since else 0)
    return max(total, 0)


def start(engine: Engine, mode: str, who: str, threads: dict[int, threading.Thread]) -> int:
    """Start a verify job (or return the one running); its thread is kept in ``threads``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    total = _planned(engine, mode == "full")
    for _ in range(_ATTEMPTS):
        try:
            job_id, new = _claim(engine, mode, who, total)
        except (IntegrityError, _Moved):  # another request's job won the race: join it
            continue
        if new:
            thread = threading.Thread(
                target=run, args=(engine, job_id, mode == "full"), name=f"datashare-verify-{job_id}"
            )
            thread.daemon = True
            threads[job_id] = thread
            thread.start()
        return job_id
    raise RuntimeError("could not start or join a verify job: the jobs table kept changing")


class _Moved(Exception):
    """The running job changed between reading it and writing: read it again."""


def _claim(engine: Engine, mode: str, who: str, total: int) -> tuple[int, bool]:
    """(the running job's id, False), or (a new running job's id, True) after marking a
    stale one stalled, in one transaction; the unique index refuses a second running row."""
    with session_scope(engine) as session:
        running = session.scalars(
            select(LedgerVerifyJob).where(LedgerVerifyJob.state == "running")
        ).first()
        now = _now()
        if running is not None:
            if now - _aware(running.updated_at) <= STALE:
                return int(running.id), False
            _stall(session, int(running.id), now)
        job = LedgerVerifyJob(
            mode=mode,
            requested_by=who,
            state="running",
            started_at=now,
            updated_at=now,
            checked=0,
            total=total,
        )
        session.add(job)
        session.flush()  # the unique index refuses it here if another job runs
        return int(job.id), True


def _stall(session: Session, job_id: int, now: dt.datetime) -> None:
    """Mark job ``job_id`` stalled if it still is running without progress for STALE."""
    stalled = session.execute(
        update(LedgerVerifyJob)
        .where(
            LedgerVerifyJob.id == job_id,
            LedgerVerifyJob.state == "running",
            LedgerVerifyJob.updated_at < now - STALE,
        )
        .values(
            state="stalled",
            finished_at=now,
            error=STALLED.format(minutes=int(STALE.total_seconds() // 60)),
        )
        .execution_options(synchronize_session=False)
    )
    if stalled.rowcount != 1:  # type: ignore[attr-defined]
        raise _Moved  # it moved on (progress, or another request stalled it)


def _set(session: Session, job_id: int, **values: Any) -> bool:
    """Write ``values`` to job ``job_id`` if it is still running; False if it is not (marked
    stalled by another request: it must write nothing more)."""
    written = session.execute(
        update(LedgerVerifyJob)
        .where(LedgerVerifyJob.id == job_id, LedgerVerifyJob.state == "running")
        .values(updated_at=_now(), **values)
        .execution_options(synchronize_session=False)
    )
    return bool(written.rowcount)  # type: ignore[attr-defined]


def run(engine: Engine, job_id: int, full: bool) -> None:
    """Run job ``job_id`` to its end, writing progress and then the result or the error.

    The result and the checkpoints the verify recorded commit together, and only if the job is
    still ``running``: a job marked stalled meanwhile (another request started a new one)
    leaves no checkpoint, so two jobs never both write them."""
    walked: dict[str, int] = {}
    last = [time.monotonic()]

    def progress(ledger: str, count: int) -> None:
        walked[ledger] = count
        if time.monotonic() - last[0] >= _PROGRESS_EVERY:
            last[0] = time.monotonic()
            with session_scope(engine) as session:
                _set(session, job_id, checked=sum(walked.values()))

    try:
        with session_scope(engine) as session:
            check = anchoring.verify_ledgers(session, full=full, record=True, progress=progress)
            result = outcome(check)
            checked = sum(r["entries"] for r in result["ledgers"])
            if not _set(
                session, job_id, state="done", finished_at=_now(), checked=checked, result=result
            ):
                raise _Superseded
    except _Superseded:
        log.warning("ledger verify job %s was marked stalled: its result is dropped", job_id)
    except Exception as error:  # the job reports any failure, then ends
        # a database error's text can quote statement parameters: name only its kind
        said = f": {error}" if isinstance(error, LedgerError) else " (see the server's log)"
        message = f"{type(error).__name__}{said}"[:500]
        log.exception("ledger verify job %s failed", job_id)
        with session_scope(engine) as session:
            _set(session, job_id, state="failed", finished_at=_now(), error=message)


class _Superseded(Exception):
    """The job is no longer ``running``: roll back its checkpoints."""


def outcome(check: anchoring.LedgerCheck) -> dict[str, Any]:
    """``check`` as data for the job's row (no PII: seqs, ids, hashes, counts)."""
    return {
        "ok": check.ok,
        "full": check.full,
        "anchor": None if check.anchor is None else check.anchor.run_id,
        "ledgers": [
            {
                "ledger": r.ledger,
                "ok": r.ok,
                "keyed": r.keyed,
                "summary": r.summary(),
                "verified": r.verified_range,
                "since": r.since,
                "entries": r.entries,
                "head": f"{r.head_seq}:{r.head_hash}",
                "checkpoint": (
                    check.started_from[r.ledger].describe()
                    if r.ledger in check.started_from
                    else None
                ),
                "breaks": [str(b) for b in r.breaks],
                "more_breaks": r.more_breaks,
            }
            for r in check.reports.values()
        ],
        "anchor_problems": check.anchor_problems,
        "delivery_problems": check.delivery_problems,
        "recorded": {name: cp.seq for name, cp in check.recorded.items()},
    }
