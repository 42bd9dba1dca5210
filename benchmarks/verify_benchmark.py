"""Benchmark: verifying the ledgers whole (``--full``) against a routine verify that walks only
the entries after the verified-through checkpoint (``privacy/checkpoints.py``).

Builds, on a scratch PostgreSQL database (``console_bench_verify`` on the server of
``$DATASHARE_TEST_PG``, default 127.0.0.1:5432; made and dropped here) or with ``--sqlite`` a
temporary SQLite file, a disclosure log and a redaction audit of ``--entries`` entries in all
(five in six disclosures), appended night by night with an anchor per night, keyed (HMAC)
unless ``--unkeyed``. Then times, with ``verify_ledgers`` as ``datashare audit verify`` calls it:

1. a full verify (records the checkpoint);
2. one more night appended (``--night`` entries), then a routine verify from the checkpoint;
3. a routine verify with nothing new;
4. a full verify again, for the ratio on the same machine minutes apart.

Prints a table with the machine's load at each step (the machine is shared: compare ratios).

    .venv/bin/python benchmarks/verify_benchmark.py --entries 1200000
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, create_engine, text

from pipelines.db import make_engine, session_scope
from privacy.anchors import anchor_run, verify_ledgers
from privacy.ledger import (
    LEDGER_KEY_ENV,
    Disclosure,
    Redaction,
    append_disclosures,
    append_redactions,
)
from schemas import Base, Run

SCRATCH = "console_bench_verify"
PG_SERVER = os.environ.get("DATASHARE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


def load() -> str:
    """The 1-minute load average, as ``uptime`` shows it."""
    return f"{os.getloadavg()[0]:.1f}"


def night(engine: Engine, run_id: str, start: int, n: int, days_ago: int = 0) -> None:
    """``n`` entries of one run (five in six disclosures), the run's row (finished
    ``days_ago``) and its anchor."""
    when = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    disclosures = n * 5 // 6
    with session_scope(engine) as session:
        session.add(
            Run(
                id=run_id,
                destination="vt-aoe",
                run_date=when.date(),
                dry_run=False,
                status="succeeded",
                started_at=when,
                finished_at=when,
                summary={"children": {"logged": disclosures}},
            )
        )
        append_disclosures(
            session,
            [
                Disclosure(
                    run_id=run_id,
                    program_code=f"VT-HS-{i % 40:02d}",
                    child_local_id=f"C{i:08d}",
                    recipient_code="VT-AOE",
                    agreement_id="vt-aoe-2026",
                    legal_basis="consent",
                    purpose="state longitudinal data system",
                    fields=("child_local_id", "race", "enrollment_date", "attendance_days"),
                    run_date=when.date(),
                    payload_digest=hashlib.sha256(str(i).encode()).hexdigest(),
                    disclosed_at=when,
                )
                for i in range(start, start + disclosures)
            ],
        )
        append_redactions(
            session,
            [
                Redaction(
                    run_id=run_id,
                    program_code=f"VT-HS-{i % 40:02d}",
                    subject=f"C{i:08d}",
                    agreement_id="vt-aoe-2026",
                    reason_code="no_consent",
                    rule="consent required",
                    field=None if i % 2 else "race",
                    recorded_at=when,
                )
                for i in range(start, start + n - disclosures)
            ],
        )
        anchor_run(session, run_id)


def timed(engine: Engine, *, full: bool) -> tuple[float, int, str]:
    """Seconds, entries walked and what was verified, of one ``verify_ledgers``."""
    began = time.perf_counter()
    with session_scope(engine) as session:
        check = verify_ledgers(session, full=full, record=True)
    elapsed = time.perf_counter() - began
    assert check.ok, [r.summary() for r in check.reports.values()]
    walked = sum(r.entries for r in check.reports.values())
    scope = "; ".join(r.verified_range for r in check.reports.values())
    return elapsed, walked, scope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_200_000, help="entries in all")
    parser.add_argument("--nights", type=int, default=120, help="runs that built them")
    parser.add_argument("--night", type=int, default=6_000, help="entries of the new night")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file, not PostgreSQL")
    parser.add_argument("--unkeyed", action="store_true", help="SHA-256, not HMAC-SHA256")
    args = parser.parse_args()
    if args.unkeyed:
        os.environ.pop(LEDGER_KEY_ENV, None)
    else:
        os.environ[LEDGER_KEY_ENV] = "bench-key-" + "x" * 32
    admin = None
    folder = tempfile.mkdtemp(prefix="console-verify-bench-")
    if args.sqlite:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
    else:
        admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{SCRATCH}"'))
        url = f"{PG_SERVER}/{SCRATCH}"
    console = Console(width=150)
    try:
        engine = make_engine(url)
        Base.metadata.create_all(engine)
        began = time.perf_counter()
        per_night = args.entries // args.nights
        for number in range(args.nights):
            night(engine, f"run-{number:04d}", number * per_night, per_night, args.nights - number)
        built = time.perf_counter() - began
        backend = "SQLite" if args.sqlite else "PostgreSQL"
        chain = "SHA-256" if args.unkeyed else "HMAC-SHA256"
        table = Table(
            title=f"{backend}, {chain}: {per_night * args.nights:,} entries "
            f"(built in {built:.0f} s, load {load()})"
        )
        for column in ("verify", "what was walked", "entries walked", "seconds", "load"):
            table.add_column(column, justify="right" if column != "what was walked" else "left")
        rows = []
        seconds, walked, scope = timed(engine, full=True)
        rows.append(("full (records the checkpoint)", scope, walked, seconds, load()))
        night(engine, "run-new", args.nights * per_night, args.night)
        seconds, walked, scope = timed(engine, full=False)
        rows.append((f"routine after a night of {args.night:,}", scope, walked, seconds, load()))
        seconds, walked, scope = timed(engine, full=False)
        rows.append(("routine, nothing new", scope, walked, seconds, load()))
        seconds, walked, scope = timed(engine, full=True)
        rows.append(("full again", scope, walked, seconds, load()))
        for label, scope, walked, seconds, at in rows:
            table.add_row(label, scope, f"{walked:,}", f"{seconds:.2f}", at)
        console.print(table)
        ratio = rows[0][3] / rows[1][3]
        console.print(f"full / routine after a night: {ratio:,.0f}x", highlight=False)
        engine.dispose()
    finally:
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
