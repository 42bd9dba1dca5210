"""Expensive starting states built once per test process and copied per test: a seeded demo
world (SQLite file copy, or PostgreSQL ``CREATE DATABASE ... TEMPLATE``).

Each copy is a fresh, independent database: tests may write to it freely. The templates live
in a temporary folder (and PostgreSQL databases) of this process, removed at exit.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from pipelines.db import make_engine
from pipelines.demo import seed
from schemas.migrate import upgrade

_FOLDER = Path(tempfile.mkdtemp(prefix="datashare-templates-"))
atexit.register(shutil.rmtree, _FOLDER, ignore_errors=True)


@functools.cache
def _seeded_sqlite(children: int, seed_value: int) -> Path:
    path = _FOLDER / f"world-{children}-{seed_value}.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    seed(engine, children=children, seed=seed_value)
    engine.dispose()
    return path


def seeded_sqlite(path: Path, *, children: int, seed_value: int) -> str:
    """A copy at ``path`` of the migrated demo world of ``children`` seeded with
    ``seed_value``; returns its URL."""
    shutil.copyfile(_seeded_sqlite(children, seed_value), path)
    return f"sqlite:///{path}"


_TEMPLATES: list[tuple[str, str]] = []


@functools.cache
def _seeded_postgres(server: str, children: int, seed_value: int) -> str:
    name = f"datashare_world_tpl_{os.getpid()}_{children}_{seed_value}"
    admin = create_engine(f"{server}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    engine = make_engine(f"{server}/{name}")
    upgrade(engine)
    seed(engine, children=children, seed=seed_value)
    engine.dispose()
    _TEMPLATES.append((server, name))
    return name


def seeded_postgres(url: str, *, children: int, seed_value: int) -> str:
    """Make the PostgreSQL database at ``url`` (``server/name``) anew as a copy of the seeded
    demo world (dropping what was there); returns ``url``."""
    server, name = url.rsplit("/", 1)
    template = _seeded_postgres(server, children, seed_value)
    admin = create_engine(f"{server}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    admin.dispose()
    return url


@atexit.register
def _drop_postgres_templates() -> None:
    for server, name in _TEMPLATES:
        admin = create_engine(f"{server}/test", isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except OperationalError:  # the server went away first: nothing left to drop
            pass
        admin.dispose()
