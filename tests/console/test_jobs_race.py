"""One verify job at a time, held by the database: requests racing from threads and from
processes against one database (SQLite and PostgreSQL, built by the migrations) start exactly
one job, which writes exactly one set of checkpoints; a stale job is marked stalled in the same
transaction as the new one is inserted; a job marked stalled behind its back writes nothing.

The race is forced, not hoped for: every racer waits at a barrier just before its first write
to the jobs table, so all of them have read "no job running" (or "a stale one") before any
writes; the started job's thread waits until every racer has its answer."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from console import jobs
from pipelines.db import make_engine, session_scope
from schemas import LedgerCheckpoint, LedgerVerifyJob
from schemas.migrate import upgrade
from tests.conftest import reset_schema
from tests.privacy.test_anchors import night

RACERS = 6
HOUR_AGO = dt.timedelta(hours=1)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A database made by the migrations (so the index is 0011's), with two anchored runs."""
    if request.param == "sqlite":
        made = f"sqlite:///{tmp_path / 'race.db'}"
    else:
        made = reset_schema(request.getfixturevalue("pg_url"))
    engine = make_engine(made)
    upgrade(engine)
    night(engine, "run-1", 0)
    night(engine, "run-2", 10, n=3)
    engine.dispose()
    return made


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    made = make_engine(url)
    yield made
    made.dispose()


def hold_first_write(engine: Engine, barrier: Any) -> None:
    """Each requesting thread (not a job's own) waits at ``barrier`` before its first INSERT
    or UPDATE of the jobs table."""
    seen = threading.local()

    @event.listens_for(engine, "before_cursor_execute")
    def wait(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        words = statement.lstrip().upper()
        writes = words.startswith(("INSERT INTO LEDGER_VERIFY_JOBS", "UPDATE LEDGER_VERIFY_JOBS"))
        job_thread = threading.current_thread().name.startswith("datashare-verify")
        if writes and not job_thread and not getattr(seen, "done", False):
            seen.done = True
            barrier.wait(timeout=300)  # a guard against a hang, not a timing


def hold_runs(monkeypatch: pytest.MonkeyPatch, release: Any) -> None:
    """A started job's thread walks the ledgers only once ``release`` is set."""
    real = jobs.run

    def held(*args: Any) -> None:
        release.wait(300)
        real(*args)

    monkeypatch.setattr(jobs, "run", held)


def stale_job(engine: Engine) -> int:
    """A job left running by a process that ended an hour ago (an api-server restart)."""
    then = dt.datetime.now(dt.UTC) - HOUR_AGO
    with session_scope(engine) as session:
        job = LedgerVerifyJob(mode="full", requested_by="uma", state="running", started_at=then,
                              updated_at=then, checked=10, total=100)  # fmt: skip
        session.add(job)
        session.flush()
        return int(job.id)


def race_threads(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """RACERS threads call ``jobs.start`` at once; returns the ids they were given."""
    barrier, release = threading.Barrier(RACERS), threading.Event()
    hold_first_write(engine, barrier)
    hold_runs(monkeypatch, release)
    threads: dict[int, threading.Thread] = {}
    answers: list[int] = []
    errors: list[BaseException] = []

    def racer(i: int) -> None:
        try:
            answers.append(jobs.start(engine, "routine", f"user{i}", threads))
        except BaseException as error:
            errors.append(error)

    racers = [threading.Thread(target=racer, args=(i,)) for i in range(RACERS)]
    for thread in racers:
        thread.start()
    for thread in racers:
        thread.join()
    release.set()
    for thread in list(threads.values()):
        thread.join()
    assert errors == []
    assert len(threads) == 1  # one thread started, by the request whose insert won
    return answers


def jobs_and_checkpoints(engine: Engine) -> tuple[list[tuple[int, str]], list[str]]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(LedgerVerifyJob.id, LedgerVerifyJob.state).order_by(LedgerVerifyJob.id)
        )
        found = [(int(i), str(s)) for i, s in rows]
        marks = session.scalars(select(LedgerCheckpoint.ledger).order_by(LedgerCheckpoint.ledger))
        return found, list(marks)


def test_when_requests_race_in_threads_then_one_job_runs_and_checkpoints_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = race_threads(engine, monkeypatch)
    found, marks = jobs_and_checkpoints(engine)
    assert len(found) == 1 and found[0][1] == "done"
    assert answers == [found[0][0]] * RACERS
    assert marks == ["disclosures", "redactions"]


def test_when_requests_race_past_a_stale_job_then_it_is_stalled_and_one_new_job_runs(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = stale_job(engine)
    answers = race_threads(engine, monkeypatch)
    found, marks = jobs_and_checkpoints(engine)
    assert found[0] == (old, "stalled") and len(found) == 2 and found[1][1] == "done"
    assert answers == [found[1][0]] * RACERS
    assert marks == ["disclosures", "redactions"]
    with session_scope(engine) as session:
        stalled = session.get(LedgerVerifyJob, old)
        assert stalled is not None and stalled.finished_at is not None
        assert "no progress for 5 minutes" in str(stalled.error)


def test_a_job_marked_stalled_behind_its_back_writes_no_result_and_no_checkpoint(
    engine: Engine,
) -> None:
    old = stale_job(engine)
    with session_scope(engine) as session:
        session.get(LedgerVerifyJob, old).state = "stalled"  # type: ignore[union-attr]
    jobs.run(engine, old, True)  # the old thread was alive after all, and finishes
    found, marks = jobs_and_checkpoints(engine)
    assert found == [(old, "stalled")] and marks == []
    assert jobs.find(engine, old)["result"] is None  # type: ignore[index]


def test_a_fresh_running_job_is_joined_and_a_stale_one_is_replaced(engine: Engine) -> None:
    old = stale_job(engine)
    threads: dict[int, threading.Thread] = {}
    shown = jobs.find(engine, old)
    assert shown is not None and shown["state"] == "stalled"  # shown so before anyone asks
    new = jobs.start(engine, "routine", "vera", threads)
    again = jobs.start(engine, "full", "ada", threads)
    threads[new].join()
    assert new != old and again == new and list(threads) == [new]
    assert jobs.find(engine, old)["state"] == "stalled"  # type: ignore[index]


def _racer(url: str, i: int, barrier: Any, release: Any, answers: Any) -> None:
    """One process: ask for a job at the barrier, report the answer, finish its job if any."""
    engine = make_engine(url)
    hold_first_write(engine, barrier)
    threads: dict[int, threading.Thread] = {}
    answers.put(jobs.start(engine, "routine", f"process{i}", threads))
    release.wait(300)
    for thread in threads.values():
        thread.join()
    answers.put(len(threads))
    engine.dispose()


def test_when_processes_race_then_one_job_runs_and_checkpoints_once(url: str) -> None:
    """Separate processes (as api-server workers are), each with its own engine."""
    context = multiprocessing.get_context("spawn")
    barrier, release, answers = context.Barrier(RACERS), context.Event(), context.Queue()
    racers = [
        context.Process(target=_racer, args=(url, i, barrier, release, answers))
        for i in range(RACERS)
    ]
    for process in racers:
        process.start()
    given = [answers.get(timeout=300) for _ in range(RACERS)]
    release.set()
    started = [answers.get(timeout=300) for _ in range(RACERS)]
    for process in racers:
        process.join(300)
        assert process.exitcode == 0
    engine = make_engine(url)
    found, marks = jobs_and_checkpoints(engine)
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(LedgerVerifyJob)) == 1
    engine.dispose()
    assert len(found) == 1 and found[0][1] == "done" and given == [found[0][0]] * RACERS
    assert sorted(started) == [0] * (RACERS - 1) + [1]
    assert marks == ["disclosures", "redactions"]
