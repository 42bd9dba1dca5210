"""The README's deployment recipe for real: Airflow metadata on PostgreSQL, the CeleryExecutor
with Redis, api-server, scheduler, dag-processor and two Celery workers with separate, private
state folders and names.

- A demo submission triggered through Airflow's REST API completes green, its tasks ran on both
  workers, and the delivered files equal the disclosure log.
- A worker killed with SIGKILL in the middle of a delivery (its whole process tree, as when a
  host dies): Airflow notices the silent task (a lowered heartbeat timeout), retries it on the
  surviving worker, the run ends green, and the delivered files still equal the disclosure log
  with no child missing and none twice; the ledgers verify.

"Mid-delivery" is an event, not a moment guessed with a sleep: the test holds a SHARE lock on
the disclosure log, so every delivery sends its files and then waits to log them; the worker
killed is the one whose database connection is seen waiting on that lock."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psutil
import pytest
from sqlalchemy import Engine, create_engine, func, select, text

from pipelines.db import make_engine
from pipelines.demo import DEMO_DATE, seed
from pipelines.staging import create_key_file
from privacy.keys import ensure_demo_key
from schemas import Delivery, DisclosureEntry, Run, StagedChunk
from schemas.migrate import upgrade
from tests.conftest import PROJECT

pytestmark = [pytest.mark.deployment, pytest.mark.postgres]
BIN = Path(sys.executable).parent
ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS_DB = 1  # this test's own Redis database
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
ACTIVE = {"queued", "running"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


def _flush_redis() -> None:
    """Empty this test's Redis database: no message of an earlier run is delivered again."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if reason := _needs():
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("deployment")
    tag = uuid.uuid4().hex[:8]
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in (f"dep_af_{tag}", f"dep_ds_{tag}"):
            connection.execute(text(f"CREATE DATABASE {name}"))
    _flush_redis()
    processes: list[subprocess.Popen] = []  # type: ignore[type-arg]
    workers: dict[str, subprocess.Popen] = {}  # type: ignore[type-arg]
    engine = None
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
        upgrade(engine)
        seed(engine, children=300, seed=11)
        port = _free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DATASHARE_", "AIRFLOW"))},
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(PROJECT),
            "DATASHARE_HOME": str(PROJECT),
            "AIRFLOW_CONFIG": str(PROJECT / "airflow.cfg"),
            "AIRFLOW_HOME": str(root / "airflow"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@127.0.0.1/dep_af_{tag}",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://postgres@127.0.0.1/dep_af_{tag}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.deployment.worker_name.hostname",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            # a killed worker's tasks are found silent within seconds (not 5 minutes)
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
            "DATASHARE_DATABASE_URL": url,
            "DATASHARE_CONFIG_DIR": str(root / "config"),
            "DATASHARE_STATE_DIR": str(root / "state"),
            "GX_ANALYTICS_ENABLED": "False",
        }
        (root / "state").mkdir(mode=0o700)
        for recipient in ("VT-AOE", "MO-DESE"):
            ensure_demo_key(root / "state" / "keys.json", recipient)
        create_key_file(root / "state" / "staging.key")
        for worker in WORKERS:  # each worker's private folder holds the same keys only
            (root / worker).mkdir(mode=0o700)
            for name in ("keys.json", "staging.key"):
                shutil.copy(root / "state" / name, root / worker / name)
        subprocess.run([BIN / "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
        subprocess.run(
            [BIN / "datashare", "airflow", "sync"], env=env, check=True, capture_output=True
        )
        secrets = dict(
            line.split("=", 1)
            for line in (root / "airflow" / "datashare-secrets.env").read_text().splitlines()
        )
        env |= secrets
        logs = root / "logs"
        logs.mkdir()

        def start(name: str, *args: str, **extra: str) -> subprocess.Popen:  # type: ignore[type-arg]
            out = (logs / f"{name}.log").open("a")
            process = subprocess.Popen(
                [BIN / "airflow", *args],
                env=env | extra,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a worker can be killed whole
            )
            processes.append(process)
            return process

        def start_worker(worker: str) -> None:
            workers[worker] = start(
                worker,
                "celery",
                "worker",
                "--celery-hostname",
                f"{worker}@%h",
                "--concurrency",
                "2",
                AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(_free_port()),
                DATASHARE_STATE_DIR=str(root / worker),
                DATASHARE_WORKER_NAME=worker,
            )

        start("api", "api-server", "--port", str(port))
        start("scheduler", "scheduler")
        start("dag-processor", "dag-processor")
        for worker in WORKERS:
            start_worker(worker)
        yield {
            "root": root,
            "port": port,
            "engine": engine,
            "logs": logs,
            "env": env,
            "workers": workers,
        }
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if engine is not None:
            engine.dispose()
        with admin.connect() as connection:
            for name in (f"dep_af_{tag}", f"dep_ds_{tag}"):
                connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
        _flush_redis()


def _api(port: int) -> httpx.Client:
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            token = httpx.get(f"{base}/auth/token", timeout=10).json()["access_token"]
            break
        except (httpx.HTTPError, KeyError, ValueError):
            if time.monotonic() > deadline:
                raise
            time.sleep(2)  # polling a server that is starting, not synchronising tasks
    return httpx.Client(
        base_url=f"{base}/api/v2", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _trigger(api: httpx.Client, dag_id: str) -> str:
    """Unpause ``dag_id`` once the dag-processor parsed it and start a run of the demo date."""
    deadline = time.monotonic() + 300
    while api.get(f"/dags/{dag_id}").status_code != 200:  # the dag-processor parsed it
        assert time.monotonic() < deadline, f"{dag_id} never appeared"
        time.sleep(2)
    api.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
    logical = dt.datetime.combine(DEMO_DATE, dt.time(), dt.UTC).isoformat()
    created = api.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": logical, "conf": {}})
    created.raise_for_status()
    return str(created.json()["dag_run_id"])


def _state(api: httpx.Client, dag_id: str, run_id: str) -> str:
    return str(api.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"])


def _wait_for_end(api: httpx.Client, dag_id: str, run_id: str, started: float) -> str:
    while (state := _state(api, dag_id, run_id)) in ACTIVE:
        assert time.monotonic() - started < 1200, "the run did not finish in 20 minutes"
        time.sleep(3)  # polling the run's state through the REST API
    return state


def _instances(api: httpx.Client, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    answer = api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
    return list(answer.json()["task_instances"])


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
    """One test, two runs in order: under pytest-xdist two tests of this module could each
    start a whole deployment at once, on the same Redis database."""
    _a_submission_through_the_rest_api_runs_green_on_both_workers(deployment)
    if len(WORKERS) < 2:
        print("one worker: no worker can be lost while another survives")
        return
    _a_worker_killed_mid_delivery_is_retried_to_completion_with_nothing_lost_or_doubled(deployment)


def _a_submission_through_the_rest_api_runs_green_on_both_workers(
    deployment: dict[str, Any],
) -> None:
    api = _api(deployment["port"])
    run_id = _trigger(api, "datashare_demo")
    started = time.monotonic()
    state = _wait_for_end(api, "datashare_demo", run_id, started)
    seconds = time.monotonic() - started
    hosts = {ti["hostname"] for ti in _instances(api, "datashare_demo", run_id)}
    print(f"deployment run: {seconds:.1f} s on {sorted(hosts)}")
    assert state == "success", (deployment["logs"] / "w1.log").read_text()[-3000:]
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


def _a_worker_killed_mid_delivery_is_retried_to_completion_with_nothing_lost_or_doubled(
    deployment: dict[str, Any],
) -> None:
    api, engine, dag_id = _api(deployment["port"]), deployment["engine"], f"datashare_{CRASH}"
    workers: dict[str, subprocess.Popen] = deployment["workers"]  # type: ignore[type-arg]
    started = time.monotonic()
    with engine.connect() as hold:
        hold.execute(text("LOCK TABLE disclosure_log IN SHARE MODE"))  # deliveries wait to log
        run_id = _trigger(api, dag_id)
        victim = _worker_waiting_on_a_lock(
            engine, workers, lambda: _state(api, dag_id, run_id) not in ACTIVE
        )
        _kill_whole(workers[victim])
        interrupted = {
            (ti["task_id"], ti["map_index"])
            for ti in _instances(api, dag_id, run_id)
            if ti["state"] == "running" and ti["hostname"] == victim
        }
        killed_at = time.monotonic()
        hold.rollback()  # the survivor's deliveries go on
    state = _wait_for_end(api, dag_id, run_id, started)
    print(
        f"crash run: {time.monotonic() - started:.1f} s, {victim} killed, the run ended "
        f"{time.monotonic() - killed_at:.1f} s later; {sorted(interrupted)} interrupted"
    )
    (survivor,) = set(WORKERS) - {victim}
    assert state == "success", (deployment["logs"] / "scheduler.log").read_text()[-3000:]
    assert any(task == "shard.deliver" for task, _ in interrupted), interrupted
    final = {(ti["task_id"], ti["map_index"]): ti for ti in _instances(api, dag_id, run_id)}
    for key in interrupted:
        assert final[key]["try_number"] >= 2, f"{key} was tried again"
        assert final[key]["hostname"] == survivor, f"{key} finished on the surviving worker"
    delivered, logged = _delivered_and_logged(deployment["root"], engine, CRASH)
    assert len(set(delivered)) == len(delivered), "no child delivered twice"
    assert len(set(logged)) == len(logged), "no child logged twice"
    assert logged == delivered, "the disclosure log is exactly what arrived"
    with engine.connect() as connection:
        (summary,) = connection.scalars(select(Run.summary).where(Run.destination == CRASH))
        deliveries = connection.execute(
            select(Delivery.program_code, Delivery.status).where(Delivery.destination == CRASH)
        ).all()
        staged = connection.scalar(select(func.count()).select_from(StagedChunk))
    assert summary["programs"]["stopped"] == [] and summary["programs"]["processed"]
    assert summary["children"]["disclosed"] == summary["children"]["logged"] == len(logged)
    assert sorted(p for p, _ in deliveries) == summary["programs"]["processed"]
    assert {s for _, s in deliveries} == {"logged"}, "one logged delivery per program"
    assert {p for p, _ in delivered} == set(summary["programs"]["processed"])
    assert staged == 0, "staged batches are removed after the run"
    audit = subprocess.run(
        [BIN / "datashare", "audit", "verify"],
        env=deployment["env"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert audit.returncode == 0, audit.stdout[-2000:] + audit.stderr[-2000:]
