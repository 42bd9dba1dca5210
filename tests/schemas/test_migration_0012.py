"""0012: a delivery still open at upgrade was sent by code that kept no step marks, so it
counts as possibly published (both marks set); a settled one keeps none."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import text

from pipelines.db import make_engine
from schemas.migrate import downgrade, upgrade

WHEN = dt.datetime(2026, 11, 27, 23, 0, tzinfo=dt.UTC)


def test_open_deliveries_at_upgrade_count_as_possibly_published(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine, "0010")
    with engine.begin() as connection:
        for run_id, status in [("r1", "pending"), ("r2", "delivered"), ("r3", "logged")]:
            connection.execute(
                text(
                    "INSERT INTO deliveries (run_id, destination, program_code, batch_digest, "
                    "status, artifacts, created_at, updated_at) "
                    "VALUES (:r, 'vt', 'P', 'd', :s, '{}', :w, :w)"
                ),
                {"r": run_id, "s": status, "w": WHEN},
            )
    upgrade(engine, "0012")
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT run_id, upload_began_at IS NOT NULL, publish_began_at IS NOT NULL "
                "FROM deliveries ORDER BY run_id"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("r1", True, True),
        ("r2", True, True),
        ("r3", False, False),
    ]
    downgrade(engine, "0010")
    with engine.connect() as connection:
        columns = {r[1] for r in connection.execute(text("PRAGMA table_info(deliveries)"))}
    assert "upload_began_at" not in columns and "run_id" in columns
    engine.dispose()
