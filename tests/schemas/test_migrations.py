"""Migrations create the whole model from empty, match the models, and go back down."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from pipelines.db import make_engine
from schemas import Base
from schemas.migrate import downgrade, upgrade
from tests.conftest import reset_schema

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return reset_schema(request.getfixturevalue("pg_url"))


def test_upgrade_from_empty_creates_every_table_and_matches_the_models(empty_url: str) -> None:
    engine = make_engine(empty_url)
    upgrade(engine)
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    engine.dispose()


def test_upgrade_is_idempotent_and_downgrade_removes_everything(empty_url: str) -> None:
    engine = make_engine(empty_url)
    upgrade(engine)
    upgrade(engine)
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_0011_keeps_the_newest_running_verify_job_and_stalls_the_others(empty_url: str) -> None:
    """Jobs the old race left running together: the newest stays running, the index holds."""
    engine = make_engine(empty_url)
    upgrade(engine, "0010")
    insert = text(
        "INSERT INTO ledger_verify_jobs (id, mode, requested_by, state, started_at, updated_at,"
        " checked, total) VALUES (:id, 'routine', 'vera', :state, :at, :at, 0, 0)"
    )
    at = dt.datetime(2026, 12, 7, 9, tzinfo=dt.UTC)
    with engine.begin() as connection:
        for job_id, state in ((1, "done"), (2, "running"), (3, "running"), (4, "failed")):
            connection.execute(insert, {"id": job_id, "state": state, "at": at})
    upgrade(engine)
    with engine.begin() as connection:
        states = connection.execute(text("SELECT id, state FROM ledger_verify_jobs ORDER BY id"))
        assert [tuple(r) for r in states] == [
            (1, "done"), (2, "stalled"), (3, "running"), (4, "failed")
        ]  # fmt: skip
        with pytest.raises(IntegrityError):
            connection.execute(insert, {"id": 5, "state": "running", "at": at})
    engine.dispose()
