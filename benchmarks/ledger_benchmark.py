"""Benchmark: append N disclosures to the hash-chained log in one transaction, then verify.

Runs on a fresh SQLite file and, unless ``--no-pg``, on a scratch PostgreSQL database made
and dropped on the server of ``$DATASHARE_TEST_PG`` (default 127.0.0.1:5432), unkeyed and
keyed. Prints a table: seconds, entries per second, peak memory (RSS) of the process.

    .venv/bin/python benchmarks/ledger_append.py --entries 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import resource
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

from pipelines.db import make_engine, session_scope
from privacy.ledger import LEDGER_KEY_ENV, Disclosure, append_disclosures, verify
from schemas import Base

SCRATCH = "datashare_bench_ledger"


def items(n: int) -> list[Disclosure]:
    when = dt.datetime.now(dt.UTC)
    return [
        Disclosure(
            run_id="bench",
            program_code="VT-HS-01",
            child_local_id=f"C{i:07d}",
            recipient_code="VT-AOE",
            agreement_id="vt-aoe-2026",
            legal_basis="consent",
            purpose="state longitudinal data system",
            fields=("child_local_id", "race", "enrollment_date", "attendance_days"),
            run_date=when.date(),
            payload_digest=hashlib.sha256(str(i).encode()).hexdigest(),
            disclosed_at=when,
        )
        for i in range(n)
    ]


def measure(url: str, n: int, keyed: bool) -> tuple[float, float]:
    if keyed:
        os.environ[LEDGER_KEY_ENV] = "bench-key-" + "x" * 32
    else:
        os.environ.pop(LEDGER_KEY_ENV, None)
    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    batch = items(n)
    start = time.perf_counter()
    with session_scope(engine) as session:
        append_disclosures(session, batch)
    appended = time.perf_counter() - start
    start = time.perf_counter()
    with session_scope(engine) as session:
        report = verify(session, "disclosures")
    verified = time.perf_counter() - start
    assert report.ok and report.entries == n, report.summary()
    engine.dispose()
    return appended, verified


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = parser.parse_args()
    server = os.environ.get("DATASHARE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
    table = Table(title=f"Ledger: append {args.entries:,} disclosures in one transaction")
    for column in ("backend", "chain", "append s", "entries/s", "verify s", "peak RSS MiB"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as folder:
        targets = [("sqlite", f"sqlite:///{Path(folder) / 'bench.db'}")]
        admin = None
        if not args.no_pg:
            admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)'))
                connection.execute(text(f'CREATE DATABASE "{SCRATCH}"'))
            targets.append(("postgresql", f"{server}/{SCRATCH}"))
        try:
            for backend, url in targets:
                for keyed in (False, True):
                    appended, verified = measure(url, args.entries, keyed)
                    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                    table.add_row(
                        backend,
                        "HMAC-SHA256" if keyed else "SHA-256",
                        f"{appended:.2f}",
                        f"{args.entries / appended:,.0f}",
                        f"{verified:.2f}",
                        f"{peak:,.0f}",
                    )
        finally:
            if admin is not None:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)'))
                admin.dispose()
    Console().print(table)


if __name__ == "__main__":
    main()
