"""Shared fixtures: a clean database on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from pipelines.db import make_engine
from schemas import Base

PROJECT = Path(__file__).resolve().parent.parent
# Airflow reads its settings when first imported: give the test session its own home, with the
# project's airflow.cfg, before anything imports it.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="datashare-test-airflow-")
os.environ["AIRFLOW_CONFIG"] = str(PROJECT / "airflow.cfg")
os.environ["DATASHARE_HOME"] = str(PROJECT)
os.environ["GX_ANALYTICS_ENABLED"] = "False"

PG_SERVER = os.environ.get("DATASHARE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


@contextmanager
def scratch_database(name: str) -> Iterator[str]:
    """A PostgreSQL database made anew under ``name``, dropped afterwards; yields its URL."""
    admin = create_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def reset_schema(url: str) -> str:
    """Empty the PostgreSQL database at ``url`` (drop and re-create its public schema)."""
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def pg_url(worker_id: str) -> Iterator[str]:
    """A PostgreSQL database of this test worker's own, made anew for the session."""
    with scratch_database(f"datashare_test_{worker_id}_{os.getpid()}") as url:
        yield url


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A database with every table created, on SQLite and on PostgreSQL in turn."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'datashare.db'}"
    else:
        url = reset_schema(request.getfixturevalue("pg_url"))
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on ``db_url``."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def worker_id() -> str:
    """The xdist worker id, or ``main`` when tests run in one process."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


# In CI a skip fails unless allowed with a reason (see tests/skips.py).
from tests.skips import (  # noqa: E402
    pytest_make_collect_report,
    pytest_runtest_makereport,
    pytest_terminal_summary,
)

__all__ = ["pytest_make_collect_report", "pytest_runtest_makereport", "pytest_terminal_summary"]
