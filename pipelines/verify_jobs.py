"""Ledger verification as a background job: never inside a request.

Walking a million entries takes minutes, longer than a person waits or a proxy keeps a request
open. ``start`` records a job (``ledger_verify_jobs``) and runs ``verify_ledgers`` (the same
function as ``datashare audit verify``) on a thread of the serving process; the job's row holds
its progress (entries walked, of about how many) and then its result, so any api-server worker
can show it. A job that finds both ledgers intact records verified-through checkpoints.

**One job at a time**, held by the database, not by this process: a partial unique index lets
one row only be ``running`` (``schemas/verification.py``). Two requests racing (two api-server
workers, two browsers) both try to insert; the loser's insert fails and it returns the winner's
job. ``datashare audit verify`` takes the same slot (:func:`verify_as_job`): it waits for a
running job to end, then runs as a job the console shows, so two verifies never walk the
ledgers or write checkpoints at once.

**Orphans.** A job records its owner process (``pipelines/job_owners.py``), which writes a heartbeat
every :data:`HEARTBEAT` seconds while the job runs. A job is *stalled* (:func:`stalled_why`)
when its owner is a process this one can look up (same host and pid namespace) and it has
ended (an api-server restart, a killed worker: seen at once), or when its heartbeat is older
than :data:`STALE_AFTER` (how a job of another host is judged). The next request marks it
``stalled`` and inserts the new job in one transaction. A job writes its result, and its
checkpoints, only while its row is still ``running``: one marked stalled behind its back (a
process that froze, then woke) writes nothing. Heartbeats are stamped with the writer's clock
and judged by the reader's: api-server hosts' clocks must agree to well within STALE_AFTER.

``datashare audit verify`` shares the slot rather than running beside a job, though two
verifies at once would not make a checkpoint false (each vouches only for what it walked):
the slot spares a small server two walks of a million entries at once, keeps a slower
verify's checkpoint (at an older head) from landing after a newer one and making the next
routine verify walk more, and lets the console show every verify.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from pipelines import job_owners as owners
from pipelines.db import session_scope
from privacy import anchors as anchoring
from privacy import checkpoints
from privacy.errors import LedgerError
from schemas.verification import LedgerVerifyJob

log = logging.getLogger(__name__)
MODES = ("routine", "full")
HEARTBEAT = 5.0  # seconds between an owner's heartbeats
STALE_AFTER = dt.timedelta(seconds=6 * HEARTBEAT)  # no heartbeat for this long: stalled
WAIT_POLL = 2.0  # seconds between a waiting command's looks at the running job
_PROGRESS_EVERY = 1.0  # seconds between progress writes
_ATTEMPTS = 5  # reads of the running job before giving up (each lost race reads it again)
ENDED = (
    "the process running it ({where}) ended: the api-server restarted, its worker died, "
    "or the command was stopped"
)
SILENT = (
    "no heartbeat for {seconds} seconds or more from the process running it ({where}): it "
    "stopped (the api-server restarted, or its worker ended) or cannot reach the database"
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def _shown(value: dt.datetime | None) -> str | None:
    return None if value is None else _aware(value).replace(microsecond=0).isoformat()


def _owner(job: LedgerVerifyJob) -> owners.Owner | None:
    if job.owner_pid is None:
        return None
    return owners.Owner(
        host=job.owner_host or "", space=job.owner_space, pid=job.owner_pid,
        started=job.owner_started,
    )  # fmt: skip


def _where(owner: owners.Owner | None) -> str:
    return "not recorded" if owner is None else f"pid {owner.pid} on {owner.host}"


def _heard(job: LedgerVerifyJob) -> dt.datetime:
    """When the owner was last heard from (a job from before heartbeats: its last progress)."""
    return _aware(job.heartbeat_at or job.updated_at)


def stalled_why(job: LedgerVerifyJob, now: dt.datetime) -> tuple[str, bool] | None:
    """Why running ``job`` is stalled, and whether by its heartbeat's age (else its owner is
    seen to have ended); None while it is not running or still alive."""
    if job.state != "running":
        return None
    owner = _owner(job)
    if owner is not None and owners.visible(owner.space) and owners.ended(owner):
        return ENDED.format(where=_where(owner)), False
    if now - _heard(job) > STALE_AFTER:
        return SILENT.format(seconds=int(STALE_AFTER.total_seconds()), where=_where(owner)), True
    return None


def view(job: LedgerVerifyJob | None) -> dict[str, Any] | None:
    """What a page or a JSON client is shown of ``job`` (no PII: counts, seqs, hashes)."""
    if job is None:
        return None
    stalled = stalled_why(job, _now())
    return {
        "id": job.id,
        "mode": job.mode,
        "state": "stalled" if stalled else job.state,
        "requested_by": job.requested_by,
        "started_at": _shown(job.started_at),
        "updated_at": _shown(job.updated_at),
        "finished_at": _shown(job.finished_at),
        "checked": int(job.checked),
        "total": int(job.total),
        "result": job.result,
        "error": stalled[0] if stalled else job.error,
        "owner": None if job.owner_pid is None else _where(_owner(job)),
        "heartbeat_at": _shown(job.heartbeat_at),
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
    job_id, new = _take(engine, mode, who)
    if new:
        thread = threading.Thread(
            target=run, args=(engine, job_id, mode == "full"), name=f"datashare-verify-{job_id}"
        )
        thread.daemon = True
        threads[job_id] = thread
        thread.start()
    return job_id


def _take(engine: Engine, mode: str, who: str) -> tuple[int, bool]:
    """(a new running job owned by this process, True) or (the running job, False)."""
    total = _planned(engine, mode == "full")
    for _ in range(_ATTEMPTS):
        try:
            return _claim(engine, mode, who, total)
        except (IntegrityError, _Moved):  # another request's job won the race: join it
            continue
    raise RuntimeError("could not start or join a verify job: the jobs table kept changing")


class _Moved(Exception):
    """The running job changed between reading it and writing: read it again."""


def _claim(engine: Engine, mode: str, who: str, total: int) -> tuple[int, bool]:
    """(the running job's id, False), or (a new running job's id, True) after marking a
    stalled one so, in one transaction; the unique index refuses a second running row."""
    with session_scope(engine) as session:
        running = session.scalars(
            select(LedgerVerifyJob).where(LedgerVerifyJob.state == "running")
        ).first()
        now = _now()
        if running is not None:
            stalled = stalled_why(running, now)
            if stalled is None:
                return int(running.id), False
            _stall(session, int(running.id), now, *stalled)
        me = owners.current()
        job = LedgerVerifyJob(
            mode=mode,
            requested_by=who[:120],
            state="running",
            started_at=now,
            updated_at=now,
            heartbeat_at=now,
            checked=0,
            total=total,
            owner_host=me.host,
            owner_space=me.space,
            owner_pid=me.pid,
            owner_started=me.started,
        )
        session.add(job)
        session.flush()  # the unique index refuses it here if another job runs
        return int(job.id), True


def _stall(session: Session, job_id: int, now: dt.datetime, why: str, by_age: bool) -> None:
    """Mark job ``job_id`` stalled if it still is running (and, ``by_age``, still has not
    been heard from for STALE_AFTER)."""
    query = update(LedgerVerifyJob).where(
        LedgerVerifyJob.id == job_id, LedgerVerifyJob.state == "running"
    )
    if by_age:
        heard = func.coalesce(LedgerVerifyJob.heartbeat_at, LedgerVerifyJob.updated_at)
        query = query.where(heard < now - STALE_AFTER)
    stalled = session.execute(
        query.values(state="stalled", finished_at=now, error=why[:500]).execution_options(
            synchronize_session=False
        )
    )
    if stalled.rowcount != 1:  # type: ignore[attr-defined]
        raise _Moved  # it moved on (a heartbeat, or another request stalled it)


def _set(session: Session, job_id: int, **values: Any) -> bool:
    """Write ``values`` (and a heartbeat) to job ``job_id`` if it is still running; False if
    it is not (marked stalled by another request: it must write nothing more)."""
    now = _now()
    values.setdefault("updated_at", now)
    written = session.execute(
        update(LedgerVerifyJob)
        .where(LedgerVerifyJob.id == job_id, LedgerVerifyJob.state == "running")
        .values(heartbeat_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(written.rowcount)  # type: ignore[attr-defined]


def beat(engine: Engine, job_id: int) -> bool:
    """Write job ``job_id``'s heartbeat (not its progress); False once it is not running."""
    with session_scope(engine) as session:
        return _set(session, job_id, updated_at=LedgerVerifyJob.updated_at)


@contextmanager
def beating(engine: Engine, job_id: int) -> Iterator[None]:
    """Write job ``job_id``'s heartbeat every HEARTBEAT seconds until the block ends."""
    done = threading.Event()

    def loop() -> None:
        while not done.wait(HEARTBEAT):
            try:
                if not beat(engine, job_id):
                    return
            except SQLAlchemyError:  # a database blip: the next beat tries again
                log.warning("ledger verify job %s: a heartbeat failed", job_id, exc_info=True)

    heart = threading.Thread(target=loop, name=f"datashare-heartbeat-{job_id}", daemon=True)
    heart.start()
    try:
        yield
    finally:
        done.set()
        heart.join()


class _Superseded(Exception):
    """The job is no longer ``running``: roll back its checkpoints."""

    def __init__(self, check: anchoring.LedgerCheck) -> None:
        super().__init__("the verify job was marked stalled")
        self.check = check


def _verify(
    engine: Engine,
    job_id: int,
    full: bool,
    given: dict[str, tuple[int, str] | None] | None = None,
    exported: Sequence[anchoring.Anchor] = (),
) -> anchoring.LedgerCheck:
    """Verify as job ``job_id``: progress as it goes, then the result and the checkpoints in
    one transaction, only if the job is still ``running`` (else :class:`_Superseded`)."""
    walked: dict[str, int] = {}
    last = [time.monotonic()]

    def progress(ledger: str, count: int) -> None:
        walked[ledger] = count
        if time.monotonic() - last[0] >= _PROGRESS_EVERY:
            last[0] = time.monotonic()
            with session_scope(engine) as session:
                _set(session, job_id, checked=sum(walked.values()))

    with session_scope(engine) as session:
        check = anchoring.verify_ledgers(
            session, given=given, exported=exported, full=full, record=True, progress=progress
        )
        result = outcome(check)
        checked = sum(r["entries"] for r in result["ledgers"])
        if not _set(
            session, job_id, state="done", finished_at=_now(), checked=checked, result=result
        ):
            raise _Superseded(check)
    return check


def _fail(engine: Engine, job_id: int, error: BaseException) -> None:
    """Record that job ``job_id`` ended with ``error`` (if it is still running)."""
    # a database error's text can quote statement parameters: name only its kind
    said = f": {error}" if isinstance(error, LedgerError) else " (see the server's log)"
    message = f"{type(error).__name__}{said}"[:500]
    with session_scope(engine) as session:
        _set(session, job_id, state="failed", finished_at=_now(), error=message)


def run(engine: Engine, job_id: int, full: bool) -> None:
    """Run job ``job_id`` to its end, with its heartbeat, writing progress and then the
    result or the error.

    The result and the checkpoints the verify recorded commit together, and only if the job is
    still ``running``: a job marked stalled meanwhile (another request started a new one)
    leaves no checkpoint, so two jobs never both write them."""
    try:
        with beating(engine, job_id):
            _verify(engine, job_id, full)
    except _Superseded:
        log.warning("ledger verify job %s was marked stalled: its result is dropped", job_id)
    except Exception as error:  # the job reports any failure, then ends
        log.exception("ledger verify job %s failed", job_id)
        _fail(engine, job_id, error)


def _pause(seconds: float) -> None:
    """Wait between looks at the running job (a seam for tests)."""
    time.sleep(seconds)


class StillRunning(Exception):
    """Another verify job still ran when a waiting command's limit was reached."""

    def __init__(self, job: dict[str, Any] | None, waited: float) -> None:
        super().__init__(f"verify job #{job['id'] if job else '?'} still running")
        self.job = job
        self.waited = waited


def verify_as_job(
    engine: Engine,
    who: str,
    *,
    full: bool,
    given: dict[str, tuple[int, str] | None] | None = None,
    exported: Sequence[anchoring.Anchor] = (),
    waiting: Callable[[dict[str, Any]], None] = lambda job: None,
    wait_limit: float | None = None,
) -> tuple[anchoring.LedgerCheck, bool]:
    """Verify in this process as a job of the one slot (``datashare audit verify``): while
    another job runs, call ``waiting`` with it (once per job) and wait, at most ``wait_limit``
    seconds (then :class:`StillRunning`; nothing was written); a stalled one is replaced.
    Returns what was found and whether its checkpoints were kept (not, if the job was marked
    stalled meanwhile). A failure, or an interrupt, marks the job failed."""
    mode = "full" if full else "routine"
    told: set[int] = set()
    began = time.monotonic()
    while True:
        job_id, new = _take(engine, mode, who)
        if new:
            break
        if job_id not in told:
            told.add(job_id)
            shown = find(engine, job_id)
            if shown is not None:
                waiting(shown)
        waited = time.monotonic() - began
        if wait_limit is not None and waited >= wait_limit:
            raise StillRunning(find(engine, job_id), waited)
        _pause(WAIT_POLL)
    try:
        with beating(engine, job_id):
            return _verify(engine, job_id, full, given, exported), True
    except _Superseded as superseded:
        return superseded.check, False
    except BaseException as error:  # a broken key, a database error, Ctrl-C: the slot frees
        _fail(engine, job_id, error)
        raise


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
