"""Ledger verification as a background job: never inside a request.

Walking a million entries takes minutes, longer than a person waits or a proxy keeps a request
open. ``start`` records a job (``ledger_verify_jobs``) and runs ``verify_ledgers`` (the same
function as ``datashare audit verify``) on a thread of the serving process; the job's row holds
its progress (entries walked, of about how many) and then its result, so any api-server worker
can show it. One job runs at a time: asking again while one runs returns that one. A job whose
progress stopped moving for :data:`STALE` (its process ended) is shown as stalled and no longer
blocks a new one. A job that finds both ledgers intact records verified-through checkpoints.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any

from sqlalchemy import Engine, select, update

from pipelines.db import session_scope
from privacy import anchors as anchoring
from privacy import checkpoints
from privacy.errors import LedgerError
from schemas.verification import LedgerVerifyJob

log = logging.getLogger(__name__)
MODES = ("routine", "full")
STALE = dt.timedelta(minutes=5)
_PROGRESS_EVERY = 1.0  # seconds between progress writes


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
    with session_scope(engine) as session:
        running = session.scalars(
            select(LedgerVerifyJob)
            .where(LedgerVerifyJob.state == "running")
            .order_by(LedgerVerifyJob.id.desc())
            .limit(1)
        ).first()
        if running is not None and _now() - _aware(running.updated_at) <= STALE:
            return int(running.id)
        now = _now()
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
        session.flush()
        job_id = int(job.id)
    thread = threading.Thread(
        target=run, args=(engine, job_id, mode == "full"), name=f"datashare-verify-{job_id}"
    )
    thread.daemon = True
    threads[job_id] = thread
    thread.start()
    return job_id


def _set(engine: Engine, job_id: int, **values: Any) -> None:
    with session_scope(engine) as session:
        session.execute(
            update(LedgerVerifyJob)
            .where(LedgerVerifyJob.id == job_id)
            .values(updated_at=_now(), **values)
        )


def run(engine: Engine, job_id: int, full: bool) -> None:
    """Run job ``job_id`` to its end, writing progress and then the result or the error."""
    walked: dict[str, int] = {}
    last = [time.monotonic()]

    def progress(ledger: str, count: int) -> None:
        walked[ledger] = count
        if time.monotonic() - last[0] >= _PROGRESS_EVERY:
            last[0] = time.monotonic()
            _set(engine, job_id, checked=sum(walked.values()))

    try:
        with session_scope(engine) as session:
            check = anchoring.verify_ledgers(session, full=full, record=True, progress=progress)
            result = outcome(check)
    except Exception as error:  # the job reports any failure, then ends
        # a database error's text can quote statement parameters: name only its kind
        said = f": {error}" if isinstance(error, LedgerError) else " (see the server's log)"
        message = f"{type(error).__name__}{said}"[:500]
        log.exception("ledger verify job %s failed", job_id)
        _set(engine, job_id, state="failed", finished_at=_now(), error=message)
        return
    _set(
        engine,
        job_id,
        state="done",
        finished_at=_now(),
        checked=sum(r["entries"] for r in result["ledgers"]),
        result=result,
    )


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
