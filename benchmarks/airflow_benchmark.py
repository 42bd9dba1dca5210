"""One destination's nightly DAG through real Airflow: N children in P programs on PostgreSQL,
Airflow's metadata in its own PostgreSQL database, api-server, scheduler and dag-processor
started here, the run triggered through the REST API and waited for.

Run: ``.venv/bin/python benchmarks/airflow_benchmark.py [--children N] [--programs P]
[--executor local|celery] [--shard-children C]`` (defaults: 100000, 300, local, 25000).
``local`` is the LocalExecutor with parallelism 2 (this machine has 2 cores); ``celery`` is the
CeleryExecutor with two workers of concurrency 1 on Redis database 6. The destination is a
local folder (``resend: full``, two record files per program), pool size 2.

Printed: wall time from trigger to the run's end, each task's time (from the task instances'
start and end), the peak memory of Airflow's process tree (sum of resident memory, sampled
every 0.2 s) and of its largest process, the same work's floor in the same run (PostgreSQL's
``COPY ... TO STDOUT`` of the children with their enrollment, guardian and consent rows, and
writing them as CSV files), the ratio, and ``uptime``'s load before and after. Not a test.
Databases are named ``shards_bench_*`` (dropped and made anew each time).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(PROJECT / "benchmarks"))

import pipeline_benchmark as seeding  # noqa: E402
import psutil  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from pipelines.airflow_cluster import (  # noqa: E402
    AirflowCluster,
    cluster_environ,
    flush_redis,
    fresh_database,
    task_instances,
    trigger,
    wait_for_dag,
    wait_for_end,
)

PG = seeding.PG
BROKER = "redis://127.0.0.1:6379/6"
SOURCE = "shards_bench_source"
META = "shards_bench_airflow"
DAG = "datashare_bench"
RUN_DATE = dt.date(2026, 11, 27)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _seed(children: int, programs: int) -> None:
    """The pipeline benchmark's world (demo seed, children spread over ``programs`` Vermont
    programs), in a database of our own; in a child process, as there."""
    seeding.PROGRAMS = programs
    seeding._seed(children, SOURCE)


class Sampler(threading.Thread):
    """Peak resident memory of a process tree: the sum, and the largest process."""

    def __init__(self, roots: list[psutil.Process]) -> None:
        super().__init__(daemon=True)
        self.roots, self.peak_sum, self.peak_one = roots, 0, 0
        self.running = True

    def run(self) -> None:
        while self.running:
            total = 0
            for root in self.roots:
                try:
                    family = [root, *root.children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
                for process in family:
                    try:
                        rss = process.memory_info().rss
                    except psutil.Error:
                        continue
                    total += rss
                    self.peak_one = max(self.peak_one, rss)
            self.peak_sum = max(self.peak_sum, total)
            time.sleep(0.2)


def floor(url: str, folder: Path) -> tuple[float, int]:
    """The same children with their related rows out of PostgreSQL as CSV files: seconds and
    bytes written."""
    import psycopg

    queries = {
        "children.csv": "SELECT p.code, c.* FROM children c JOIN programs p ON p.id = c.program_id",
        "enrollments.csv": "SELECT * FROM enrollments",
        "guardians.csv": "SELECT * FROM guardians",
        "consents.csv": "SELECT * FROM consents",
    }
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    started = time.perf_counter()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        for name, query in queries.items():
            statement = f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER)"
            with (
                (folder / name).open("wb") as out,
                connection.cursor() as cursor,
                cursor.copy(statement) as copy,
            ):
                for block in copy:
                    written += out.write(block)
    return time.perf_counter() - started, written


def _world(root: Path, args: argparse.Namespace) -> dict[str, str]:
    """Config (one local-folder destination), keys, and every process's environment."""
    from pipelines.settings import Settings
    from pipelines.staging import create_key_file
    from privacy.keys import ensure_demo_key

    config = root / "config"
    shutil.copytree(PROJECT / "config" / "agreements", config / "agreements")
    (config / "destinations").mkdir()
    (config / "destinations" / "bench.yaml").write_text(
        "type: local\nrecipient: VT-AOE\nagreements: [vt-aoe-ecids]\n"
        "formats: [hs_child_identity, hs_enrollment]\nresend: full\npool_size: 2\n"
        "schedule: '0 2 * * *'\nenabled: false\n"
        f"tasks: {{shard_children: {args.shard_children}}}\n"
        f"local:\n  root: {root / 'drop'}\n"
    )
    url = f"{PG}/{SOURCE}"
    state = root / "state"
    settings = Settings(database_url=url, config_dir=config, state_dir=state)
    ensure_demo_key(settings.keys_file, "VT-AOE")
    create_key_file(settings.staging_key_file)
    host = PG.split("@", 1)[1]
    return cluster_environ(
        root,
        metadata_url=f"postgresql+psycopg2://postgres@{host}/{META}",
        database_url=url,
        config_dir=config,
        state_dir=state,
        executor="CeleryExecutor" if args.executor == "celery" else "LocalExecutor",
        broker_url=BROKER,
        AIRFLOW__CORE__PARALLELISM="2",
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
    )


def _stamp(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def run(args: argparse.Namespace) -> None:
    """Seed, start Airflow, trigger, wait, measure the floor, print."""
    load_before = _uptime()
    fresh_database(f"{PG}/postgres", SOURCE)
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--seed", str(args.children), str(args.programs)],
                   check=True)  # fmt: skip
    seeded = time.perf_counter() - started
    root = Path(tempfile.mkdtemp(prefix="shards-airflow-bench-"))
    fresh_database(f"{PG}/postgres", META)
    env = _world(root, args)
    if args.executor == "celery":
        flush_redis(BROKER)
    with AirflowCluster(root, env) as cluster:
        cluster.prepare()
        cluster.start_core()
        if args.executor == "celery":
            for worker in ("w1", "w2"):
                cluster.start_worker(worker, concurrency=1)
        sampler = Sampler([psutil.Process(p.pid) for p in cluster.processes.values()])
        sampler.start()
        api = cluster.api()
        wait_for_dag(api, DAG)
        triggered = time.perf_counter()
        run_id = trigger(api, DAG, RUN_DATE)
        state = wait_for_end(api, DAG, run_id, timeout=6 * 3600)
        wall = time.perf_counter() - triggered
        sampler.running = False
        instances = task_instances(api, DAG, run_id)
        run_row = api.get(f"/dags/{DAG}/dagRuns/{run_id}").json()
    logs = cluster.logs
    floor_seconds, floor_bytes = floor(f"{PG}/{SOURCE}", root / "floor")
    arrived = sum(
        sum(1 for _ in path.open()) - 1 for path in (root / "drop").rglob("hs_child_identity.csv")
    )
    engine = create_engine(f"{PG}/{SOURCE}")
    with engine.connect() as connection:
        logged = connection.execute(text("SELECT count(*) FROM disclosure_log")).scalar_one()
    engine.dispose()
    print(f"disclosure log entries: {logged:,}; identity rows delivered: {arrived:,}")
    load_after = _uptime()
    _report(args, state, wall, instances, run_row, sampler, floor_seconds, floor_bytes, seeded)
    print(f"load before: {load_before}")
    print(f"load after:  {load_after}")
    print(f"logs: {logs}")
    for folder in ("drop", "floor", "state"):  # the delivered and floor files: keep the logs
        shutil.rmtree(root / folder, ignore_errors=True)


def _report(  # type: ignore[no-untyped-def]
    args, state, wall, instances, run_row, sampler, floor_seconds, floor_bytes, seeded
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    per: dict[str, list[float]] = defaultdict(list)
    starts = [s for t in instances if (s := _stamp(t["start_date"]))]
    ends = [e for t in instances if (e := _stamp(t["end_date"]))]
    first, last = min(starts, default=None), max(ends, default=None)
    for ti in instances:
        begin, end = _stamp(ti["start_date"]), _stamp(ti["end_date"])
        if begin and end:
            per[ti["task_id"]].append((end - begin).total_seconds())
    table = Table(title=f"Tasks ({args.executor}, {len(instances)} task instances)")
    for column in ("task", "instances", "sum s", "max s", "states"):
        table.add_column(column, justify="right")
    for task_id, seconds in per.items():
        states = sorted({t["state"] for t in instances if t["task_id"] == task_id})
        table.add_row(task_id, str(len(seconds)), f"{sum(seconds):.1f}", f"{max(seconds):.1f}",
                      ",".join(states))  # fmt: skip
    console.print(table)
    for ti in instances:
        if ti["task_id"].startswith("shard."):
            begin, end = _stamp(ti["start_date"]), _stamp(ti["end_date"])
            took = (end - begin).total_seconds() if begin and end else float("nan")
            console.print(f"  {ti['task_id']} [{ti.get('rendered_map_index')}]: {took:.1f} s")
    busy = (last - first).total_seconds() if first and last else float("nan")
    summary = Table(title="Airflow benchmark")
    for column in ("children", "programs", "executor", "state", "wall s", "first task start "
                   "to last task end s", "floor s", "ratio", "peak RSS tree MB",
                   "peak RSS one process MB"):  # fmt: skip
        summary.add_column(column, justify="right")
    summary.add_row(
        f"{args.children:,}", str(args.programs), args.executor, state, f"{wall:.1f}",
        f"{busy:.1f}", f"{floor_seconds:.1f}", f"{wall / floor_seconds:.0f}x",
        f"{sampler.peak_sum / 2**20:,.0f}", f"{sampler.peak_one / 2**20:,.0f}",
    )  # fmt: skip
    console.print(summary)
    console.print(f"floor: {floor_bytes / 2**20:.1f} MB of CSV; seeding took {seeded:.0f} s")
    hosts = sorted({str(ti.get("hostname")) for ti in instances})
    console.print(f"tasks ran on: {', '.join(hosts)}")


def main() -> None:
    """Parse the options and run (or seed, in the child process)."""
    if len(sys.argv) > 3 and sys.argv[1] == "--seed":
        _seed(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=100_000)
    parser.add_argument("--programs", type=int, default=300)
    parser.add_argument("--executor", choices=["local", "celery"], default="local")
    parser.add_argument("--shard-children", type=int, default=25_000)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
