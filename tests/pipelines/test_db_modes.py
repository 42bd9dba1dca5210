"""The SQLite database file and its journals are private to their owner (0600)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from pipelines.db import make_engine
from schemas.migrate import upgrade


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> object:
    """A permissive umask, as a careless service account might have: 0600 must not rely on
    the umask."""
    old = os.umask(0o002)
    yield
    os.umask(old)


@pytest.mark.usefixtures("open_umask")
def test_when_a_new_database_is_made_then_it_and_its_journals_are_0600(tmp_path: Path) -> None:
    path = tmp_path / "datashare.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as connection:  # keep it open: the WAL and shared-memory files exist
        connection.execute(text("CREATE TABLE probe (x INTEGER)"))
        connection.execute(text("INSERT INTO probe VALUES (1)"))
        connection.commit()
        journals = [p for p in tmp_path.iterdir() if p.name != path.name]
        assert {p.name for p in journals} >= {"datashare.db-wal", "datashare.db-shm"}
        assert {p.name: mode(p) for p in [path, *journals]} == {
            p.name: 0o600 for p in [path, *journals]
        }
    engine.dispose()


@pytest.mark.usefixtures("open_umask")
def test_when_the_rollback_journal_is_used_then_it_is_0600_too(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    engine = make_engine(f"sqlite:///{path}")
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA journal_mode=DELETE")
        cursor.execute("PRAGMA locking_mode=EXCLUSIVE")  # the journal stays after a write
        cursor.execute("PRAGMA journal_mode=PERSIST")
        cursor.execute("CREATE TABLE probe (x INTEGER)")
        raw.commit()
        journal = tmp_path / "plain.db-journal"
        assert journal.exists() and mode(journal) == 0o600 and mode(path) == 0o600
    finally:
        raw.close()
        engine.dispose()


def test_when_the_database_exists_then_its_mode_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    engine.dispose()
    assert mode(path) == 0o640


def test_when_in_memory_then_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    engine = make_engine("sqlite://")
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    engine.dispose()
    assert list(tmp_path.iterdir()) == []
