"""The README's deployment recipe for real: Airflow metadata on PostgreSQL, the CeleryExecutor
with Redis, api-server, scheduler, dag-processor and two Celery workers with separate, private
state folders and names. A demo submission triggered through Airflow's REST API completes
green, its tasks ran on both workers, and the delivered files equal the disclosure log."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sqlalchemy import create_engine, select, text

from pipelines.db import make_engine
from pipelines.demo import DEMO_DATE, seed
from pipelines.staging import create_key_file
from privacy.keys import ensure_demo_key
from schemas import DisclosureEntry, StagedChunk
from schemas.migrate import upgrade
from tests.conftest import PROJECT

pytestmark = [pytest.mark.deployment, pytest.mark.postgres]
BIN = Path(sys.executable).parent
ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
# Two by default; DATASHARE_DEPLOYMENT_WORKERS=1 measures the same run on one worker.
WORKERS = [f"w{i + 1}" for i in range(int(os.environ.get("DATASHARE_DEPLOYMENT_WORKERS", "2")))]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _needs() -> str | None:
    try:
        import airflow.providers.celery.executors.celery_executor_utils  # noqa: F401
        import psycopg2  # noqa: F401
    except Exception:
        return "the production extra is not installed"
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
    except OSError:
        return "no Redis on 127.0.0.1:6379"
    return None


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:  # type: ignore[type-arg]
    if reason := _needs():
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("deployment")
    tag = uuid.uuid4().hex[:8]
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in (f"dep_af_{tag}", f"dep_ds_{tag}"):
            connection.execute(text(f"CREATE DATABASE {name}"))
    processes: list[subprocess.Popen] = []  # type: ignore[type-arg]
    engine = None
    try:
        shutil.copytree(PROJECT / "config" / "agreements", root / "config" / "agreements")
        (root / "config" / "destinations").mkdir()
        demo = (PROJECT / "config" / "destinations" / "demo.yaml").read_text()
        (root / "config" / "destinations" / "demo.yaml").write_text(demo + "\nenabled: false\n")
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
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{int(tag, 16) % 14 + 1}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://postgres@127.0.0.1/dep_af_{tag}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.deployment.worker_name.hostname",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
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

        def start(name: str, *args: str, **extra: str) -> None:
            out = (logs / f"{name}.log").open("w")
            processes.append(
                subprocess.Popen(
                    [BIN / "airflow", *args], env=env | extra, stdout=out, stderr=subprocess.STDOUT
                )
            )

        start("api", "api-server", "--port", str(port))
        start("scheduler", "scheduler")
        start("dag-processor", "dag-processor")
        for worker in WORKERS:
            log_port = _free_port()
            start(
                worker,
                "celery",
                "worker",
                "--celery-hostname",
                f"{worker}@%h",
                "--concurrency",
                "2",
                AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(log_port),
                DATASHARE_STATE_DIR=str(root / worker),
                DATASHARE_WORKER_NAME=worker,
            )
        yield {"root": root, "port": port, "engine": engine, "logs": logs}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        if engine is not None:
            engine.dispose()
        with admin.connect() as connection:
            for name in (f"dep_af_{tag}", f"dep_ds_{tag}"):
                connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


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


def test_a_submission_through_the_rest_api_runs_green_on_both_workers(deployment: dict) -> None:  # type: ignore[type-arg]
    api = _api(deployment["port"])
    deadline = time.monotonic() + 300
    while api.get("/dags/datashare_demo").status_code != 200:  # the dag-processor parsed it
        assert time.monotonic() < deadline, "the DAG never appeared"
        time.sleep(2)
    api.patch("/dags/datashare_demo", json={"is_paused": False}).raise_for_status()
    started = time.monotonic()
    logical = dt.datetime.combine(DEMO_DATE, dt.time(), dt.UTC).isoformat()
    created = api.post("/dags/datashare_demo/dagRuns", json={"logical_date": logical, "conf": {}})
    created.raise_for_status()
    run_id = created.json()["dag_run_id"]
    while (state := api.get(f"/dags/datashare_demo/dagRuns/{run_id}").json()["state"]) in {
        "queued",
        "running",
    }:
        assert time.monotonic() - started < 1200, "the run did not finish in 20 minutes"
        time.sleep(3)
    seconds = time.monotonic() - started
    instances = api.get(f"/dags/datashare_demo/dagRuns/{run_id}/taskInstances").json()
    hosts = {ti["hostname"] for ti in instances["task_instances"]}
    print(f"deployment run: {seconds:.1f} s on {sorted(hosts)}")
    assert state == "success", (deployment["logs"] / "w1.log").read_text()[-3000:]
    assert hosts == set(WORKERS), "tasks ran on every worker"
    root = deployment["root"]
    files = sorted((root / "out" / "demo" / DEMO_DATE.isoformat()).rglob("hs_child_identity.csv"))
    delivered = pd.concat(pd.read_csv(f, dtype=str) for f in files)
    with deployment["engine"].connect() as connection:
        logged = connection.execute(
            select(DisclosureEntry.program_code, DisclosureEntry.child_local_id)
        ).all()
        staged = connection.scalar(select(text("count(*)")).select_from(StagedChunk))
    assert sorted(map(tuple, logged)) == sorted(
        zip(delivered["ProgramID"], delivered["LocalChildID"], strict=True)
    )
    assert staged == 0, "staged batches are removed after the run"
