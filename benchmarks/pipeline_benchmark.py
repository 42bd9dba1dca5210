"""End-to-end pipeline benchmark: N children in 300 programs, extracted from PostgreSQL,
delivered into a PostgreSQL staging database and/or a local folder, steps called directly.

Run: ``.venv/bin/python benchmarks/pipeline_benchmark.py [N ...] [--destination bench-local]``
(default 100000, both destinations). Each size runs in a fresh process; the seeded world of
each size is kept as a template database (``$DATASHARE_BENCH_DB_PREFIX``, default
``datashare_bench``; ``DATASHARE_BENCH_RESEED=1`` seeds anew) and copied for every run, so
peak memory is the pipeline's own. Programs are prepared in the plan's shards (about 25,000
children; one extract, input gate and output gate per chunk), as the DAG maps its tasks;
each shard is delivered as its deliver task does (program by program, recorded in groups);
the task's time outside its programs' timed ``deliver`` and ``record`` is the row
``deliver task, rest`` (reading the staged batches, planning against what is held).
Airflow start-up is not included.

Each run also checks that the disclosure log equals what arrived (the same children; for the
file drop, each child's logged digest recomputed from the CSV files), and measures the floor
in the same run: PostgreSQL ``COPY ... TO STDOUT`` of the same children with their related
rows, written as CSV files. The ratio to that floor is printed per destination.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
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

import pandas as pd
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, func, insert, select, text, update

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

PG = os.environ.get("DATASHARE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
PROGRAMS = 300
PREFIX = os.environ.get("DATASHARE_BENCH_DB_PREFIX", "datashare_bench")
SOURCE = f"{PREFIX}_source"
DESTINATIONS = ("bench-staging", "bench-local")


def _database(name: str) -> str:
    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{PG}/{name}"


def _seeded(children: int) -> str:
    """The name of a database holding the seeded world of ``children`` children, seeded once
    (in its own process, so the pipeline's peak memory is its own) and kept as a template."""
    name = f"{PREFIX}_seed_{children}"
    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.scalar(
            text("SELECT count(*) FROM pg_database WHERE datname = :n"), {"n": name}
        )
    admin.dispose()
    if not exists or os.environ.get("DATASHARE_BENCH_RESEED"):
        subprocess.run([sys.executable, __file__, "--seed", str(children), name], check=True)
    return name


def _copy(template: str, name: str) -> str:
    """A fresh database ``name`` copied from ``template`` (a file copy: seconds, not a seed)."""
    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    admin.dispose()
    return f"{PG}/{name}"


def _seed(children: int, name: str) -> None:
    """Seed the demo world, then spread its children over 300 Vermont programs."""
    from pipelines.db import make_engine
    from pipelines.demo import seed
    from schemas import Child, ParticipationEvent, Program, Recipient
    from schemas.migrate import upgrade

    engine = make_engine(_database(name))
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
    from schemas.migrate import upgrade

    url = f"{PG}/{SOURCE}"
    engine = make_engine(url)
    upgrade(engine)  # a template seeded before the newest migration gets it here
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")  # as a nightly database would be
    config = root / "config"
    shutil.copytree(PROJECT / "config" / "agreements", config / "agreements")
    (config / "destinations").mkdir()
    staging = _database(f"{PREFIX}_staging")
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


FLOOR_TABLES = {
    "children": "SELECT c.* FROM children c JOIN programs p ON p.id = c.program_id "
    "WHERE p.code = ANY(%(programs)s) ORDER BY c.id",
    "guardians": "SELECT g.* FROM guardians g JOIN children c ON c.id = g.child_id "
    "JOIN programs p ON p.id = c.program_id WHERE p.code = ANY(%(programs)s)",
    "enrollments": "SELECT e.* FROM enrollments e JOIN children c ON c.id = e.child_id "
    "JOIN programs p ON p.id = c.program_id WHERE p.code = ANY(%(programs)s)",
    "attendance": "SELECT a.* FROM attendance a JOIN enrollments e ON e.id = a.enrollment_id "
    "JOIN children c ON c.id = e.child_id JOIN programs p ON p.id = c.program_id "
    "WHERE p.code = ANY(%(programs)s)",
    "consents": "SELECT x.* FROM consents x JOIN children c ON c.id = x.child_id "
    "JOIN programs p ON p.id = c.program_id WHERE p.code = ANY(%(programs)s)",
    "enrollment_notices": "SELECT x.* FROM enrollment_notices x JOIN children c "
    "ON c.id = x.child_id JOIN programs p ON p.id = c.program_id "
    "WHERE p.code = ANY(%(programs)s)",
    "parent_statements": "SELECT x.* FROM parent_statements x JOIN children c "
    "ON c.id = x.child_id JOIN programs p ON p.id = c.program_id "
    "WHERE p.code = ANY(%(programs)s)",
}


def floor(engine, programs: list[str], folder: Path) -> float:  # type: ignore[no-untyped-def]
    """Seconds PostgreSQL takes to ``COPY ... TO STDOUT`` the programs' children with their
    related rows, written as CSV files: the least any extract-and-write could cost."""
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    raw = engine.raw_connection()
    try:
        import psycopg

        cursor = psycopg.ClientCursor(raw.driver_connection)
        for table, query in FLOOR_TABLES.items():
            inner = cursor.mogrify(query, {"programs": programs})
            with (
                (folder / f"{table}.csv").open("wb") as out,
                cursor.copy(f"COPY ({inner}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy,
            ):
                for data in copy:
                    out.write(data)
    finally:
        raw.close()
    return time.perf_counter() - started


def _digest_of(parts: list[tuple[str, list[str]]]) -> str:
    """A child's payload digest, as ``pipelines.submission.records`` makes it, from the
    files that arrived (file name order, each row ``name \x1e cells \x1f-joined \x1d``)."""
    text = "".join(f"{name}\x1e" + "\x1f".join(cells) + "\x1d" for name, cells in parts)
    return hashlib.sha256(text.encode()).hexdigest()


def check_arrived(engine, destination: str, run_id: str, root: Path) -> int:  # type: ignore[no-untyped-def]
    """The disclosure log of the run equals what arrived: the same children, and for a file
    drop the same digest of each child's rows as read back from the files. Returns how many
    children were compared; raises ``SystemExit`` on any difference (naming counts only)."""
    from schemas import DisclosureEntry

    with engine.connect() as connection:
        logged = {
            (p, c): d
            for p, c, d in connection.execute(
                select(
                    DisclosureEntry.program_code,
                    DisclosureEntry.child_local_id,
                    DisclosureEntry.payload_digest,
                ).where(DisclosureEntry.run_id == run_id, DisclosureEntry.action == "disclose")
            )
        }
    arrived: dict[tuple[str, str], object] = {}
    if destination == "bench-local":
        same = True
        for folder in sorted((root / "drop").glob("*/*")):  # one program at a time
            rows: dict[tuple[str, str], list[tuple[str, list[str]]]] = defaultdict(list)
            for path in sorted(folder.glob("*.csv")):
                frame = pd.read_csv(path, dtype=object, keep_default_na=False)
                for cells in frame.itertuples(index=False, name=None):
                    rows[(str(cells[0]), str(cells[1]))].append((path.name, list(cells)))
            digests = {key: _digest_of(parts) for key, parts in rows.items()}
            same = same and all(logged.get(key) == d for key, d in digests.items())
            arrived |= dict.fromkeys(digests)
        same = same and arrived.keys() == logged.keys()
    else:
        staging = create_engine(os.environ["DATASHARE_BENCH_STAGING_URL"])
        with staging.connect() as connection:
            for table in ("hs_child_identity", "hs_enrollment"):
                query = text(f'SELECT "ProgramID", "LocalChildID" FROM {table}')
                for p, c in connection.execute(query):
                    arrived[(p, c)] = None
        staging.dispose()
        same = arrived.keys() == logged.keys()
    if not same:
        raise SystemExit(
            f"{destination}: the disclosure log ({len(logged)} children) differs from what "
            f"arrived ({len(arrived)} children; {len(arrived.keys() ^ logged.keys())} differ)"
        )
    return len(logged)


def measure(children: int, destinations: list[str]) -> dict[str, object]:
    """One size, in this process."""
    from pipelines.submission.deliver import deliver_shard
    from pipelines.submission.finish import finish_run
    from pipelines.submission.plan import plan_run
    from pipelines.submission.prepare import prepare_programs

    root = Path(tempfile.mkdtemp(prefix="datashare-bench-"))
    _copy(_seeded(children), SOURCE)
    settings, engine, programs = _world(root)
    steps: dict[str, float] = defaultdict(float)
    totals: dict[str, float] = {}
    disclosed = 0
    checked = 0
    runs: list[tuple[str, str]] = []
    wall = time.perf_counter()
    for destination in destinations:
        started_destination = time.perf_counter()
        started = time.perf_counter()
        plan = plan_run(destination, dt.date(2026, 11, 27), settings=settings)
        steps[f"{destination}: plan"] += time.perf_counter() - started
        delivered = []
        for shard in plan["shards"]:  # the DAG's shards (tasks.shard_children)
            batch = prepare_programs(plan, shard, settings)
            started = time.perf_counter()
            outcomes, failed = deliver_shard(plan, batch, settings)  # as the deliver task
            task = time.perf_counter() - started
            if failed:
                first = failed[min(failed)]
                raise SystemExit(
                    f"{destination}: programs failed: {sorted(failed)}; {min(failed)}: "
                    f"{type(first).__name__}: {first}"
                )
            delivered += outcomes
            for step, seconds in batch[0]["counts"]["seconds"].items():
                steps[f"{destination}: {step}"] += seconds
            # the deliver task's own work outside the outcomes' timed deliver and record
            timed = sum(sum(o.get("seconds", {}).values()) for o in outcomes)
            steps[f"{destination}: deliver task, rest"] += task - timed
        for outcome in delivered:
            for step, seconds in outcome.get("seconds", {}).items():
                steps[f"{destination}: {step}"] += seconds
        started = time.perf_counter()
        summary = finish_run(plan, delivered, settings)
        steps[f"{destination}: finish"] += time.perf_counter() - started
        totals[destination] = time.perf_counter() - started_destination
        disclosed += summary["children"]["logged"]
        runs.append((destination, plan["run_id"]))
    total = time.perf_counter() - wall
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # before the checks
    for destination, run_id in runs:
        checked += check_arrived(engine, destination, run_id, root)
    floor_seconds = floor(engine, programs, root / "floor")
    shutil.rmtree(root, ignore_errors=True)
    return {
        "children": children,
        "programs": len(programs),
        "logged": disclosed,
        "checked": checked,
        "seconds": round(total, 1),
        "per_destination": {k: round(v, 1) for k, v in totals.items()},
        "floor": round(floor_seconds, 2),
        "steps": {k: round(v, 2) for k, v in steps.items()},
        "peak_rss_mb": peak,
        "load": os.getloadavg()[0],
    }


def main() -> None:
    """Run each size in its own process and print the tables."""
    if len(sys.argv) > 3 and sys.argv[1] == "--seed":
        _seed(int(sys.argv[2]), sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[100_000])
    parser.add_argument(
        "--destination",
        action="append",
        choices=DESTINATIONS,
        help="run only this destination (repeatable; default: both)",
    )
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    destinations = args.destination or list(DESTINATIONS)
    if args.one:
        print(json.dumps(measure(args.sizes[0], destinations)))
        return
    console = Console()
    results = []
    for size in args.sizes:
        command = [sys.executable, __file__, "--one", str(size)]
        command += [f"--destination={d}" for d in destinations]
        out = subprocess.run(command, capture_output=True, text=True, check=False)
        if out.returncode:
            sys.stderr.write(out.stderr[-4000:])
            raise SystemExit(out.returncode)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    table = Table(title="Pipeline, steps called directly (Airflow start-up excluded)")
    for column in (
        "children",
        "programs",
        "disclosures logged = arrived",
        "seconds",
        "seconds per destination",
        "COPY+CSV floor s",
        "ratio to floor",
        "peak RSS MB",
        "load (1 min)",
    ):
        table.add_column(column, justify="right")
    for r in results:
        per = r["per_destination"]
        ratios = ", ".join(f"{v / r['floor']:.1f}x" for v in per.values())
        table.add_row(
            f"{r['children']:,}",
            str(r["programs"]),
            f"{r['logged']:,} = {r['checked']:,}",
            f"{r['seconds']:,.1f}",
            ", ".join(f"{k.removeprefix('bench-')} {v:,.1f}" for k, v in per.items()),
            f"{r['floor']:.2f}",
            ratios,
            f"{r['peak_rss_mb']:,}",
            f"{r['load']:.1f}",
        )
    console.print(table)
    steps = Table(title="Seconds per step")
    steps.add_column("step")
    for r in results:
        steps.add_column(f"{r['children']:,}", justify="right")
    for step in results[0]["steps"]:
        steps.add_row(step, *(str(r["steps"].get(step, "")) for r in results))
    console.print(steps)


if __name__ == "__main__":
    main()
