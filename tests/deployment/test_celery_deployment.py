"""The README's deployment recipe for real: Airflow metadata on PostgreSQL, the CeleryExecutor
with Redis, api-server, scheduler, dag-processor and two Celery workers with separate, private
state folders and names.

- A demo submission triggered through Airflow's REST API completes green, its tasks ran on both
  workers, and the delivered files equal the disclosure log.
- A worker killed with SIGKILL in the middle of a delivery (its whole process tree, as when a
  host dies): Airflow notices the silent task (a lowered heartbeat timeout), retries it on the
  surviving worker, the run ends green, and the delivered files still equal the disclosure log
  with no child missing and none twice; the ledgers verify.
- The killed worker's message, which it never acknowledged, handed out again by Celery after
  the run ended (its host comes back with a short visibility timeout): the execution API
  refuses to start the task instance it names (the retry replaced it), so nothing is sent or
  logged twice and Airflow's view of the run is unchanged.

"Mid-delivery" is an event, not a moment guessed with a sleep: the test holds a SHARE lock on
the disclosure log, so every delivery sends its files and then waits to log them; the worker
killed is the one whose database connection is seen waiting on that lock."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
from sqlalchemy import Engine, create_engine, func, select, text

from pipelines.airflow_cluster import (
    ACTIVE,
    BIN,
    AirflowCluster,
    cluster_environ,
    drop_database,
    flush_redis,
    fresh_database,
    run_state,
    task_instances,
    trigger,
    wait_for_end,
)
from pipelines.db import make_engine
from pipelines.demo import DEMO_DATE, seed
from pipelines.staging import create_key_file
from privacy.keys import ensure_demo_key
from schemas import Delivery, DisclosureEntry, Run, StagedChunk
from schemas.migrate import upgrade
from tests.conftest import PROJECT

pytestmark = [pytest.mark.deployment, pytest.mark.postgres]
ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BROKER = "redis://127.0.0.1:6379/5"  # this test's own Redis database
# Two by default; DATASHARE_DEPLOYMENT_WORKERS=1 measures the same run on one worker.
WORKERS = [f"w{i + 1}" for i in range(int(os.environ.get("DATASHARE_DEPLOYMENT_WORKERS", "2")))]
CRASH = "demo-crash"
# The crash destination: the demo's, with quick retries so the test waits seconds, not minutes.
CRASH_TASKS = (
    "tasks:\n  retries: 3\n  retry_delay_seconds: 1\n  max_retry_delay_minutes: 1\n"
    "  shard_programs: 1\n"
)
# One program per shard: the demo's two programs become two prepare and two deliver tasks, so
# the workers have parallel work to share (a small night is otherwise one shard).
DEMO_TASKS = "tasks:\n  shard_programs: 1\n"
# A killed task is noticed after this many silent seconds (Airflow's default is 300); live
# tasks heartbeat every 2 s, so a loaded machine still leaves them a wide margin.
HEARTBEAT_TIMEOUT = 15
RUN_TIMEOUT = 1200
# A workload's token lives [scheduler] task_queued_timeout (600 s by default) from queueing; a
# killed worker's task that had not started yet is queued again after as long.
TOKEN_LIFE = 600


def _needs() -> str | None:
    try:
        import airflow.providers.celery.executors.celery_executor_utils  # noqa: F401
        import psycopg2  # noqa: F401
        import redis  # noqa: F401
    except Exception:
        return "the production extra is not installed"
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
    except OSError:
        return "no Redis on 127.0.0.1:6379"
    return None


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if reason := _needs():
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("deployment")
    tag = uuid.uuid4().hex[:8]
    databases = (f"dep_af_{tag}", f"dep_ds_{tag}")
    for name in databases:
        fresh_database(ADMIN, name)
    flush_redis(BROKER)
    engine, cluster = None, None
    try:
        shutil.copytree(PROJECT / "config" / "agreements", root / "config" / "agreements")
        (root / "config" / "destinations").mkdir()
        demo = (PROJECT / "config" / "destinations" / "demo.yaml").read_text()
        demo += "\nenabled: false\n"
        (root / "config" / "destinations" / "demo.yaml").write_text(demo + DEMO_TASKS)
        crash = demo.replace("root: out/demo", f"root: out/{CRASH}") + CRASH_TASKS
        (root / "config" / "destinations" / f"{CRASH}.yaml").write_text(crash)
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/dep_ds_{tag}"
        engine = make_engine(url)
        env = cluster_environ(
            root,
            metadata_url=f"postgresql+psycopg2://postgres@127.0.0.1/dep_af_{tag}",
            database_url=url,
            config_dir=root / "config",
            state_dir=root / "state",
            broker_url=BROKER,
            # a killed worker's tasks are found silent within seconds (not 5 minutes)
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT=str(HEARTBEAT_TIMEOUT),
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="2",
            AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL="2",
        )
        (root / "state").mkdir(mode=0o700)
        for recipient in ("VT-AOE", "MO-DESE"):
            ensure_demo_key(root / "state" / "keys.json", recipient)
        create_key_file(root / "state" / "staging.key")
        for worker in WORKERS:  # each worker's private folder holds the same keys only
            (root / worker).mkdir(mode=0o700)
            for name in ("keys.json", "staging.key"):
                shutil.copy(root / "state" / name, root / worker / name)
        cluster = AirflowCluster(root, env)
        # the program database is seeded while Airflow migrates its own and starts (no DAG file
        # reads the program database; the first task to read it runs after the trigger)
        with ThreadPoolExecutor(1) as pool:
            seeded = pool.submit(_seed, engine)
            try:
                cluster.prepare()
                cluster.start_core()
                for worker in WORKERS:
                    start_worker(cluster, worker)
            finally:
                seeded.result()
        yield {
            "root": root,
            "cluster": cluster,
            "engine": engine,
            "env": cluster.env,
            "metadata_url": f"postgresql+psycopg://postgres@127.0.0.1:5432/dep_af_{tag}",
        }
    finally:
        if cluster is not None:
            cluster.stop(grace=5)  # every check is done: no need to wait for a graceful end
        if engine is not None:
            engine.dispose()
        for name in databases:
            drop_database(ADMIN, name)
        flush_redis(BROKER)


def _seed(engine: Engine) -> None:
    upgrade(engine)
    seed(engine, children=300, seed=11)


def start_worker(cluster: AirflowCluster, worker: str, **extra: str) -> subprocess.Popen:  # type: ignore[type-arg]
    """A worker of concurrency 2 with its private state folder."""
    return cluster.start_worker(
        worker, concurrency=2, DATASHARE_STATE_DIR=str(cluster.root / worker), **extra
    )


def _delivered_and_logged(
    root: Path, engine: Engine, destination: str
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(program, child) of every row of the delivered identity files, and of every disclosure
    logged by the destination's runs."""
    files = sorted(
        (root / "out" / destination / DEMO_DATE.isoformat()).rglob("hs_child_identity.csv")
    )
    frame = pd.concat(pd.read_csv(f, dtype=str) for f in files)
    delivered = list(zip(frame["ProgramID"], frame["LocalChildID"], strict=True))
    runs = select(Run.id).where(Run.destination == destination)
    with engine.connect() as connection:
        logged = connection.execute(
            select(DisclosureEntry.program_code, DisclosureEntry.child_local_id).where(
                DisclosureEntry.run_id.in_(runs)
            )
        ).all()
    return sorted(delivered), sorted((str(p), str(c)) for p, c in logged)


def test_a_deployment_runs_green_on_both_workers_and_survives_losing_one(
    deployment: dict[str, Any],
) -> None:
    """One test, three steps in order: under pytest-xdist two tests of this module could each
    start a whole deployment at once, on the same Redis database."""
    _a_submission_through_the_rest_api_runs_green_on_both_workers(deployment)
    if len(WORKERS) < 2:
        print("one worker: no worker can be lost while another survives")
        return
    crash = _a_worker_killed_mid_delivery_is_retried_to_completion_with_nothing_lost_or_doubled(
        deployment
    )
    _a_late_redelivery_of_the_killed_workers_message_is_refused(deployment, crash)


def _a_submission_through_the_rest_api_runs_green_on_both_workers(
    deployment: dict[str, Any],
) -> None:
    cluster: AirflowCluster = deployment["cluster"]
    api = cluster.api()
    run_id = trigger(api, "datashare_demo", DEMO_DATE)
    started = time.monotonic()
    state = wait_for_end(api, "datashare_demo", run_id, timeout=RUN_TIMEOUT)
    seconds = time.monotonic() - started
    hosts = {ti["hostname"] for ti in task_instances(api, "datashare_demo", run_id)}
    print(f"deployment run: {seconds:.1f} s on {sorted(hosts)}")
    assert state == "success", (cluster.logs / "w1.log").read_text()[-3000:]
    assert hosts == set(WORKERS), "tasks ran on every worker"
    delivered, logged = _delivered_and_logged(deployment["root"], deployment["engine"], "demo")
    assert delivered and logged == delivered
    with deployment["engine"].connect() as connection:
        staged = connection.scalar(select(func.count()).select_from(StagedChunk))
    assert staged == 0, "staged batches are removed after the run"


def _pg_ports(process: psutil.Process) -> set[int]:
    """The local ports of ``process``'s connections to PostgreSQL."""
    try:
        return {
            c.laddr.port
            for c in process.net_connections(kind="tcp")
            if c.raddr and c.raddr.port == 5432
        }
    except psutil.Error:  # it ended meanwhile
        return set()


def _tree(pid: int) -> list[psutil.Process]:
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _worker_waiting_on_a_lock(
    engine: Engine,
    workers: dict[str, subprocess.Popen],  # type: ignore[type-arg]
    done: Callable[[], bool],
) -> str:
    """The first worker one of whose task processes has a database session waiting on a lock
    (the disclosure log's, which the test holds): that task is mid-delivery."""
    query = text(
        "SELECT client_port FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock' AND client_port > 0"
    )
    deadline = time.monotonic() + 900
    while True:
        with engine.connect() as connection:
            waiting = set(connection.scalars(query))
        for name, worker in workers.items():
            if waiting and any(waiting & _pg_ports(p) for p in _tree(worker.pid)):
                return name
        assert not done(), "the run ended without a delivery waiting to log"
        assert time.monotonic() < deadline, "no delivery reached the disclosure log"
        time.sleep(0.5)  # polling the database's view of who waits, not a guessed delay


def _kill_whole(worker: subprocess.Popen) -> None:  # type: ignore[type-arg]
    """SIGKILL the worker, its pool, the task supervisors and the tasks (which run in process
    groups of their own): every process of the tree, as when its host dies."""
    tree = _tree(worker.pid)
    groups = set()
    for process in tree:
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(process.pid))
    assert os.getpgrp() not in groups, "the worker runs in a session of its own"
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    worker.wait()
    psutil.wait_procs(tree, timeout=30)


def _unacknowledged(ti_ids: set[str]) -> dict[str, str]:
    """The messages in the broker that a worker received and never acknowledged (kombu's Redis
    transport keeps them in the hash ``unacked`` until acknowledged, or handed out again after
    the visibility timeout) whose workload is one of the task instances ``ti_ids``: Celery task
    id -> task instance id."""
    import redis

    client = redis.Redis.from_url(BROKER)
    try:
        entries: dict[bytes, bytes] = client.hgetall("unacked")  # type: ignore[assignment]
    finally:
        client.close()
    found = {}
    for raw in entries.values():
        message, _exchange, _routing_key = json.loads(raw)
        body = base64.b64decode(message["body"]).decode()
        for ti_id in ti_ids:
            if ti_id in body:
                found[str(message["headers"]["id"])] = ti_id
    return found


def _outcome(engine: Engine, root: Path) -> dict[str, Any]:
    """What the crash destination's night left: delivered rows, disclosure log, deliveries,
    the run's summary, staged batches."""
    delivered, logged = _delivered_and_logged(root, engine, CRASH)
    with engine.connect() as connection:
        (summary,) = connection.scalars(select(Run.summary).where(Run.destination == CRASH))
        deliveries = connection.execute(
            select(Delivery.program_code, Delivery.status).where(Delivery.destination == CRASH)
        ).all()
        staged = connection.scalar(select(func.count()).select_from(StagedChunk))
    return {
        "delivered": delivered,
        "logged": logged,
        "summary": summary,
        "deliveries": sorted((str(p), str(s)) for p, s in deliveries),
        "staged": staged,
    }


def _assert_every_program_right(outcome: dict[str, Any], env: dict[str, str]) -> None:
    """No child missing or twice, the log exactly what arrived, one logged delivery per
    program, the ledgers verify."""
    delivered, logged, summary = outcome["delivered"], outcome["logged"], outcome["summary"]
    assert len(set(delivered)) == len(delivered), "no child delivered twice"
    assert len(set(logged)) == len(logged), "no child logged twice"
    assert logged == delivered, "the disclosure log is exactly what arrived"
    assert summary["programs"]["stopped"] == [] and summary["programs"]["processed"]
    assert summary["children"]["disclosed"] == summary["children"]["logged"] == len(logged)
    assert [p for p, _ in outcome["deliveries"]] == sorted(summary["programs"]["processed"])
    assert {s for _, s in outcome["deliveries"]} == {"logged"}, "one logged delivery a program"
    assert {p for p, _ in delivered} == set(summary["programs"]["processed"])
    assert outcome["staged"] == 0, "staged batches are removed after the run"
    audit = subprocess.run(
        [BIN / "datashare", "audit", "verify"], env=env, capture_output=True, text=True, check=False
    )
    assert audit.returncode == 0, audit.stdout[-2000:] + audit.stderr[-2000:]


def _a_worker_killed_mid_delivery_is_retried_to_completion_with_nothing_lost_or_doubled(
    deployment: dict[str, Any],
) -> dict[str, Any]:
    cluster: AirflowCluster = deployment["cluster"]
    api, engine, dag_id = cluster.api(), deployment["engine"], f"datashare_{CRASH}"
    workers = {name: cluster.processes[name] for name in WORKERS}
    started = time.monotonic()
    with engine.connect() as hold:
        hold.execute(text("LOCK TABLE disclosure_log IN SHARE MODE"))  # deliveries wait to log
        run_id = trigger(api, dag_id, DEMO_DATE)
        victim = _worker_waiting_on_a_lock(
            engine, workers, lambda: run_state(api, dag_id, run_id) not in ACTIVE
        )
        _kill_whole(workers[victim])
        running = [
            ti
            for ti in task_instances(api, dag_id, run_id)
            if ti["state"] == "running" and ti["hostname"] == victim
        ]
        interrupted = {(ti["task_id"], ti["map_index"]) for ti in running}
        # the messages the killed worker never acknowledged stay in Redis
        orphans = _unacknowledged({str(ti["id"]) for ti in running})
        killed_at = time.monotonic()
        hold.rollback()  # the survivor's deliveries go on
    state = wait_for_end(api, dag_id, run_id, timeout=RUN_TIMEOUT)
    print(
        f"crash run: {time.monotonic() - started:.1f} s, {victim} killed, the run ended "
        f"{time.monotonic() - killed_at:.1f} s later; {sorted(interrupted)} interrupted"
    )
    (survivor,) = set(WORKERS) - {victim}
    assert state == "success", (cluster.logs / "scheduler.log").read_text()[-3000:]
    assert any(task == "shard.deliver" for task, _ in interrupted), interrupted
    final = {(ti["task_id"], ti["map_index"]): ti for ti in task_instances(api, dag_id, run_id)}
    for key in interrupted:
        assert final[key]["try_number"] >= 2, f"{key} was tried again"
        assert final[key]["hostname"] == survivor, f"{key} finished on the surviving worker"
    outcome = _outcome(engine, deployment["root"])
    _assert_every_program_right(outcome, deployment["env"])
    return {
        "run_id": run_id,
        "victim": victim,
        "ti_ids": [str(ti["id"]) for ti in running],
        "orphans": orphans,
        "queued": [dt.datetime.fromisoformat(ti["queued_when"]).timestamp() for ti in running],
        "instances": final,
        "outcome": outcome,
    }


def _celery_result(metadata: Engine, task_id: str) -> tuple[str, str] | None:
    """(status, traceback) Celery's result backend holds for ``task_id``, if any."""
    with metadata.connect() as connection:
        row = connection.execute(
            text("SELECT status, traceback FROM celery_taskmeta WHERE task_id = :id"),
            {"id": task_id},
        ).first()
    return (str(row[0]), str(row[1] or "")) if row else None


def _a_late_redelivery_of_the_killed_workers_message_is_refused(
    deployment: dict[str, Any], crash: dict[str, Any]
) -> None:
    """The killed worker's message comes back after the run ended: its host is started again
    with a visibility timeout of 1 s, and at start its Celery consumer hands every message left
    unacknowledged that long to the workers again. The workload names the interrupted try's
    task instance, which its retry replaced (Airflow gives each try a new task-instance id), so
    the execution API refuses to start it (404; after the workload's token expired, 403):
    nothing runs, nothing is sent or logged again, and Airflow's view of the run does not
    change."""
    cluster: AirflowCluster = deployment["cluster"]
    api, engine, dag_id = cluster.api(), deployment["engine"], f"datashare_{CRASH}"
    orphans: dict[str, str] = crash["orphans"]
    assert orphans, "the killed worker's message is left unacknowledged in Redis"
    assert set(orphans.values()) == set(crash["ti_ids"]), "one message each interrupted task"
    start_worker(  # it runs no task, so it skips preloading the quality gates
        cluster,
        crash["victim"],
        AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT="1",
        DATASHARE_PRELOAD="0",
    )
    metadata = create_engine(deployment["metadata_url"])
    deadline = time.monotonic() + 600
    try:
        while True:
            results = {task_id: _celery_result(metadata, task_id) for task_id in orphans}
            left = _unacknowledged(set(orphans.values()))
            if not left and all(r and r[0] == "FAILURE" for r in results.values()):
                break
            assert time.monotonic() < deadline, f"not redelivered: {results}, {sorted(left)}"
            time.sleep(1)  # polling the result backend for the redelivered copy's outcome
    finally:
        metadata.dispose()
    logs = "".join((cluster.logs / f"{w}.log").read_text() for w in WORKERS)
    # Within its token's life the copy is refused by the task-instance check (its try was
    # replaced); later on a loaded machine, by the expired token.
    expired = time.time() > min(crash["queued"]) + TOKEN_LIFE - 10
    refusals = ("Task Instance not found", *(["Invalid auth token"] if expired else []))
    for task_id, result in results.items():
        assert result is not None
        # handed out again at least once; with a 1 s visibility timeout a copy still being
        # refused can be handed out once more on a loaded machine: each copy is refused, as
        # the unchanged task instances, deliveries and log below show
        assert logs.count(f"execute_workload[{task_id}] received") >= 2, "handed out again"
        assert any(r in result[1] for r in refusals), result[1][-2000:]
        why = next(r for r in refusals if r in result[1])
        print(f"late redelivery of {task_id}: refused ({why})")
    assert run_state(api, dag_id, crash["run_id"]) == "success"
    after = {
        (ti["task_id"], ti["map_index"]): ti for ti in task_instances(api, dag_id, crash["run_id"])
    }
    for key, ti in crash["instances"].items():
        same = ("id", "state", "try_number", "hostname", "end_date")
        assert [after[key][f] for f in same] == [ti[f] for f in same], key
    outcome = _outcome(engine, deployment["root"])
    assert outcome == crash["outcome"], "nothing sent, logged or changed again"
    _assert_every_program_right(outcome, deployment["env"])
