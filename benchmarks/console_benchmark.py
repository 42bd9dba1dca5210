"""Benchmark: console page times with a million disclosure-log entries.

Builds a database with the real migrations (so the real indexes), the demo programs and
children, N disclosure-log entries and M redaction-audit entries appended through the real
hash-chained ledger over R nightly runs (run summaries included), then requests every page
of the console through its FastAPI app with a real token from Airflow's auth manager and
prints milliseconds per page (median and 95th percentile of the repeats), and of the
``datashare disclosures CHILD`` command's program lookup (its "bytes" column: programs found).
Runs on SQLite, and on a scratch PostgreSQL database (``--pg``, on ``$DATASHARE_TEST_PG``'s
server) when asked.

    .venv/bin/python benchmarks/console_benchmark.py [--entries 1000000] [--pg | --pg-only]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

PROJECT = Path(__file__).resolve().parent.parent
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="console-bench-airflow-"))
os.environ.setdefault("AIRFLOW_CONFIG", str(PROJECT / "airflow.cfg"))
os.environ.setdefault("DATASHARE_HOME", str(PROJECT))
os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", "console-benchmark-" + "2" * 48)

from pipelines.db import make_engine, session_scope  # noqa: E402
from pipelines.demo import seed  # noqa: E402
from pipelines.settings import Settings  # noqa: E402
from privacy.ledger import Disclosure, Redaction, append_disclosures, append_redactions  # noqa: E402
from schemas import Run  # noqa: E402
from schemas.migrate import upgrade  # noqa: E402

PG_SERVER = os.environ.get("DATASHARE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
SCRATCH = os.environ.get("DATASHARE_BENCH_DB_PREFIX", "") + "datashare_bench_console"
PROGRAMS = ["VT-HS-01", "VT-EHS-02", "MO-HS-03", "NM-HS-05"]
REASONS = ["no_consent", "consent_expired", "consent_revoked", "notice_refused",
           "consent_unsigned", "disability_consent_missing"]  # fmt: skip
FIELDS = ("child_local_id", "first_name", "last_name", "birth_date", "enrollment_date")
BATCH = 50_000


def build(url: str, entries: int, redactions: int, runs: int, children: int) -> list[str]:
    """Migrate, seed, and append the ledgers; returns the run ids, oldest first."""
    engine = make_engine(url)
    upgrade(engine)
    seed(engine, children=300, seed=7)
    start = dt.date(2026, 12, 1) - dt.timedelta(days=runs)
    run_ids = [f"bench-{start + dt.timedelta(days=i):%Y%m%d}" for i in range(runs)]
    per_run, withheld_per_run = entries // runs, redactions // runs
    with session_scope(engine) as session:
        for i, run_id in enumerate(run_ids):
            day = start + dt.timedelta(days=i)
            began = dt.datetime.combine(day, dt.time(2), tzinfo=dt.UTC)
            withheld = {r: withheld_per_run // len(REASONS) for r in REASONS}
            summary = {
                "children": {"considered": per_run + withheld_per_run, "disclosed": per_run},
                "withheld_by_reason": withheld,
                "validation": "passed",
                "programs": {"processed": PROGRAMS, "stopped": []},
            }
            session.add(Run(id=run_id, destination="bench", run_date=day, status="success",
                            started_at=began, finished_at=began + dt.timedelta(minutes=5),
                            summary=summary))  # fmt: skip
    made = 0
    while made < entries:
        size = min(BATCH, entries - made)
        with session_scope(engine) as session:
            append_disclosures(session, (_disclosure(made + k, run_ids, per_run, children)
                                         for k in range(size)))  # fmt: skip
        made += size
    made = 0
    while made < redactions:
        size = min(BATCH, redactions - made)
        with session_scope(engine) as session:
            append_redactions(session, (_redaction(made + k, run_ids, withheld_per_run, children)
                                        for k in range(size)))  # fmt: skip
        made += size
    if engine.dialect.name == "postgresql":  # as autovacuum leaves an append-only table
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return run_ids


def _disclosure(i: int, run_ids: list[str], per_run: int, children: int) -> Disclosure:
    run = min(i // per_run, len(run_ids) - 1)
    day = dt.date.fromisoformat(f"{run_ids[run][6:10]}-{run_ids[run][10:12]}-{run_ids[run][12:]}")
    return Disclosure(
        run_id=run_ids[run],
        program_code=PROGRAMS[i % len(PROGRAMS)],
        child_local_id=f"C{(i // len(PROGRAMS)) % children:07d}",
        recipient_code="VT-AOE",
        agreement_id="vt-aoe-ecids",
        legal_basis="audit_evaluation",
        purpose="state early childhood integrated data system",
        fields=FIELDS,
        run_date=day,
        payload_digest=hashlib.sha256(str(i).encode()).hexdigest(),
        disclosed_at=dt.datetime.combine(day, dt.time(2, 5), tzinfo=dt.UTC),
    )


def _redaction(i: int, run_ids: list[str], per_run: int, children: int) -> Redaction:
    run = min(i // max(per_run, 1), len(run_ids) - 1)
    return Redaction(
        run_id=run_ids[run],
        program_code=PROGRAMS[i % len(PROGRAMS)],
        subject=f"C{(i * 7) % children:07d}",
        agreement_id="vt-aoe-ecids",
        reason_code=REASONS[(i // len(PROGRAMS)) % len(REASONS)],
        rule="vt-aoe-ecids (consent)",
    )


def pages(run_ids: list[str]) -> list[tuple[str, str]]:
    """(label, path) of every console GET page, on the newest run and a logged child."""
    newest = run_ids[-1]
    return [
        ("runs", "/runs"),
        ("runs, one destination, page 3", "/runs?destination=bench&page=3"),
        ("runs as CSV", "/runs?format=csv"),
        ("run detail", f"/runs/{newest}"),
        ("children behind a reason", f"/runs/{newest}/reasons/no_consent"),
        ("same, next page", f"/runs/{newest}/reasons/no_consent?after=1"),
        ("a child's disclosures", "/children/VT-HS-01/C0000042"),
        ("a child's disclosures, JSON", "/children/MO-HS-03/C0001234?format=json"),
        ("programs", "/programs"),
        ("program NM-AIAN-06", "/programs/NM-AIAN-06"),
        ("agreements", "/agreements"),
        ("agreement vt-aoe-ecids", "/agreements/vt-aoe-ecids"),
        ("ledgers (button)", "/ledgers"),
    ]


def measure(url: str, run_ids: list[str], repeats: int) -> list[tuple[str, float, float, int]]:
    """Milliseconds per page (median, p95) and response size, through the console app."""
    from airflow import settings
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.models.revoked_token import RevokedToken
    from fastapi.testclient import TestClient

    from console.app import create_app

    RevokedToken.__table__.create(settings.engine, checkfirst=True)
    token = create_auth_manager().generate_jwt(SimpleAuthManagerUser(username="b", role="ADMIN"))
    config = PROJECT / "config"
    app = create_app(
        Settings(database_url=url, config_dir=config, state_dir=Path(tempfile.mkdtemp()))
    )
    results = []
    with TestClient(app) as client:
        client.cookies.set("_token", token)
        for label, path in pages(run_ids):
            client.get(path, headers={"Accept": "text/html"})  # warm: templates, plans
            times = []
            for _ in range(repeats):
                began = time.perf_counter()
                response = client.get(path, headers={"Accept": "text/html"})
                times.append((time.perf_counter() - began) * 1000)
                assert response.status_code == 200, (path, response.status_code)
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            results.append((label, statistics.median(times), p95, len(response.content)))
    results.append(("disclosures command: a child's programs", *_lookup(url, repeats)))
    return results


def _lookup(url: str, repeats: int) -> tuple[float, float, int]:
    """Milliseconds (median, p95) of ``datashare disclosures CHILD``'s program lookup."""
    from privacy.ledger import programs_for_child

    engine = make_engine(url)
    times = []
    with session_scope(engine) as session:
        found = programs_for_child(session, "C0000042")  # warm
        for _ in range(repeats):
            began = time.perf_counter()
            programs_for_child(session, "C0000042")
            times.append((time.perf_counter() - began) * 1000)
    engine.dispose()
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95, len(found)


def verify_time(url: str) -> float:
    """Seconds to verify both chains (the ledger page's on-demand button)."""
    from privacy.ledger import verify

    engine = make_engine(url)
    began = time.perf_counter()
    with session_scope(engine) as session:
        reports = [verify(session, name) for name in ("disclosures", "redactions")]
    elapsed = time.perf_counter() - began
    engine.dispose()
    assert all(r.ok for r in reports)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="disclosure-log entries")
    parser.add_argument("--redactions", type=int, default=200_000, help="redaction entries")
    parser.add_argument("--runs", type=int, default=365, help="nightly runs")
    parser.add_argument("--children", type=int, default=50_000, help="distinct local ids")
    parser.add_argument("--repeats", type=int, default=20, help="requests per page")
    parser.add_argument("--pg", action="store_true", help="also on a scratch PostgreSQL database")
    parser.add_argument("--pg-only", action="store_true", help="PostgreSQL only, not SQLite")
    parser.add_argument("--verify", action="store_true", help="also time verifying both chains")
    args = parser.parse_args()
    targets = [("SQLite", f"sqlite:///{tempfile.mkdtemp(prefix='console-bench-')}/bench.db")]
    args.pg = args.pg or args.pg_only
    if args.pg_only:
        targets = []
    if args.pg:
        admin = create_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{SCRATCH}"'))
        targets.append(("PostgreSQL", f"{PG_SERVER}/{SCRATCH}"))
    console = Console()
    try:
        for name, url in targets:
            began = time.perf_counter()
            run_ids = build(url, args.entries, args.redactions, args.runs, args.children)
            built = time.perf_counter() - began
            table = Table(title=f"{name}: {args.entries:,} disclosure-log entries, "
                                f"{args.redactions:,} audit entries, {args.runs} runs "
                                f"(built in {built:.0f} s)")  # fmt: skip
            for column in ("page", "median ms", "p95 ms", "bytes"):
                table.add_column(column, justify="left" if column == "page" else "right")
            for label, median, p95, size in measure(url, run_ids, args.repeats):
                table.add_row(label, f"{median:.1f}", f"{p95:.1f}", f"{size:,}")
            console.print(table)
            if args.verify:
                console.print(f"verify both chains (on demand): {verify_time(url):.1f} s")
    finally:
        if args.pg:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
