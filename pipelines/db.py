"""Engines and sessions for the program's database (SQLite by default, or any SQLAlchemy URL).

A SQLite database file holds names, birth dates and quarantined raw rows: :func:`make_engine`
creates a new one readable and writable by its owner only (0600), and SQLite gives its
journal files (``-wal``, ``-shm``, ``-journal``) the database file's mode. An existing file
keeps the mode it has.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

Upsert = Callable[[Table], postgresql.Insert | sqlite.Insert]
"""An ``INSERT`` with ``ON CONFLICT`` of one dialect (both spell it the same way)."""
UPSERTS: dict[str, Upsert] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
"""The dialects with ``ON CONFLICT`` upserts; others look up, then insert or update."""

DATABASE_URL_ENV = "DATASHARE_DATABASE_URL"
DEFAULT_DATABASE_URL = "sqlite:///datashare.db"


def database_url(url: str | None = None) -> str:
    """The URL to use: the one given, else ``$DATASHARE_DATABASE_URL``, else ./datashare.db."""
    return url or os.environ.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL


def make_engine(url: str | None = None) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys on and a WAL journal."""
    url = database_url(url)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        _create_private(engine.url.database, engine.url.query)
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _create_private(database: str | None, query: object) -> None:
    """Create a SQLite database file that does not exist yet as an empty file, mode 0600
    (SQLite takes an empty file as an empty database), before SQLite creates it 0644."""
    if not database or database == ":memory:" or database.startswith("file:") or query:
        return
    path = Path(database)
    if path.exists() or not path.parent.is_dir():
        return
    with suppress(FileExistsError):  # another process made it first: it keeps its mode
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with sessionmaker(engine, expire_on_commit=False).begin() as session:
        yield session


def autocommit(engine: Engine) -> Connection:
    """A connection on which each statement commits by itself (no ``BEGIN`` and ``COMMIT``
    round trips of its own)."""
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")
