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
import os
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select
from typer.testing import CliRunner

from pipelines import job_owners as owners
from pipelines import verify_jobs as jobs
from pipelines.cli import app
from pipelines.db import make_engine, session_scope
from privacy import anchors as anchoring
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
    """Each requesting thread (not a job's own, nor its heartbeat) waits at ``barrier`` before
    its first INSERT or UPDATE of the jobs table."""
    seen = threading.local()

    @event.listens_for(engine, "before_cursor_execute")
    def wait(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        words = statement.lstrip().upper()
        writes = words.startswith(("INSERT INTO LEDGER_VERIFY_JOBS", "UPDATE LEDGER_VERIFY_JOBS"))
        job_thread = threading.current_thread().name.startswith(
            ("datashare-verify", "datashare-heartbeat")
        )
        if writes and not job_thread and not getattr(seen, "done", False):
            seen.done = True
            barrier.wait(timeout=300)  # a guard against a hang, not a timing


def hold_runs(monkeypatch: pytest.MonkeyPatch, release: Any) -> None:
    """A started job's thread walks the ledgers only once ``release`` is set (beating, as a
    live job's owner does, meanwhile)."""
    real = jobs.run

    def held(engine: Engine, job_id: int, full: bool) -> None:
        with jobs.beating(engine, job_id):
            release.wait(300)
        real(engine, job_id, full)

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
        assert "no heartbeat for 30 seconds" in str(stalled.error)


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


def test_a_fresh_running_job_is_joined_and_a_stale_one_is_replaced(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = stale_job(engine)
    release = threading.Event()
    hold_runs(monkeypatch, release)  # the new job still runs when the second request comes
    threads: dict[int, threading.Thread] = {}
    shown = jobs.find(engine, old)
    assert shown is not None and shown["state"] == "stalled"  # shown so before anyone asks
    new = jobs.start(engine, "routine", "vera", threads)
    again = jobs.start(engine, "full", "ada", threads)
    release.set()
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


# --- orphans: a job's owner process, its heartbeat (migration 0013) ---------------------------


def _own_a_job(url: str, release: Any, answers: Any, beat_every: float) -> None:
    """One api-server worker: start a full verify whose walk waits for ``release`` (a slow
    job), report the job's id, and finish it once released (unless killed first)."""
    engine = make_engine(url)
    jobs.HEARTBEAT = beat_every
    real = anchoring.verify_ledgers

    def slow(*args: Any, **kw: Any) -> anchoring.LedgerCheck:
        release.wait(300)  # a guard against a hang, not a timing
        return real(*args, **kw)

    anchoring.verify_ledgers = slow  # type: ignore[assignment]
    threads: dict[int, threading.Thread] = {}
    answers.put(jobs.start(engine, "full", "uma", threads))
    for thread in threads.values():
        thread.join()
    engine.dispose()


def owned_job(url: str, beat_every: float = jobs.HEARTBEAT) -> tuple[Any, Any, int]:
    """(a worker process running a slow job, the event that lets it finish, the job's id)."""
    context = multiprocessing.get_context("spawn")
    release, answers = context.Event(), context.Queue()
    worker = context.Process(target=_own_a_job, args=(url, release, answers, beat_every))
    worker.start()
    return worker, release, answers.get(timeout=300)


def row(engine: Engine, job_id: int) -> LedgerVerifyJob:
    with session_scope(engine) as session:
        found = session.get(LedgerVerifyJob, job_id)
        assert found is not None
        session.expunge(found)
        return found


def test_a_job_whose_worker_was_killed_is_replaced_by_the_next_request_at_once(
    url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 of the worker running a job (an api-server restart): the next request starts a
    new job now, not minutes later. Its heartbeat is not what tells: the age limit is a day."""
    worker, _, old = owned_job(url)
    owner = row(engine, old)
    assert (owner.owner_pid, owner.owner_host) == (worker.pid, socket.gethostname())
    assert owner.owner_started and owner.owner_space
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(300)
    monkeypatch.setattr(jobs, "STALE_AFTER", dt.timedelta(days=1))
    shown = jobs.find(engine, old)
    assert shown is not None and shown["state"] == "stalled"  # shown so before anyone asks
    assert f"pid {worker.pid} on {socket.gethostname()}) ended" in shown["error"]
    threads: dict[int, threading.Thread] = {}
    new = jobs.start(engine, "routine", "vera", threads)
    assert new != old and list(threads) == [new]
    threads[new].join()
    found, marks = jobs_and_checkpoints(engine)
    assert found == [(old, "stalled"), (new, "done")]
    assert marks == ["disclosures", "redactions"]  # the new job's, once
    assert "api-server restarted" in str(row(engine, old).error)


def test_a_live_slow_job_on_this_host_is_joined_though_its_progress_is_old(
    url: str, engine: Engine
) -> None:
    """Its walk has made no progress for an hour, but its worker lives and beats: a request
    joins it; once released it finishes and records the checkpoints."""
    worker, release, old = owned_job(url, beat_every=0.2)
    try:
        hour_ago = dt.datetime.now(dt.UTC) - HOUR_AGO
        with session_scope(engine) as session:
            job = session.get(LedgerVerifyJob, old)
            assert job is not None
            job.updated_at, first = hour_ago, job.heartbeat_at
        for _ in range(3000):  # the owner beats while its walk is silent
            if row(engine, old).heartbeat_at != first:
                break
            threading.Event().wait(0.1)
        assert row(engine, old).heartbeat_at != first
        threads: dict[int, threading.Thread] = {}
        assert jobs.start(engine, "routine", "vera", threads) == old and threads == {}
        assert jobs.find(engine, old)["state"] == "running"  # type: ignore[index]
    finally:
        release.set()
        worker.join(300)
    assert worker.exitcode == 0
    found, marks = jobs_and_checkpoints(engine)
    assert found == [(old, "done")] and marks == ["disclosures", "redactions"]


def other_host_job(engine: Engine, heard: dt.timedelta) -> int:
    """A job owned by a process of another host (its pid means nothing here, though this
    process has the same one), last heard from ``heard`` ago, with progress just now."""
    now = dt.datetime.now(dt.UTC)
    with session_scope(engine) as session:
        job = LedgerVerifyJob(mode="full", requested_by="uma", state="running", started_at=now,
                              updated_at=now, heartbeat_at=now - heard, checked=10, total=100,
                              owner_host="api-2", owner_space="another-boot/pid:[1]",
                              owner_pid=os.getpid(), owner_started="1")  # fmt: skip
        session.add(job)
        session.flush()
        return int(job.id)


@pytest.mark.parametrize(
    ("heard", "stalled"),
    [
        (dt.timedelta(0), False),
        (jobs.STALE_AFTER - dt.timedelta(seconds=5), False),
        (jobs.STALE_AFTER + dt.timedelta(seconds=5), True),
        (HOUR_AGO, True),
    ],
)
def test_a_job_of_another_host_is_judged_by_its_heartbeat_only(
    engine: Engine, heard: dt.timedelta, stalled: bool
) -> None:
    old = other_host_job(engine, heard)
    threads: dict[int, threading.Thread] = {}
    new = jobs.start(engine, "routine", "vera", threads)
    for thread in threads.values():
        thread.join()
    assert (new != old) is stalled
    shown = jobs.find(engine, old)
    assert shown is not None and shown["owner"] == f"pid {os.getpid()} on api-2"
    assert shown["state"] == ("stalled" if stalled else "running")
    if stalled:
        assert "no heartbeat for 30 seconds or more" in shown["error"]


def test_a_pid_reused_by_another_process_is_not_taken_for_the_owner() -> None:
    me = owners.current()
    assert me.started is not None and not owners.ended(me)
    assert owners.ended(replace(me, started=str(int(me.started) + 1)))
    assert owners.visible(me.space) and not owners.visible("another-boot/pid:[1]")
    assert not owners.visible(None)


def test_a_heartbeat_moves_only_the_heartbeat_and_stops_once_the_job_ended(
    engine: Engine,
) -> None:
    old = stale_job(engine)
    before = row(engine, old)
    assert jobs.beat(engine, old)
    after = row(engine, old)
    assert after.updated_at == before.updated_at and after.heartbeat_at is not None
    assert jobs.find(engine, old)["state"] == "running"  # type: ignore[index]
    with session_scope(engine) as session:
        session.get(LedgerVerifyJob, old).state = "stalled"  # type: ignore[union-attr]
    assert not jobs.beat(engine, old)


# --- datashare audit verify takes the same slot ------------------------------------------------


def cli(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner(env={"COLUMNS": "250"}).invoke(
        app, ["audit", "verify", "--database-url", url, *args]
    )
    return result.exit_code, result.output


def held_console_job(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, threading.Thread, threading.Event]:
    release = threading.Event()
    hold_runs(monkeypatch, release)
    threads: dict[int, threading.Thread] = {}
    job_id = jobs.start(engine, "full", "vera", threads)
    return job_id, threads[job_id], release


def test_the_cli_waits_for_a_console_job_then_runs_as_a_job_the_console_shows(
    url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    console_job, thread, release = held_console_job(engine, monkeypatch)
    seen: list[tuple[list[tuple[int, str]], list[str]]] = []

    def pause(_: float) -> None:  # the command waits: let the console's job finish
        seen.append(jobs_and_checkpoints(engine))
        release.set()
        thread.join()

    monkeypatch.setattr(jobs, "_pause", pause)
    code, out = cli(url)
    assert code == 0, out
    assert seen[0] == ([(console_job, "running")], [])  # nothing walked or written meanwhile
    assert f"job #{console_job}, asked by vera" in " ".join(out.split())
    assert "waiting for it to end" in " ".join(out.split())
    found, marks = jobs_and_checkpoints(engine)
    assert found[0] == (console_job, "done") and len(found) == 2 and found[1][1] == "done"
    shown = jobs.latest(engine)
    assert shown is not None and shown["id"] == found[1][0] and shown["mode"] == "routine"
    assert shown["requested_by"].endswith("(datashare audit verify)") and shown["result"]["ok"]
    assert marks == ["disclosures", "redactions"]  # the console job's; the command's added none


def test_a_console_request_while_the_cli_verifies_joins_the_cli_job(
    url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = anchoring.verify_ledgers
    threads: dict[int, threading.Thread] = {}
    asked: list[int] = []

    def verify_and_click(*args: Any, **kw: Any) -> anchoring.LedgerCheck:
        asked.append(jobs.start(engine, "full", "vera", threads))
        return real(*args, **kw)

    monkeypatch.setattr(anchoring, "verify_ledgers", verify_and_click)
    code, out = cli(url, "--full")
    assert code == 0, out
    found, marks = jobs_and_checkpoints(engine)
    assert found == [(asked[0], "done")] and threads == {}
    assert marks == ["disclosures", "redactions"] and "checkpoint recorded" in out


def test_the_cli_gives_up_at_its_wait_limit_and_writes_nothing(
    url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    console_job, thread, release = held_console_job(engine, monkeypatch)
    looks: list[float] = []
    monkeypatch.setattr(jobs, "_pause", looks.append)
    try:
        code, out = cli(url, "--wait-limit", "0")
        assert code == 3, out
        said = " ".join(out.split())
        assert f"job #{console_job} is still running" in said and "nothing was verified" in said
        assert looks == []  # gave up at the first look: no wait past the limit
        assert jobs_and_checkpoints(engine) == ([(console_job, "running")], [])
    finally:
        release.set()
        thread.join()
    assert jobs_and_checkpoints(engine)[0] == [(console_job, "done")]  # untouched by the CLI


def test_a_wait_within_the_limit_still_runs_the_verify(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    console_job, thread, release = held_console_job(engine, monkeypatch)

    def pause(_: float) -> None:
        release.set()
        thread.join()

    monkeypatch.setattr(jobs, "_pause", pause)
    check, kept = jobs.verify_as_job(
        engine, "ada (datashare audit verify)", full=False, wait_limit=600
    )
    assert kept and all(r.ok for r in check.reports.values())
    found, _ = jobs_and_checkpoints(engine)
    assert found[0] == (console_job, "done") and found[1][1] == "done" and len(found) == 2


def test_the_cli_without_checkpoints_runs_beside_a_job_and_writes_nothing(
    url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    console_job, thread, release = held_console_job(engine, monkeypatch)
    monkeypatch.setattr(jobs, "_pause", lambda _: pytest.fail("--no-checkpoint must not wait"))
    try:
        code, out = cli(url, "--no-checkpoint")
        assert code == 0, out
        assert jobs_and_checkpoints(engine) == ([(console_job, "running")], [])
    finally:
        release.set()
        thread.join()


def test_an_interrupted_cli_verify_frees_the_slot(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*_: Any, **__: Any) -> anchoring.LedgerCheck:
        raise KeyboardInterrupt

    monkeypatch.setattr(anchoring, "verify_ledgers", interrupted)
    with pytest.raises(KeyboardInterrupt):
        jobs.verify_as_job(engine, "ada (datashare audit verify)", full=False)
    found, marks = jobs_and_checkpoints(engine)
    assert [state for _, state in found] == ["failed"] and marks == []
    assert "KeyboardInterrupt" in str(jobs.find(engine, found[0][0])["error"])  # type: ignore[index]
