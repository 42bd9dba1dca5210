"""EXPLAIN (ANALYZE, BUFFERS) of every query the console's ledger-heavy pages and a routine
ledger verify run, on PostgreSQL with a large history.

Fills a scratch database (``console_plans``, prefixed by ``$DATASHARE_BENCH_DB_PREFIX`` if
set, on the server of ``$DATASHARE_TEST_PG``, default 127.0.0.1:5432; made and dropped here)
straight with SQL: ``--entries`` disclosure-log entries and a fifth as many redaction-audit
entries over ``--runs`` runs, 40 programs and ``--children`` children (the hashes are filler:
plans, not chains, are looked at). Then calls
the functions the pages call (a run's audit by reason, the children behind a reason and their
next page, a child's disclosures, the disclosures command's program lookup, the runs page)
and the routine verify's own queries, catching each statement as it runs and printing its
plan, and a table: statement, milliseconds, whether it used an index. The machine is shared:
read the plans (Seq Scan or not, rows read), not only the times.

    .venv/bin/python benchmarks/console_plans.py --entries 1000000 --children 100000
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.orm import Session

from pipelines.db import make_engine
from pipelines.reports import disclosure_rows, redaction_groups
from pipelines.review import run_page, withheld_entries, withheld_series
from privacy import anchors as anchoring
from privacy.ledger import ledger_table, programs_for_child
from schemas import Base, RedactionEntry

SCRATCH = os.environ.get("DATASHARE_BENCH_DB_PREFIX", "") + "console_plans"
PG_SERVER = os.environ.get("DATASHARE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")

FILL = """
INSERT INTO runs (id, destination, run_date, dry_run, status, started_at, finished_at, summary)
SELECT 'run-' || lpad(r::text, 4, '0'), 'vt-aoe', DATE '2026-01-01' + r, false, 'succeeded',
       TIMESTAMPTZ '2026-01-01' + r * INTERVAL '1 day',
       TIMESTAMPTZ '2026-01-01' + r * INTERVAL '1 day' + INTERVAL '1 hour', '{{}}'
FROM generate_series(1, {runs}) AS r;
INSERT INTO disclosure_log (seq, run_id, program_code, child_local_id, recipient_code,
    agreement_id, legal_basis, purpose, fields, action, run_date, disclosed_at,
    payload_digest, prev_hash, entry_hash)
SELECT s, 'run-' || lpad((1 + (s - 1) * {runs} / {entries})::text, 4, '0'),
       'VT-HS-' || lpad(mod(s, 40)::text, 2, '0'), 'C' || lpad(mod(s, {children})::text, 8, '0'),
       'VT-AOE', 'vt-aoe-2026', 'consent', 'state longitudinal data system',
       '["child_local_id", "race"]', 'disclose', DATE '2026-01-01', now(),
       md5(s::text) || md5(s::text), md5((s - 1)::text) || md5((s - 1)::text),
       md5(s::text) || md5(s::text)
FROM generate_series(1, {entries}) AS s;
INSERT INTO redaction_audit (seq, run_id, program_code, subject, agreement_id, field,
    reason_code, rule, recorded_at, prev_hash, entry_hash)
SELECT s, 'run-' || lpad((1 + (s - 1) * {runs} / {redactions})::text, 4, '0'),
       'VT-HS-' || lpad(mod(s, 40)::text, 2, '0'), 'C' || lpad(mod(s, {children})::text, 8, '0'),
       'vt-aoe-2026', CASE WHEN mod(s, 3) = 0 THEN 'race' END,
       (ARRAY['no_consent', 'refused', 'not_enrolled', 'field_not_in_agreement'])[1 + mod(s, 4)],
       'rule', now(), md5((s - 1)::text) || md5((s - 1)::text), md5(s::text) || md5(s::text)
FROM generate_series(1, {redactions}) AS s;
"""


class Catcher:
    """Runs EXPLAIN (ANALYZE, BUFFERS) of each SELECT the engine executes while enabled."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.label = ""
        self.plans: list[tuple[str, str, list[str]]] = []
        event.listen(engine, "before_cursor_execute", self.before)

    def before(self, conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if not self.label or not statement.lstrip().upper().startswith("SELECT"):
            return
        label, self.label = self.label, ""  # no EXPLAIN of the EXPLAIN
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
        lines = [row[0] for row in cursor.fetchall()]
        self.plans.append((label, statement, lines))
        self.label = label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--children", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=365)
    parser.add_argument(
        "--drop-index", action="append", default=[], help="an index to drop first (a before)"
    )
    parser.add_argument(
        "--sql", action="append", default=[], help="a statement to run first, e.g. an old index"
    )
    args = parser.parse_args()
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{SCRATCH}"'))
    console = Console(width=160)
    try:
        engine = make_engine(f"{PG_SERVER}/{SCRATCH}")
        Base.metadata.create_all(engine)
        sizes = {"runs": args.runs, "entries": args.entries, "children": args.children}
        sizes["redactions"] = args.entries // 5
        with engine.begin() as connection:
            for statement in FILL.format(**sizes).split(";\n"):
                if statement.strip():
                    connection.exec_driver_sql(statement)
        with engine.begin() as connection:
            for name in args.drop_index:
                connection.exec_driver_sql(f'DROP INDEX "{name}"')
            for statement in args.sql:
                connection.exec_driver_sql(statement)
        # as autovacuum leaves an append-only table: statistics and the visibility map
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
        catcher = Catcher(engine)
        run = f"run-{args.runs // 2:04d}"
        with Session(engine) as session:
            after = session.scalar(
                select(RedactionEntry.seq)
                .where(RedactionEntry.run_id == run, RedactionEntry.reason_code == "refused")
                .order_by(RedactionEntry.seq)
                .offset(200)
                .limit(1)
            )
            mark = anchoring.heads(session)["disclosures"][0] - 5000
            table_ = ledger_table("disclosures")
            counted = select(func.count()).select_from(table_).where(table_.c.seq <= mark)
            calls: list[tuple[str, Callable[[], object]]] = [
                ("run page: audit by reason", lambda: redaction_groups(session, run)),
                ("reason page 1", lambda: withheld_entries(session, run, "refused")),
                ("reason page n", lambda: withheld_entries(session, run, "refused",
                                                           after_seq=after or 0)),
                ("a child's disclosures", lambda: disclosure_rows(session, "VT-HS-07",
                                                                  "C00004567")),
                ("disclosures: programs of a child", lambda: programs_for_child(session,
                                                                               "C00004567")),
                ("runs page", lambda: run_page(session)),
                ("runs chart", lambda: withheld_series(session, "vt-aoe")),
                ("verify: entries before the checkpoint", lambda: session.scalar(counted)),
                ("verify: entries after the checkpoint", lambda: list(session.execute(
                    select(table_).where(table_.c.seq > mark).order_by(table_.c.seq)))),
                ("verify: entries by run and program", lambda: anchoring._logged(session,
                                                                                 None)),
                ("verify: audited pairs of a run", lambda: anchoring._audited(session, {run})),
            ]  # fmt: skip
            for label, call in calls:
                catcher.label = label
                call()
                catcher.label = ""
        table = Table(title=f"{args.entries:,} disclosures, {sizes['redactions']:,} audit "
                            f"entries, {args.runs} runs, {args.children:,} children; "
                            f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
        for column in ("query", "ms", "scan"):
            table.add_column(column)
        for label, statement, lines in catcher.plans:
            console.print(f"[bold]{label}[/]: {' '.join(statement.split())[:300]}", markup=True)
            for line in lines:
                console.print("    " + line, highlight=False, markup=False)
            total = next((ln for ln in lines if ln.startswith("Execution Time")), "")
            pattern = (
                r"(Seq Scan|Index Only Scan|Index Scan|Bitmap Index Scan)( using \w+)? on (\w+)"
            )
            found = re.findall(pattern, "\n".join(lines))
            scans = sorted({f"{kind}{using} on {name}" for kind, using, name in found})
            used = "; ".join(scans)
            table.add_row(label, total.split(":")[-1].strip(), used)
        console.print(table)
        engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{SCRATCH}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
