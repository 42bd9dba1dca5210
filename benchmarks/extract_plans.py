"""``EXPLAIN (ANALYZE, BUFFERS)`` of the extract's chunk queries on PostgreSQL, for one shard.

Run: ``.venv/bin/python benchmarks/extract_plans.py DATABASE_URL [SHARD] [PROGRAM_PREFIX]``
against a database seeded by ``benchmarks/pipeline_benchmark.py`` (programs ``VT-B000`` ...,
shards of about 25,000 children). Prints the plan of the keyset query (the next chunk's ids)
and of each query of the chunk, under the extract's own ``SET LOCAL`` settings. No values
are printed (the chunk's ids are in a temporary table, as the extract puts them).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql.base import PGDialect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines import extract
from pipelines.db import make_engine
from schemas import Child, Program

RUN_DATE = dt.date(2026, 11, 27)
SHARD = 25_000


def main() -> None:
    """Print the plans."""
    url = sys.argv[1]
    which = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    prefix = sys.argv[3] if len(sys.argv) > 3 else "VT-B"
    engine = make_engine(url)
    with engine.connect() as connection:
        sizes = dict(
            connection.execute(
                select(Program.code, func.count(Child.id))
                .join(Child)
                .where(Program.code.like(f"{prefix}%"))
                .group_by(Program.code)
            ).all()
        )
    shards: list[list[str]] = [[]]
    total = 0
    for code in sorted(sizes):
        if total + sizes[code] > SHARD and shards[-1]:
            shards.append([])
            total = 0
        shards[-1].append(code)
        total += sizes[code]
    shard = shards[which]
    with engine.connect() as connection:
        for setting in extract.PG_SETTINGS:
            connection.exec_driver_sql(f"SET LOCAL {setting}")

        def show(title: str, statement) -> None:  # type: ignore[no-untyped-def]
            sql = statement.compile(
                dialect=PGDialect(paramstyle="qmark"), compile_kwargs={"literal_binds": True}
            )
            plan = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {sql}").scalars()
            print(f"--- {title}")
            for line in plan:
                print(line if len(line) < 160 else line[:160] + " ...")

        ids_of = select(Program.id).where(Program.code.in_(shard))
        program_ids = connection.scalars(ids_of).all()
        keyset = (
            select(Child.id)
            .where(Child.program_id.in_(program_ids), Child.id > 0)
            .order_by(Child.id)
            .limit(50_000)
        )
        show(
            f"keyset: the chunk's ids ({len(shard)} programs of {sum(sizes.values())} children)",
            keyset,
        )
        ids = connection.scalars(keyset).all()
        chunk = extract.chunk_table(connection, ids)
        show(f"children ({len(ids)} ids)", extract._children_query(RUN_DATE, chunk, lateral=True))
        for name, query in extract._related_queries(chunk).items():
            show(name, query)


if __name__ == "__main__":
    main()
