"""Where encrypted staged batches live between a run's tasks: the program database (default)
or a local folder.

Why the database: the tasks of one run may execute on different Airflow workers that share
nothing but the databases. Every worker already reaches the program database (it reads the
children and writes the ledgers there), so storing the sealed batches there adds no service,
no credential and no failure mode to a deployment, and the staged rows can be removed in the
same place the delivery ledger says nothing awaits reconciliation. An object store would add
a bucket, credentials and a second consistency story for the same few megabytes per program.
The batches stay sealed with AES-GCM exactly as on disk (:mod:`pipelines.staging`): the key is
never in the database, so a database reader sees ciphertext only. Large artifacts are split
into chunks (``staged_chunks``, ``CHUNK_BYTES`` each) so no single row is unbounded.

``DATASHARE_STAGING_STORE=folder`` keeps them under ``<state>/staging`` instead: for one host
only (a second worker would not find them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeAlias

import pandas as pd
import pyarrow as pa
from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.orm import Session

from pipelines.db import session_scope
from pipelines.staging import StagedRef, StagingError, load, load_bytes, seal, stage
from schemas import StagedChunk

Sealable: TypeAlias = pd.DataFrame | pa.Table | bytes
"""What a staged file holds: a frame, an Arrow table (written as its frame would be), or bytes."""

DB_PREFIX = "db:"
CHUNK_BYTES = 4 * 1024 * 1024
_IN_BATCH = 1000
STORE_ENV = "DATASHARE_STAGING_STORE"


class Readable(Protocol):
    """Anything that hands out an artifact's sealed bytes (a store, or :class:`Prefetched`)."""

    def read(self, ref: StagedRef) -> bytes:
        """The sealed bytes ``ref`` points at; :class:`StagingError` if missing."""
        ...


class StagedStore(Protocol):
    """Holds sealed artifacts by run, program and name."""

    def put(self, data: Sealable, key: bytes, *, run_id: str, program: str, name: str) -> StagedRef:
        """Seal and keep ``data``; the reference to hand to the next task."""
        ...

    def put_many(self, items: Sequence[Staging], key: bytes) -> list[StagedRef]:
        """Seal and keep every item (several programs' artifacts) at once; their references
        in order. All or nothing where the store is transactional (the database)."""
        ...

    def read(self, ref: StagedRef) -> bytes:
        """The sealed bytes ``ref`` points at; :class:`StagingError` if missing."""
        ...

    def read_many(self, refs: Iterable[StagedRef]) -> dict[str, bytes]:
        """The sealed bytes of several artifacts at once (one query on the database), by
        ``ref.path``; a missing one is left out (its :meth:`read` raises). Unchecked: each
        is checked and opened on its own (:func:`pipelines.staging.unseal`)."""
        ...

    def remove(self, ref: StagedRef) -> None:
        """Forget one artifact (already gone is fine)."""
        ...

    def remove_many(self, refs: Iterable[StagedRef]) -> None:
        """Forget several artifacts at once (already gone is fine)."""
        ...

    def remove_run(self, run_id: str) -> None:
        """Forget everything ``run_id`` staged."""
        ...

    def remove_program(self, run_id: str, program: str) -> None:
        """Forget what ``run_id`` staged for ``program``."""
        ...

    def runs(self) -> set[str]:
        """Run ids that still hold staged artifacts."""
        ...


@dataclass(frozen=True)
class Staging:
    """One artifact to stage: what, and under which run, program and file name."""

    data: Sealable
    run_id: str
    program: str
    name: str


def _plain_name(name: str) -> None:
    if "/" in name or name.startswith("."):
        raise StagingError(f"staged file name {name!r} must be a plain file name")


class DatabaseStore:
    """Sealed artifacts in the program database, in chunks; reachable from every worker."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put(self, data: Sealable, key: bytes, *, run_id: str, program: str, name: str) -> StagedRef:
        return self.put_many([Staging(data, run_id, program, name)], key)[0]

    def put_many(self, items: Sequence[Staging], key: bytes) -> list[StagedRef]:
        """Every item sealed, then written in one transaction (one ``COPY`` on PostgreSQL)."""
        for item in items:
            _plain_name(item.name)
        now = dt.datetime.now(dt.UTC)
        refs: list[StagedRef] = []
        rows: list[dict[str, object]] = []
        for item in items:
            sealed, count = seal(item.data, key, run_id=item.run_id, name=item.name)
            location = f"{item.run_id}/{item.program}/{item.name}"
            rows += [
                {
                    "key": location,
                    "seq": seq,
                    "run_id": item.run_id,
                    "data": sealed[start : start + CHUNK_BYTES],
                    "created_at": now,
                }
                for seq, start in enumerate(range(0, max(len(sealed), 1), CHUNK_BYTES))
            ]
            digest = hashlib.sha256(sealed).hexdigest()
            refs.append(StagedRef(DB_PREFIX + location, digest, count, item.run_id))
        if not rows:
            return refs
        locations = sorted({str(row["key"]) for row in rows})
        with session_scope(self.engine) as session:
            for start in range(0, len(locations), _IN_BATCH):  # a restaged artifact: anew
                part = locations[start : start + _IN_BATCH]
                session.execute(delete(StagedChunk).where(StagedChunk.key.in_(part)))
            _insert_chunks(session, rows)
        return refs

    def read(self, ref: StagedRef) -> bytes:
        location = ref.path.removeprefix(DB_PREFIX)
        with self.engine.connect() as connection:
            parts = connection.execute(
                select(StagedChunk.data)
                .where(StagedChunk.key == location)
                .order_by(StagedChunk.seq)
            ).scalars()
            sealed = b"".join(parts)
        if not sealed:
            raise StagingError(f"staged file {ref.path} is missing")
        return sealed

    def read_many(self, refs: Iterable[StagedRef]) -> dict[str, bytes]:
        """One query per ``_IN_BATCH`` artifacts, their chunks in order."""
        locations = sorted({ref.path.removeprefix(DB_PREFIX) for ref in refs})
        parts: dict[str, list[bytes]] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(locations), _IN_BATCH):
                query = (
                    select(StagedChunk.key, StagedChunk.data)
                    .where(StagedChunk.key.in_(locations[start : start + _IN_BATCH]))
                    .order_by(StagedChunk.key, StagedChunk.seq)
                )
                for location, data in connection.execute(query):
                    parts.setdefault(location, []).append(data)
        found = {DB_PREFIX + location: b"".join(chunks) for location, chunks in parts.items()}
        return {path: sealed for path, sealed in found.items() if sealed}

    def remove(self, ref: StagedRef) -> None:
        self.remove_many([ref])

    def remove_many(self, refs: Iterable[StagedRef]) -> None:
        locations = sorted({ref.path.removeprefix(DB_PREFIX) for ref in refs})
        if not locations:
            return
        with session_scope(self.engine) as session:
            for start in range(0, len(locations), _IN_BATCH):
                part = locations[start : start + _IN_BATCH]
                session.execute(delete(StagedChunk).where(StagedChunk.key.in_(part)))

    def remove_run(self, run_id: str) -> None:
        with session_scope(self.engine) as session:
            session.execute(delete(StagedChunk).where(StagedChunk.run_id == run_id))

    def remove_program(self, run_id: str, program: str) -> None:
        with session_scope(self.engine) as session:
            session.execute(
                delete(StagedChunk).where(
                    StagedChunk.run_id == run_id, StagedChunk.key.startswith(f"{run_id}/{program}/")
                )
            )

    def runs(self) -> set[str]:
        with self.engine.connect() as connection:
            return set(connection.execute(select(StagedChunk.run_id).distinct()).scalars())


class FolderStore:
    """Sealed artifacts as files under ``root/<run>/<program>/`` (one host only)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, data: Sealable, key: bytes, *, run_id: str, program: str, name: str) -> StagedRef:
        return stage(data, self.root / run_id / program, key, run_id=run_id, name=name)

    def put_many(self, items: Sequence[Staging], key: bytes) -> list[StagedRef]:
        return [
            self.put(i.data, key, run_id=i.run_id, program=i.program, name=i.name) for i in items
        ]

    def read(self, ref: StagedRef) -> bytes:
        if ref.path.startswith(DB_PREFIX):
            raise StagingError(f"staged file {ref.path} is in the database, not in a folder")
        try:
            return Path(ref.path).read_bytes()
        except FileNotFoundError:
            raise StagingError(f"staged file {ref.path} is missing") from None

    def read_many(self, refs: Iterable[StagedRef]) -> dict[str, bytes]:
        found = {}
        for ref in refs:
            try:
                found[ref.path] = self.read(ref)
            except StagingError:  # missing: its own read says so
                continue
        return found

    def remove(self, ref: StagedRef) -> None:
        Path(ref.path).unlink(missing_ok=True)

    def remove_many(self, refs: Iterable[StagedRef]) -> None:
        for ref in refs:
            self.remove(ref)

    def remove_run(self, run_id: str) -> None:
        shutil.rmtree(self.root / run_id, ignore_errors=True)

    def remove_program(self, run_id: str, program: str) -> None:
        shutil.rmtree(self.root / run_id / program, ignore_errors=True)
        if (self.root / run_id).is_dir() and not any((self.root / run_id).iterdir()):
            (self.root / run_id).rmdir()

    def runs(self) -> set[str]:
        return {p.name for p in self.root.iterdir() if p.is_dir()} if self.root.is_dir() else set()


class Prefetched:
    """A store's artifacts read ahead in one go (:meth:`StagedStore.read_many`, at the first
    :meth:`read`), handed out once each; anything not read ahead (or asked for again) is read
    from the store itself, so a missing artifact fails exactly as there. Should the read
    ahead fail, that first read fails with it and the later ones go to the store one by one.
    Only :meth:`read` is offered: the caller checks and opens the bytes file by file."""

    def __init__(self, store: StagedStore, refs: Iterable[StagedRef]) -> None:
        self.store = store
        self._refs: list[StagedRef] | None = list(refs)
        self._sealed: dict[str, bytes] = {}

    def read(self, ref: StagedRef) -> bytes:
        """The sealed bytes of ``ref`` (forgotten here once handed out)."""
        if self._refs is not None:
            refs, self._refs = self._refs, None
            self._sealed = self.store.read_many(refs)
        sealed = self._sealed.pop(ref.path, None)
        return self.store.read(ref) if sealed is None else sealed


def _insert_chunks(session: Session, rows: list[dict[str, object]]) -> None:
    """Write chunk rows in the session's transaction: one ``COPY ... FROM STDIN`` (binary) on
    PostgreSQL with psycopg 3, a multi-row insert elsewhere."""
    connection = session.connection()
    driver = connection.connection.driver_connection
    if connection.dialect.name != "postgresql" or not hasattr(driver, "pgconn"):
        session.execute(insert(StagedChunk), rows)
        return
    from psycopg import sql

    columns = ("key", "seq", "run_id", "data", "created_at")
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(StagedChunk.__tablename__),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
    )
    with driver.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        # binary: the sealed bytes go as they are (text would escape every byte: ~3x slower)
        copy.set_types(_CHUNK_TYPES)
        for row in rows:
            copy.write_row([row[c] for c in columns])


_CHUNK_TYPES = ["varchar", "int4", "varchar", "bytea", "timestamptz"]
"""The PostgreSQL types of ``staged_chunks``' columns, in :func:`_insert_chunks`' order."""


def open_store(kind: str, engine: Engine, folder: Path) -> StagedStore:
    """The store named ``kind`` (``database`` or ``folder``)."""
    if kind == "database":
        return DatabaseStore(engine)
    if kind == "folder":
        return FolderStore(folder)
    raise StagingError(f"{STORE_ENV}={kind!r}: use 'database' or 'folder'")


def load_frame(store: Readable, ref: StagedRef, key: bytes) -> pd.DataFrame:
    """The frame staged at ``ref`` in ``store``."""
    return load(ref, key, store.read)


def load_raw(store: Readable, ref: StagedRef, key: bytes) -> bytes:
    """The bytes staged at ``ref`` in ``store``."""
    return load_bytes(ref, key, store.read)
