"""0013: a verify job from before it has no owner; its heartbeat is its last progress, so a job
a restart left running is judged by how old that is (and a stale one no longer blocks)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import inspect, text

from pipelines.db import make_engine
from schemas.migrate import downgrade, upgrade

WHEN = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)


def test_jobs_from_before_get_their_last_progress_as_heartbeat_and_no_owner(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine, "0012")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO ledger_verify_jobs (id, mode, requested_by, state, started_at, "
                "updated_at, checked, total) VALUES (1, 'full', 'uma', 'running', :s, :u, 5, 9)"
            ),
            {"s": WHEN, "u": WHEN + dt.timedelta(minutes=3)},
        )
    upgrade(engine, "0013")
    with engine.connect() as connection:
        found = connection.execute(
            text(
                "SELECT heartbeat_at = updated_at, owner_host, owner_space, owner_pid, "
                "owner_started FROM ledger_verify_jobs"
            )
        ).one()
    assert tuple(found) == (1, None, None, None, None)
    downgrade(engine, "0012")
    columns = {c["name"] for c in inspect(engine).get_columns("ledger_verify_jobs")}
    assert "heartbeat_at" not in columns and "owner_pid" not in columns
    engine.dispose()
