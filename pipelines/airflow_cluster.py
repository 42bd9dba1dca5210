"""A whole Airflow deployment of datashare on this machine, as the README's production recipe
brings one up: metadata on PostgreSQL, api-server, scheduler, dag-processor and Celery workers
(or the LocalExecutor), every process sharing the Fernet key and JWT secret that
``datashare airflow sync`` generates. The deployment test (``tests/deployment/``) and the
Airflow benchmark (``benchmarks/airflow_benchmark.py``) start theirs through it.

:class:`AirflowCluster` owns the processes: each runs in a session of its own (so a worker's
whole tree can be killed, as when its host dies) with its output appended to
``<root>/logs/<name>.log``; leaving the ``with`` block terminates them all. The helpers below
it talk to the api-server's REST API: a client once the api-server issues tokens, a DAG run
triggered once the dag-processor parsed the DAG, waiting for its end, its task instances.

Several workers on one machine tell apart in Airflow's task instances through
:func:`worker_hostname` (``[core] hostname_callable``), which reports
``DATASHARE_WORKER_NAME``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from pipelines.airflow_setup import read_secrets

BIN = Path(sys.executable).parent
PROJECT = Path(__file__).resolve().parent.parent
HOSTNAME_CALLABLE = "pipelines.airflow_cluster.worker_hostname"
ACTIVE = frozenset({"queued", "running"})


def worker_hostname() -> str:
    """``[core] hostname_callable``: the worker's name (``DATASHARE_WORKER_NAME``), else the
    machine's."""
    return os.environ.get("DATASHARE_WORKER_NAME") or socket.getfqdn()


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fresh_database(admin_url: str, name: str) -> None:
    """Drop ``name`` if it exists and create it empty (``admin_url``: a server's maintenance
    database)."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def drop_database(admin_url: str, name: str) -> None:
    """Drop ``name``, closing its connections."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def flush_redis(broker_url: str) -> None:
    """Empty the broker's Redis database: no message of an earlier run is delivered again."""
    import redis

    client = redis.Redis.from_url(broker_url)
    client.flushdb()
    client.close()


def cluster_environ(
    root: Path,
    *,
    metadata_url: str,
    database_url: str,
    config_dir: Path,
    state_dir: Path,
    executor: str = "CeleryExecutor",
    broker_url: str = "",
    **airflow: str,
) -> dict[str, str]:
    """Every process's environment: this machine's, less any ``DATASHARE_*`` or ``AIRFLOW*``
    setting, then the project's Airflow config with ``<root>/airflow`` as its home, metadata
    at ``metadata_url`` (``postgresql+psycopg2://...``), the execution API on a free port,
    Celery's broker and results (for the CeleryExecutor), the program database, config and
    state folder, and ``airflow``'s extra ``AIRFLOW__...`` settings."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATASHARE_", "AIRFLOW"))},
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(PROJECT),
        "DATASHARE_HOME": str(PROJECT),
        "DATASHARE_DATABASE_URL": database_url,
        "DATASHARE_CONFIG_DIR": str(config_dir),
        "DATASHARE_STATE_DIR": str(state_dir),
        "AIRFLOW_CONFIG": str(PROJECT / "airflow.cfg"),
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE,
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "GX_ANALYTICS_ENABLED": "False",
    }
    if executor == "CeleryExecutor":
        env["AIRFLOW__CELERY__BROKER_URL"] = broker_url
        env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + metadata_url.replace(
            "postgresql+psycopg2://", "postgresql://"
        )
    return env | airflow


class AirflowCluster:
    """The processes of one deployment under ``root`` (logs in ``root/logs``)."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen] = {}  # type: ignore[type-arg]

    @property
    def port(self) -> int:
        """The api-server's port (which also serves the execution API)."""
        return int(self.env["AIRFLOW__API__PORT"])

    def prepare(self) -> None:
        """Migrate Airflow's metadata, generate the shared secrets and every destination's pool
        (``datashare airflow sync``), and give every process the secrets."""
        subprocess.run(
            [BIN / "airflow", "db", "migrate"], env=self.env, check=True, capture_output=True
        )
        subprocess.run(
            [BIN / "datashare", "airflow", "sync"], env=self.env, check=True, capture_output=True
        )
        self.env |= read_secrets(Path(self.env["AIRFLOW_HOME"]))

    def start(self, name: str, *args: str, **extra: str) -> subprocess.Popen:  # type: ignore[type-arg]
        """``airflow ARGS`` as the process ``name``, in a session of its own."""
        with (self.logs / f"{name}.log").open("a") as out:
            process = subprocess.Popen(
                [BIN / "airflow", *args],
                env=self.env | extra,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def start_core(self) -> None:
        """The api-server, scheduler and dag-processor."""
        self.start("api", "api-server", "--port", str(self.port))
        self.start("scheduler", "scheduler")
        self.start("dag-processor", "dag-processor")

    def start_worker(self, name: str, *, concurrency: int, **extra: str) -> subprocess.Popen:  # type: ignore[type-arg]
        """A Celery worker named ``name`` (its log server on a port of its own)."""
        return self.start(
            name,
            "celery",
            "worker",
            "--celery-hostname",
            f"{name}@%h",
            "--concurrency",
            str(concurrency),
            **{
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "DATASHARE_WORKER_NAME": name,
                **extra,
            },
        )

    def api(self, *, timeout: float = 300) -> httpx.Client:
        """A REST API client, once the api-server issues tokens."""
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                token = httpx.get(f"{base}/auth/token", timeout=10).json()["access_token"]
                break
            except (httpx.HTTPError, KeyError, ValueError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)  # polling a server that is starting
        return httpx.Client(
            base_url=f"{base}/api/v2", headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def stop(self, *, grace: float = 60) -> None:
        """Terminate every process still running; kill the whole session (its children too)
        of any that has not ended within ``grace`` seconds."""
        running = [p for p in self.processes.values() if p.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + grace
        for process in running:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # its own session: pgid == pid
                process.wait()

    def __enter__(self) -> AirflowCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for_dag(api: httpx.Client, dag_id: str, *, timeout: float = 600) -> None:
    """Return once the dag-processor parsed ``dag_id``."""
    deadline = time.monotonic() + timeout
    while api.get(f"/dags/{dag_id}").status_code != 200:
        assert time.monotonic() < deadline, f"{dag_id} never appeared"
        time.sleep(1)  # the dag-processor has not parsed it yet


def trigger(api: httpx.Client, dag_id: str, logical_date: dt.date) -> str:
    """Unpause ``dag_id`` once the dag-processor parsed it and start a run of
    ``logical_date``; its run id."""
    wait_for_dag(api, dag_id)
    api.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
    logical = dt.datetime.combine(logical_date, dt.time(), dt.UTC).isoformat()
    created = api.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": logical, "conf": {}})
    created.raise_for_status()
    return str(created.json()["dag_run_id"])


def run_state(api: httpx.Client, dag_id: str, run_id: str) -> str:
    """The DAG run's state."""
    return str(api.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"])


def wait_for_end(api: httpx.Client, dag_id: str, run_id: str, *, timeout: float) -> str:
    """The DAG run's final state (an assertion error after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while (state := run_state(api, dag_id, run_id)) in ACTIVE:
        assert time.monotonic() < deadline, f"the run did not finish in {timeout:.0f} s"
        time.sleep(1)  # waiting for the run through the REST API, not synchronising with it
    return state


def task_instances(api: httpx.Client, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every task instance of the run, as the REST API shows it."""
    answer = api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
    answer.raise_for_status()
    return list(answer.json()["task_instances"])
