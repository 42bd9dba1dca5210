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
from pathlib import Path
from typing import Protocol

import pandas as pd
from sqlalchemy import Engine, delete, select

from pipelines.db import session_scope
from pipelines.staging import StagedRef, StagingError, load, load_bytes, seal, stage
from schemas import StagedChunk

DB_PREFIX = "db:"
CHUNK_BYTES = 4 * 1024 * 1024
STORE_ENV = "DATASHARE_STAGING_STORE"


class StagedStore(Protocol):
    """Holds sealed artifacts by run, program and name."""

    def put(
        self, data: pd.DataFrame | bytes, key: bytes, *, run_id: str, program: str, name: str
    ) -> StagedRef:
        """Seal and keep ``data``; the reference to hand to the next task."""
        ...

    def read(self, ref: StagedRef) -> bytes:
        """The sealed bytes ``ref`` points at; :class:`StagingError` if missing."""
        ...

    def remove(self, ref: StagedRef) -> None:
        """Forget one artifact (already gone is fine)."""
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


class DatabaseStore:
    """Sealed artifacts in the program database, in chunks; reachable from every worker."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put(
        self, data: pd.DataFrame | bytes, key: bytes, *, run_id: str, program: str, name: str
    ) -> StagedRef:
        if "/" in name or name.startswith("."):
            raise StagingError(f"staged file name {name!r} must be a plain file name")
        sealed, rows = seal(data, key, run_id=run_id, name=name)
        location = f"{run_id}/{program}/{name}"
        now = dt.datetime.now(dt.UTC)
        with session_scope(self.engine) as session:
            session.execute(delete(StagedChunk).where(StagedChunk.key == location))
            session.add_all(
                StagedChunk(
                    key=location,
                    seq=seq,
                    run_id=run_id,
                    data=sealed[start : start + CHUNK_BYTES],
                    created_at=now,
                )
                for seq, start in enumerate(range(0, max(len(sealed), 1), CHUNK_BYTES))
            )
        return StagedRef(DB_PREFIX + location, hashlib.sha256(sealed).hexdigest(), rows, run_id)

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

    def remove(self, ref: StagedRef) -> None:
        with session_scope(self.engine) as session:
            session.execute(
                delete(StagedChunk).where(StagedChunk.key == ref.path.removeprefix(DB_PREFIX))
            )

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

    def put(
        self, data: pd.DataFrame | bytes, key: bytes, *, run_id: str, program: str, name: str
    ) -> StagedRef:
        return stage(data, self.root / run_id / program, key, run_id=run_id, name=name)

    def read(self, ref: StagedRef) -> bytes:
        if ref.path.startswith(DB_PREFIX):
            raise StagingError(f"staged file {ref.path} is in the database, not in a folder")
        try:
            return Path(ref.path).read_bytes()
        except FileNotFoundError:
            raise StagingError(f"staged file {ref.path} is missing") from None

    def remove(self, ref: StagedRef) -> None:
        Path(ref.path).unlink(missing_ok=True)

    def remove_run(self, run_id: str) -> None:
        shutil.rmtree(self.root / run_id, ignore_errors=True)

    def remove_program(self, run_id: str, program: str) -> None:
        shutil.rmtree(self.root / run_id / program, ignore_errors=True)
        if (self.root / run_id).is_dir() and not any((self.root / run_id).iterdir()):
            (self.root / run_id).rmdir()

    def runs(self) -> set[str]:
        return {p.name for p in self.root.iterdir() if p.is_dir()} if self.root.is_dir() else set()


def open_store(kind: str, engine: Engine, folder: Path) -> StagedStore:
    """The store named ``kind`` (``database`` or ``folder``)."""
    if kind == "database":
        return DatabaseStore(engine)
    if kind == "folder":
        return FolderStore(folder)
    raise StagingError(f"{STORE_ENV}={kind!r}: use 'database' or 'folder'")


def load_frame(store: StagedStore, ref: StagedRef, key: bytes) -> pd.DataFrame:
    """The frame staged at ``ref`` in ``store``."""
    return load(ref, key, store.read)


def load_raw(store: StagedStore, ref: StagedRef, key: bytes) -> bytes:
    """The bytes staged at ``ref`` in ``store``."""
    return load_bytes(ref, key, store.read)
