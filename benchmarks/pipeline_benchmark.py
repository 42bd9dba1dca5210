"""End-to-end pipeline benchmark: N children in 300 programs, extracted from PostgreSQL,
delivered into a PostgreSQL staging database and a local folder.

Run: ``.venv/bin/python benchmarks/pipeline_benchmark.py [N ...]`` (default 100000). Each size
runs in a fresh process, and its seeding in another, so peak memory is the pipeline's own.
Programs are prepared in shards of about 25,000 children (one extract, input gate and output
gate per chunk), as a large deployment would map its tasks; delivery and recording are per
program. Airflow start-up is not included: the steps are called directly, as the DAG's tasks
call them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, func, insert, select, text, update

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

PG = os.environ.get("DATASHARE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
PROGRAMS = 300
SOURCE = "datashare_bench_source"
SHARD = 25_000


def _database(name: str) -> str:
    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{PG}/{name}"


def _seed(children: int) -> None:
    """Seed the demo world, then spread its children over 300 Vermont programs (run in its
    own process, so the pipeline's peak memory is its own)."""
    from pipelines.db import make_engine
    from pipelines.demo import seed
    from schemas import Child, ParticipationEvent, Program, Recipient
    from schemas.migrate import upgrade

    engine = make_engine(_database(SOURCE))
    upgrade(engine)
    seed(engine, children=children, seed=1)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as connection:
        recipient = connection.scalar(select(Recipient.id).where(Recipient.code == "VT-AOE"))
        first = connection.scalar(select(func.max(Program.id))) + 1
        ids = list(range(first, first + PROGRAMS))
        connection.execute(insert(Program), [
            {"id": i, "code": f"VT-B{i - first:03d}", "grant_number": f"01CH{i:06d}",
             "name": f"Bench program {i - first}", "state": "VT", "program_type": "head_start",
             "is_aian": False} for i in ids])  # fmt: skip
        connection.execute(insert(ParticipationEvent), [
            {"program_id": i, "recipient_id": recipient, "action": "participate",
             "effective_date": dt.date(2025, 7, 1), "decided_by": "benchmark",
             "excluded_fields": [], "recorded_at": now} for i in ids])  # fmt: skip
        spread = {
            "program_id": first + func.mod(Child.id, PROGRAMS),
            "local_id": func.concat("B", Child.id),
        }
        connection.execute(update(Child).values(**spread))
        connection.exec_driver_sql("ANALYZE")
    engine.dispose()


def _world(root: Path):  # type: ignore[no-untyped-def]
    """Config, a fresh staging database and demo keys around the seeded source."""
    from pipelines.db import make_engine
    from pipelines.settings import Settings
    from pipelines.staging import create_key_file
    from privacy.keys import ensure_demo_key

    url = f"{PG}/{SOURCE}"
    engine = make_engine(url)
    config = root / "config"
    shutil.copytree(PROJECT / "config" / "agreements", config / "agreements")
    (config / "destinations").mkdir()
    staging = _database("datashare_bench_staging")
    os.environ["DATASHARE_BENCH_STAGING_URL"] = staging
    common = (
        "recipient: VT-AOE\nagreements: [vt-aoe-ecids]\n"
        "formats: [hs_child_identity, hs_enrollment]\n"
    )
    (config / "destinations" / "bench-local.yaml").write_text(
        f"type: local\n{common}local:\n  root: {root / 'drop'}\n"
    )
    (config / "destinations" / "bench-staging.yaml").write_text(
        f"type: staging_db\n{common}staging_db:\n  url_env: DATASHARE_BENCH_STAGING_URL\n"
    )
    settings = Settings(database_url=url, config_dir=config, state_dir=root / "state")
    ensure_demo_key(settings.keys_file, "VT-AOE")
    create_key_file(settings.staging_key_file)
    return settings, engine, [f"VT-B{i:03d}" for i in range(PROGRAMS)]


def _shards(engine, programs: list[str]) -> list[list[str]]:  # type: ignore[no-untyped-def]
    from schemas import Child, Program

    with engine.connect() as connection:
        sizes = dict(connection.execute(
            select(Program.code, func.count(Child.id)).join(Child).group_by(Program.code)
        ).all())  # fmt: skip
    shards: list[list[str]] = [[]]
    total = 0
    for code in programs:
        if total + sizes.get(code, 0) > SHARD and shards[-1]:
            shards.append([])
            total = 0
        shards[-1].append(code)
        total += sizes.get(code, 0)
    return shards


def measure(children: int) -> dict[str, object]:
    """One size, in this process."""
    from pipelines.submission.deliver import deliver_program
    from pipelines.submission.finish import finish_run
    from pipelines.submission.plan import plan_run
    from pipelines.submission.prepare import prepare_programs

    root = Path(tempfile.mkdtemp(prefix="datashare-bench-"))
    subprocess.run([sys.executable, __file__, "--seed", str(children)], check=True)
    settings, engine, programs = _world(root)
    steps: dict[str, float] = defaultdict(float)
    disclosed = 0
    wall = time.perf_counter()
    for destination in ("bench-staging", "bench-local"):
        started = time.perf_counter()
        plan = plan_run(destination, dt.date(2026, 11, 27), settings=settings)
        steps["plan"] += time.perf_counter() - started
        delivered = []
        for shard in _shards(engine, plan["programs"]):
            for prepared in (batch := prepare_programs(plan, shard, settings)):
                delivered.append(deliver_program(plan, prepared, settings))
            for step, seconds in batch[0]["counts"]["seconds"].items():
                steps[f"{destination}: {step}"] += seconds
        for outcome in delivered:
            for step, seconds in outcome.get("seconds", {}).items():
                steps[f"{destination}: {step}"] += seconds
        started = time.perf_counter()
        summary = finish_run(plan, delivered, settings)
        steps["finish"] += time.perf_counter() - started
        disclosed += summary["children"]["logged"]
    total = time.perf_counter() - wall
    shutil.rmtree(root, ignore_errors=True)
    return {
        "children": children,
        "programs": len(programs),
        "logged": disclosed,
        "seconds": round(total, 1),
        "steps": {k: round(v, 2) for k, v in steps.items()},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def main() -> None:
    """Run each size in its own process and print the tables."""
    if len(sys.argv) > 2 and sys.argv[1] == "--seed":
        _seed(int(sys.argv[2]))
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        print(json.dumps(measure(int(sys.argv[2]))))
        return
    sizes = [int(a) for a in sys.argv[1:]] or [100_000]
    console = Console()
    results = []
    for size in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(size)],
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    table = Table(title="Pipeline end to end (pipeline time, Airflow start-up excluded)")
    for column in (
        "children",
        "programs",
        "disclosures logged",
        "seconds",
        "children/s",
        "peak RSS MB",
    ):
        table.add_column(column, justify="right")
    for r in results:
        rate = r["children"] * 2 / r["seconds"]  # two destinations
        cells = (r["children"], r["programs"], r["logged"], r["seconds"], rate, r["peak_rss_mb"])
        table.add_row(*(f"{c:,.0f}" if isinstance(c, (int, float)) else str(c) for c in cells))
    console.print(table)
    steps = Table(title="Seconds per step (both destinations: staging database, local folder)")
    steps.add_column("step")
    for r in results:
        steps.add_column(f"{r['children']:,}", justify="right")
    for step in results[0]["steps"]:
        steps.add_row(step, *(str(r["steps"].get(step, "")) for r in results))
    console.print(steps)


if __name__ == "__main__":
    main()
