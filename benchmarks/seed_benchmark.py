"""Benchmark ``datashare demo seed``: 10k and 100k children into SQLite and PostgreSQL.

Run: ``.venv/bin/python benchmarks/seed_benchmark.py [--sizes 10000 100000] [--pg URL]``.
Each run seeds a fresh database (a temporary SQLite file; a scratch PostgreSQL database that is
created and dropped), then reseeds it once (the "replace" path). Peak RSS is measured in a
child process per run, so one run's memory does not hide another's.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

from pipelines.db import make_engine
from pipelines.demo import seed
from schemas.migrate import upgrade

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
SCRATCH = "datashare_bench"


def _run(url: str, children: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    engine = make_engine(url)
    upgrade(engine)
    start = time.perf_counter()
    summary = seed(engine, children, 42)
    first = time.perf_counter() - start
    start = time.perf_counter()
    seed(engine, children, 42)
    again = time.perf_counter() - start
    engine.dispose()
    rows = (summary.children + summary.guardians + summary.enrollments + summary.attendance_rows
            + summary.consents + summary.notices + summary.statements)  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put((first, again, rows, peak))


def measure(url: str, children: int) -> tuple[float, float, int, float]:
    """(seconds to seed, seconds to reseed, rows written, peak RSS MB) in a fresh process."""
    queue: mp.Queue = mp.get_context("spawn").Queue()  # type: ignore[type-arg]
    process = mp.get_context("spawn").Process(target=_run, args=(url, children, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def _pg_database(server: str, create: bool) -> str:
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)'))
        if create:
            connection.execute(text(f'CREATE DATABASE "{SCRATCH}"'))
    admin.dispose()
    return f"{server}/{SCRATCH}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--pg", default=PG_SERVER, help="PostgreSQL server URL (no database)")
    args = parser.parse_args()

    table = Table(title="datashare demo seed")
    for column in (
        "backend",
        "children",
        "rows",
        "seconds",
        "children/s",
        "reseed s",
        "peak RSS MB",
    ):
        table.add_column(column, justify="right", no_wrap=True)
    with tempfile.TemporaryDirectory() as folder:
        for backend in ("sqlite", "postgresql"):
            for size in args.sizes:
                if backend == "sqlite":
                    path = Path(folder) / f"bench-{size}.db"
                    url = f"sqlite:///{path}"
                else:
                    url = _pg_database(args.pg, create=True)
                try:
                    first, again, rows, peak = measure(url, size)
                finally:
                    if backend == "postgresql":
                        _pg_database(args.pg, create=False)
                table.add_row(backend, f"{size:,}", f"{rows:,}", f"{first:.1f}",
                              f"{size / first:,.0f}", f"{again:.1f}", f"{peak:.0f}")  # fmt: skip
    Console(width=max(Console().width, 100)).print(table)


if __name__ == "__main__":
    main()
