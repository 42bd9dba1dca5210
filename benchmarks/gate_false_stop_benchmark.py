"""False stops of the output privacy gate on the synthetic demo world, at any size.

Run: ``.venv/bin/python benchmarks/gate_false_stop_benchmark.py [--pg] [N ...]`` (default
2000, the size of ``datashare demo seed``). Each size is seeded with ``datashare demo seed``'s
own code (seed 42) into a fresh database (a temporary SQLite file, or with ``--pg`` a scratch
PostgreSQL database, ``DATASHARE_BENCH_PG`` or 127.0.0.1:5432), in its own process. Then, for
every agreement in ``config/agreements``, a local-folder destination with the layouts that
agreement can fill prepares every participating program on the demo run date, one program per
batch as the DAG's mapped tasks do (extract, input gate, decide, transform, map, output gate,
stage; nothing is delivered).

The demo world holds no leak: its rows go through the pipeline's own transforms, so every
batch the output gate stops is a false stop. The demo seed carries the cases that used to
trip the gate (a parent's statement giving the parent's phone and e-mail, a site coded "Hill"
beside children named Hill). Columns: batches gated (reached the output gate), false stops
(stopped by it), other stops (stopped before it, e.g. by the input gate), rows gated, seconds
(whole preparation) and of which in the output gate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

RUN_DATE = dt.date(2026, 11, 27)
PG = os.environ.get("DATASHARE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
FORMATS = {
    "vt-aoe-ecids": ["hs_child_identity", "hs_enrollment", "hs_parent_statements"],
    "vt-bsd-enrollment": ["hs_child_identity", "hs_enrollment", "hs_parent_statements"],
    "mo-dese-consent": ["hs_child_identity", "hs_enrollment"],
    "uvm-crc-study": [],
    "nm-ececd-aggregate": ["hs_program_aggregate"],
}
"""Agreement -> the layouts it fills. The study sends no names and only months of dates, which
no state file layout here takes: it goes to an Ed-Fi-style destination (records of the plan's
columns, pseudonyms and months), which prepares without contacting any server."""
EDFI = """type: edfi
recipient: {recipient}
agreements: [{agreement}]
edfi:
  base_url: http://127.0.0.1:9/
  credentials: {{client_id_env: BENCH_EDFI_ID, client_secret_env: BENCH_EDFI_SECRET}}
  education_organizations:
    default: {{school_id: 255901001, education_organization_id: 255901}}
"""


def _database(url: str | None, root: Path) -> str:
    if url is None:
        return f"sqlite:///{root / 'source.db'}"
    from sqlalchemy import create_engine, text

    name = f"datashare_gate_bench_{os.getpid()}"
    admin = create_engine(f"{url}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{url}/{name}"


def _drop(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    from sqlalchemy import create_engine, text

    server, name = url.rsplit("/", 1)
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _seed(url: str, children: int) -> None:
    from pipelines.db import make_engine
    from pipelines.demo import seed
    from schemas.migrate import upgrade

    engine = make_engine(url)
    upgrade(engine)
    seed(engine, children=children, seed=42)
    engine.dispose()


def _settings(url: str, root: Path):  # type: ignore[no-untyped-def]
    from pipelines.settings import Settings
    from pipelines.staging import create_key_file
    from privacy.agreements import load_agreement
    from privacy.keys import ensure_demo_key

    config = root / "config"
    shutil.copytree(PROJECT / "config" / "agreements", config / "agreements")
    (config / "destinations").mkdir()
    settings = Settings(database_url=url, config_dir=config, state_dir=root / "state")
    for agreement, formats in FORMATS.items():
        recipient = load_agreement(config / "agreements" / f"{agreement}.yaml").recipient
        text = (
            f"type: local\nrecipient: {recipient}\nagreements: [{agreement}]\n"
            f"formats: [{', '.join(formats)}]\nlocal:\n  root: {root / 'out' / agreement}\n"
            if formats
            else EDFI.format(recipient=recipient, agreement=agreement)
        )
        (config / "destinations" / f"bench-{agreement}.yaml").write_text(text)
        ensure_demo_key(settings.keys_file, recipient)
    create_key_file(settings.staging_key_file)
    return settings


def measure(children: int, pg: bool) -> list[dict[str, object]]:
    """Seed, then prepare every program for every agreement; one row per agreement."""
    from pipelines.submission.plan import plan_run
    from pipelines.submission.prepare import BatchStopped, prepare_programs

    root = Path(tempfile.mkdtemp(prefix="datashare-gate-bench-"))
    url = _database(PG if pg else None, root)
    try:
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--seed", url, str(children)], check=True)
        seeding = time.perf_counter() - started
        settings = _settings(url, root)
        rows = []
        for agreement in FORMATS:
            plan = plan_run(f"bench-{agreement}", RUN_DATE, dry_run=True, settings=settings)
            gated = false_stops = other = rows_gated = 0
            gate_seconds = 0.0
            stops: list[str] = []
            started = time.perf_counter()
            for program in plan["programs"]:
                try:
                    prepared = prepare_programs(plan, [program], settings)[0]
                except BatchStopped as stop:
                    if "output privacy gate" in str(stop):
                        gated += 1
                        false_stops += 1
                        stops.append(str(stop).split(" (report:")[0])
                    else:
                        other += 1
                    continue
                gated += 1
                rows_gated += sum(prepared["counts"]["rows"].values())
                gate_seconds += prepared["counts"]["seconds"].get("output_gate", 0.0)
            rows.append(
                {
                    "children": children,
                    "database": "postgresql" if pg else "sqlite",
                    "agreement": agreement,
                    "programs": len(plan["programs"]),
                    "gated": gated,
                    "false_stops": false_stops,
                    "other_stops": other,
                    "rows_gated": rows_gated,
                    "seconds": round(time.perf_counter() - started, 1),
                    "gate_seconds": round(gate_seconds, 1),
                    "seed_seconds": round(seeding, 1),
                    "stops": stops,
                }
            )
        return rows
    finally:
        _drop(url)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    """Measure each size in its own process and print one table."""
    if len(sys.argv) > 3 and sys.argv[1] == "--seed":
        _seed(sys.argv[2], int(sys.argv[3]))
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        print(json.dumps(measure(int(sys.argv[2]), sys.argv[3] == "pg")))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[2000])
    parser.add_argument("--pg", action="store_true", help="seed PostgreSQL instead of SQLite")
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Output gate false stops on the demo world (run date {RUN_DATE})")
    headers = ("seed size", "database", "agreement", "programs", "batches gated",
               "false stops", "other stops", "rows gated", "seconds", "of which gate")  # fmt: skip
    for column in headers:
        table.add_column(column, justify="right")
    stops = []
    for size in args.sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(size), "pg" if args.pg else "sqlite"],
            capture_output=True,
            text=True,
        )
        if out.returncode:
            sys.exit(f"size {size} failed:\n{out.stderr[-3000:]}")
        results = json.loads(out.stdout.strip().splitlines()[-1])
        for r in results:
            table.add_row(
                f"{r['children']:,}", r["database"], r["agreement"], str(r["programs"]),
                str(r["gated"]), str(r["false_stops"]), str(r["other_stops"]),
                f"{r['rows_gated']:,}", str(r["seconds"]), str(r["gate_seconds"]),
            )  # fmt: skip
            stops += r["stops"]
        total = {k: sum(r[k] for r in results) for k in ("gated", "false_stops", "rows_gated")}
        seconds = round(sum(r["seconds"] for r in results), 1)
        table.add_row(
            f"{size:,}", "", "all", "", str(total["gated"]), str(total["false_stops"]), "",
            f"{total['rows_gated']:,}", str(seconds), f"(seed {results[0]['seed_seconds']})",
        )  # fmt: skip
    Console(width=160).print(table)
    for stop in stops:
        print(stop)


if __name__ == "__main__":
    main()
