"""Staging-database destination: upsert a batch's rows into the state's staging tables.

Any SQLAlchemy URL, read at connect time from the environment variable (or Airflow connection)
the config names. The tables are made from the file specs when missing
(:func:`pipelines.mapping.staging_table`: typed columns, primary key on the spec's key). One
transaction per batch: every artifact's rows are upserted (``INSERT ... ON CONFLICT DO UPDATE``
on PostgreSQL and SQLite) and a marker row goes into ``datashare_batches`` (destination,
program, run id, batch digest, row counts); so either all of the batch is there with its
marker or none of it. An unchanged batch writes nothing: a batch is skipped only when the
program's latest marker carries its digest, i.e. the tables hold exactly what they held right
after that batch was written.

Deletions: :meth:`StagingDbDestination.delete_rows` removes rows by key (as written in the
batch) in one transaction — a withdrawn child's rows, or an old row whose key changed (a
corrected entry date, a parent statement withdrawn). The submission knows which rows a child
has at the destination from its delivery state (:mod:`pipelines.submission.state`). When it
removed anything, the same transaction writes a deletion marker for the program (digest
``deleted``, the run deleting, rows removed per table): the tables no longer hold what the
latest batch marker says, so a batch equal to it (a child withdrawn, then re-consented with the
same rows) is written again rather than skipped.

``holds(batch)`` (crash reconciliation) is exact: the program's latest marker carries the
batch's digest, deletion markers of the batch's own run aside (its run deletes, after
delivering, only rows of children or keys the batch does not have). ``deleted_by(run, program)``
says whether a run's deletion marker is there (a crashed run's deletions are then logged under
it).

Markers name the destination that wrote them, but are read per program whoever wrote them:
the tables are the database's, and a destination renamed in config, or a second destination
file pointing at the same database, writes the very rows the other name wrote. ``last_writers``
lists the programs last written under another name, so the submission brings its own
delivery state of them up to date first (:mod:`pipelines.submission.staging_copy`);
``writers`` names the other names, whose open deliveries it settles first. Two files on one
database must carry the same agreement and formats
(:func:`pipelines.destinations.registry.load_destination`, :func:`database_identity`). A
message names the database by host and name (:meth:`StagingDbDestination.where`), never by a
user or password.

The database remembers what it holds: ``datashare_agreement`` records the agreements and
formats of the first guarded write (a client built from a destination file), and every write
after, under any name, checks them first in its transaction; others are refused before
anything is written (rule ``staging_db_agreement_changed``; a run checks at plan with
:meth:`StagingDbDestination.check_agreement`, read only). ``datashare destinations rebaseline
NAME`` (:meth:`StagingDbDestination.rebaseline`) records a change agreed with the state.
Every write transaction first takes the database's write lock (a PostgreSQL transaction
advisory lock, SQLite's ``BEGIN IMMEDIATE``: ``_write_lock``), so two names writing at once
take turns and the unchanged-batch check reads what the other committed; a lock not granted
within ``timeout`` is :class:`TransientDeliveryError` (rule ``staging_db_one_writer``).

Dates: a table's date columns are SQL ``DATE``. A date the agreement cuts to the month
cannot go there without a made-up day, which a state's staff would read as the child's real
birth or entry date; so a staging destination whose agreement sends a month into a date
column is refused where its file is read (:func:`month_cut_columns`, checked by
:func:`pipelines.destinations.registry.load_destination`: ``destinations check`` and every
run), and a month-cut cell that still arrives (an agreement edited since) is refused before
anything is written (:func:`pipelines.mapping.typed_rows`, rule ``month_in_date_column``).
Send such an agreement to a file drop, whose date columns write the month as the month.

Faults: refused or dropped connections, timeouts and locks are
:class:`TransientDeliveryError` (retried here, bounded); constraint or type errors are
terminal. Messages carry the error class and SQLSTATE only, never statement parameters.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    create_engine,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from pipelines.destinations.base import (
    Batch,
    DeliveryError,
    DeliveryResult,
    TerminalDeliveryError,
    TransientDeliveryError,
)
from schemas.filespec import ColumnSpec, ColumnType, FileSpec

T = TypeVar("T")
MARKER_TABLE = "datashare_batches"
LATEST_INDEX = "ix_datashare_batches_latest"
"""The markers' index by program alone: the latest marker of a program, whoever wrote it."""
DELETED = "deleted"
"""``batch_digest`` of a deletion marker (never a batch's digest: those are 64 hex digits)."""
AGREEMENT_TABLE = "datashare_agreement"
"""One row: the agreements and formats the database's rows were written under."""
AGREEMENT_RULE = "staging_db_agreement_changed"
WRITER_RULE = "staging_db_one_writer"
LOCK_KEY = int.from_bytes(b"datashar", "big")
"""The PostgreSQL advisory lock every write transaction takes (advisory locks are the
database's own: one key is one lock per staging database, whatever name writes)."""
REBASELINE = "datashare destinations rebaseline {name}"


class AgreementChanged(TerminalDeliveryError):
    """The staging database records other agreements or formats than the destination's
    (rule ``staging_db_agreement_changed``); the message names the destination, the database
    (host and name) and what differs, and says how to record an intended change."""


def month_cut_columns(
    specs: Sequence[FileSpec], transforms: Mapping[str, str]
) -> list[tuple[FileSpec, ColumnSpec]]:
    """The date columns of ``specs`` that would carry a month into a SQL ``DATE``: those
    whose field ``transforms`` (field -> transform name, an agreement's) cuts to the month,
    and those whose pattern has no day. A staging database refuses them (rule
    ``month_in_date_column``): storing the first of the month would read as a birth or entry
    date the agreement never sent, and nothing in a ``DATE`` column says otherwise."""
    return [
        (spec, column)
        for spec in specs
        for column in spec.columns
        if column.type is ColumnType.DATE
        and (transforms.get(column.source) == "month" or column.month_format == column.date_format)
    ]


class StagingDbSettings(BaseModel):
    """The ``settings`` of a ``staging_db`` destination: where the URL is found."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url_env: str | None = None
    connection_id: str | None = None

    @model_validator(mode="after")
    def _check(self) -> StagingDbSettings:
        if (self.url_env is None) == (self.connection_id is None):
            raise ValueError("name exactly one of url_env or connection_id")
        return self


def resolve_url(settings: StagingDbSettings) -> SecretStr:
    """The database URL the settings name."""
    if settings.url_env is not None:
        url = os.environ.get(settings.url_env)
        if not url:
            raise TerminalDeliveryError(f"environment variable {settings.url_env} is not set")
        return SecretStr(url)
    try:
        from airflow.sdk import Connection

        return SecretStr(Connection.get(str(settings.connection_id)).get_uri())
    except Exception:
        raise TerminalDeliveryError(
            f"Airflow connection {settings.connection_id} not found"
        ) from None


def marker_table(metadata: MetaData) -> Table:
    """``datashare_batches``: one row per batch delivered."""
    if MARKER_TABLE in metadata.tables:
        return metadata.tables[MARKER_TABLE]
    return Table(
        MARKER_TABLE,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("destination", String(80), nullable=False),
        Column("program_code", String(40), nullable=False),
        Column("run_id", String(64), nullable=False),
        Column("run_date", String(10), nullable=False),
        Column("batch_digest", String(64), nullable=False),
        Column("row_counts", JSON, nullable=False),
        Column("delivered_at", DateTime(timezone=True), nullable=False),
        Index("ix_datashare_batches_program", "destination", "program_code", "id"),
        Index(LATEST_INDEX, "program_code", "id"),
    )


def agreement_table(metadata: MetaData) -> Table:
    """``datashare_agreement``: what the database holds, recorded when first written (one
    row, ``id`` 1): the sorted agreement ids and formats, comma-separated, and the name that
    recorded them."""
    if AGREEMENT_TABLE in metadata.tables:
        return metadata.tables[AGREEMENT_TABLE]
    return Table(
        AGREEMENT_TABLE,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("destination", String(80), nullable=False),
        Column("agreements", String(800), nullable=False),
        Column("formats", String(800), nullable=False),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
    )


class StagingDbDestination:
    """A state's staging database. With ``agreements`` (as built from a destination file),
    every write first checks them and ``formats`` (default: the specs' names) against what
    the database recorded when first written (:data:`AGREEMENT_TABLE`), recording them when
    nothing is; without, nothing is checked or recorded."""

    def __init__(
        self,
        name: str,
        settings: StagingDbSettings,
        specs: Sequence[FileSpec],
        *,
        timeout: float = 30.0,
        retries: int = 2,
        retry_backoff: float = 1.0,
        url: Callable[[], SecretStr] | None = None,
        agreements: Sequence[str] | None = None,
        formats: Sequence[str] | None = None,
    ) -> None:
        self.name = name
        self.holds_under: tuple[str, str] | None = None
        if agreements is not None:
            shown = formats if formats is not None else [spec.name for spec in specs]
            self.holds_under = (",".join(sorted(agreements)), ",".join(sorted(shown)))
        self.settings = settings
        self.timeout = timeout
        self.retries = retries
        self.retry_backoff = retry_backoff
        self._url = url or (lambda: resolve_url(settings))
        # pipelines.mapping (and pandas with it) only when a staging destination is built:
        # the `datashare` command imports this module at start through the registry
        from pipelines.mapping import staging_table

        self.metadata = MetaData()
        self.specs = {spec.file_name: spec for spec in specs}
        self.tables = {
            name: staging_table(spec, self.metadata) for name, spec in self.specs.items()
        }
        self.markers = marker_table(self.metadata)
        self.agreement = agreement_table(self.metadata)
        self._engine: Engine | None = None
        self._indexed = False

    def deliver(self, batch: Batch) -> DeliveryResult:
        """Upsert every artifact and the batch marker in one transaction."""
        unknown = [a.name for a in batch.artifacts if a.name not in self.specs]
        if unknown:
            raise TerminalDeliveryError(
                f"{self.name}: no file spec for artifact(s) {', '.join(unknown)}"
            )
        prepared = [(self.tables[a.name], self._rows(a.name, a.frame)) for a in batch.artifacts]
        return self._retrying(lambda: self._deliver_once(batch, prepared))

    def delete_rows(
        self,
        rows: Mapping[str, Sequence[Sequence[str]]],
        *,
        program_code: str,
        run_id: str,
        run_date: str,
    ) -> dict[str, int]:
        """Delete rows of ``program_code`` by key: artifact name -> the key values of each row,
        as written in the batch (``key`` of its spec). One transaction, which also writes the
        program's deletion marker when anything was (or may have been) removed; returns, per
        artifact name, how many rows were there (names with none, or whose count the driver
        does not say, are left out)."""
        unknown = [name for name in rows if name not in self.specs]
        if unknown:
            raise TerminalDeliveryError(
                f"{self.name}: no file spec for artifact(s) {', '.join(unknown)}"
            )
        import pandas as pd  # here, not at the top: see __init__

        plans = []
        for name, keys in rows.items():
            if not keys:
                continue
            spec, table = self.specs[name], self.tables[name]
            frame = pd.DataFrame([list(k) for k in keys], columns=list(spec.key), dtype=object)
            typed = self._rows(name, frame.reindex(columns=list(spec.column_names)))
            where = and_(*(table.c[k] == bindparam(f"key_{i}") for i, k in enumerate(spec.key)))
            params = [{f"key_{i}": row[k] for i, k in enumerate(spec.key)} for row in typed]
            plans.append((name, table.delete().where(where), params))

        def delete() -> dict[str, int]:
            if not plans:
                return {}
            with self._engine_().begin() as conn:
                self._write_lock(conn)
                self._create_tables(conn)
                self._baseline(conn)
                gone = {name: conn.execute(stmt, params).rowcount for name, stmt, params in plans}
                if any(n != 0 for n in gone.values()):  # -1: the driver cannot say, maybe some
                    conn.execute(
                        insert(self.markers),
                        {
                            "destination": self.name,
                            "program_code": program_code,
                            "run_id": run_id,
                            "run_date": run_date,
                            "batch_digest": DELETED,
                            "row_counts": gone,
                            "delivered_at": dt.datetime.now(dt.UTC),
                        },
                    )
            return {name: n for name, n in gone.items() if n > 0}

        return self._retrying(lambda: self._guard(delete))

    def holds(self, batch: Batch) -> bool:
        """Whether the program's latest marker is this batch's digest (deletion markers of the
        batch's own run aside: that run deleted, after delivering, only what the batch has
        not)."""

        def check() -> bool:
            with self._engine_().connect() as conn:
                if not conn.dialect.has_table(conn, MARKER_TABLE):
                    return False
                return self._latest_digest(conn, batch, of_run=batch.run_id) == batch.digest

        return self._retrying(lambda: self._guard(check))

    def deleted_by(self, run_id: str, program_code: str) -> bool:
        """Whether run ``run_id`` deleted rows of the program here: its deletion marker,
        written in the transaction that deleted (crash reconciliation logs those deletions
        under that run)."""

        def check() -> bool:
            with self._engine_().connect() as conn:
                if not conn.dialect.has_table(conn, MARKER_TABLE):
                    return False
                m = self.markers.c
                query = select(m.id).where(
                    m.program_code == program_code,
                    m.run_id == run_id,
                    m.batch_digest == DELETED,
                )
                return conn.execute(query.limit(1)).first() is not None

        return self._retrying(lambda: self._guard(check))

    def last_writers(self) -> dict[str, str]:
        """Program code -> the destination name that wrote the program's latest marker here,
        for every program last written under another name than this destination's (it was
        renamed, or another destination file points at the same database)."""

        def read() -> dict[str, str]:
            with self._engine_().connect() as conn:
                if not conn.dialect.has_table(conn, MARKER_TABLE):
                    return {}
                m = self.markers.c
                latest = (
                    select(m.program_code, func.max(m.id).label("id"))
                    .group_by(m.program_code)
                    .subquery()
                )
                query = (
                    select(m.program_code, m.destination)
                    .join(latest, latest.c.id == m.id)
                    .where(m.destination != self.name)
                )
                return {str(p): str(d) for p, d in conn.execute(query)}

        return self._retrying(lambda: self._guard(read))

    def writers(self) -> set[str]:
        """The other destination names that wrote a marker here (a renamed destination's old
        name, or a second destination file on this database): their open deliveries are this
        database's too (:func:`pipelines.submission.staging_copy.catch_up`)."""

        def read() -> set[str]:
            with self._engine_().connect() as conn:
                if not conn.dialect.has_table(conn, MARKER_TABLE):
                    return set()
                m = self.markers.c
                query = select(m.destination).where(m.destination != self.name).distinct()
                return {str(d) for d in conn.execute(query).scalars()}

        return self._retrying(lambda: self._guard(read))

    def check_agreement(self) -> None:
        """Refuse (:class:`AgreementChanged`, rule ``staging_db_agreement_changed``) when
        the database recorded other agreements or formats than this destination's; reads
        only (a run checks it at plan, before it takes over, settles or writes anything)."""
        if self.holds_under is None:
            return

        def check() -> None:
            with self._engine_().connect() as conn:
                if conn.dialect.has_table(conn, AGREEMENT_TABLE):
                    self._compare(conn)

        self._retrying(lambda: self._guard(check))

    def rebaseline(self) -> tuple[str, str, str] | None:
        """Record this destination's agreements and formats as what the database holds (the
        operator's step after a legitimate change of agreement or formats); the record it
        replaces (name, agreements, formats), None when there was none."""
        if self.holds_under is None:
            raise TerminalDeliveryError(f"{self.name}: no agreement to record")
        agreements, formats = self.holds_under

        def record() -> tuple[str, str, str] | None:
            with self._engine_().begin() as conn:
                self._write_lock(conn)
                self._create_tables(conn)
                before = self._recorded(conn)
                values = {
                    "destination": self.name,
                    "agreements": agreements,
                    "formats": formats,
                    "recorded_at": dt.datetime.now(dt.UTC),
                }
                if before is None:
                    conn.execute(insert(self.agreement), {"id": 1, **values})
                else:
                    conn.execute(update(self.agreement).where(self.agreement.c.id == 1), values)
                return before

        return self._retrying(lambda: self._guard(record))

    def where(self) -> str:
        """Which database this is, for messages: the host, port and database name (the file
        of a SQLite database), never a user or password; the URL's source when it cannot be
        read."""
        try:
            url = self._url().get_secret_value()
        except DeliveryError:
            return _source(self.settings)
        return describe_url(url) or _source(self.settings)

    def close(self) -> None:
        """Release the connection pool."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- internals ------------------------------------------------------------------------

    def _rows(self, name: str, frame: Any) -> list[dict[str, Any]]:
        from pipelines.mapping import RenderError, typed_rows

        spec = self.specs[name]
        try:
            rows = typed_rows(spec, frame)
        except RenderError as exc:
            raise TerminalDeliveryError(f"{self.name}: {exc}") from None
        keys = [tuple(row[k] for k in spec.key) for row in rows]
        if len(set(keys)) != len(keys):
            raise TerminalDeliveryError(f"{self.name}: {name} has two rows with the same key")
        return rows

    def _deliver_once(
        self, batch: Batch, prepared: list[tuple[Table, list[dict[str, Any]]]]
    ) -> DeliveryResult:
        accepted = set(batch.child_keys)
        location = f"{self.name}:{','.join(t.name for t, _ in prepared)}"

        def write() -> bool:
            with self._engine_().begin() as conn:
                self._write_lock(conn)
                self._create_tables(conn)
                self._baseline(conn)
                if self._latest_digest(conn, batch) == batch.digest:
                    return False
                for table, rows in prepared:
                    if rows:
                        conn.execute(_upsert(conn, table), rows)
                conn.execute(
                    insert(self.markers),
                    {
                        "destination": self.name,
                        "program_code": batch.program_code,
                        "run_id": batch.run_id,
                        "run_date": batch.run_date,
                        "batch_digest": batch.digest,
                        "row_counts": {a.name: len(a.frame) for a in batch.artifacts},
                        "delivered_at": dt.datetime.now(dt.UTC),
                    },
                )
                return True

        wrote = self._guard(write)
        written = zip(batch.artifacts, prepared, strict=True)
        rows = {a.name: len(r) for a, (_, r) in written if r} if wrote else {}
        return DeliveryResult(
            accepted=accepted, location=location, sent_nothing_new=not wrote, rows=rows
        )

    def _write_lock(self, conn: Connection) -> None:
        """The database's write lock, first thing in every write transaction, held until it
        ends: runs of two destination names on one staging database write one at a time
        (the second waits up to ``timeout`` seconds, then is told the database is busy,
        rule ``staging_db_one_writer``). PostgreSQL: a transaction advisory lock (one key:
        advisory locks are per database); SQLite: ``BEGIN IMMEDIATE``, its own write lock."""
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {max(1, int(self.timeout * 1000))}")
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        elif conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    def _recorded(self, conn: Connection) -> tuple[str, str, str] | None:
        a = self.agreement.c
        row = conn.execute(select(a.destination, a.agreements, a.formats).where(a.id == 1)).first()
        return None if row is None else (str(row[0]), str(row[1]), str(row[2]))

    def _compare(self, conn: Connection) -> tuple[str, str, str] | None:
        """The database's record, or :class:`TerminalDeliveryError` when it differs from this
        destination's agreements or formats."""
        assert self.holds_under is not None
        recorded = self._recorded(conn)
        if recorded is None:
            return None
        writer, agreements, formats = recorded
        mine_agreements, mine_formats = self.holds_under
        differs, values = [], []
        if agreements != mine_agreements:
            differs.append("agreements")
            values.append(f"agreements {agreements or '-'} (this one: {mine_agreements or '-'})")
        if formats != mine_formats:
            differs.append("formats")
            values.append(f"formats {formats or '-'} (this one: {mine_formats or '-'})")
        if differs:
            raise AgreementChanged(
                f"destination {self.name}: staging database {self.where()} was written under "
                f"other {' and '.join(differs)} (rule {AGREEMENT_RULE}): nothing written; if "
                f"intended, run {REBASELINE.format(name=self.name)}; it holds "
                f"{', '.join(values)}, recorded by destination {writer}. Its rows and markers "
                "would be read as held under this destination's agreement: give it its own "
                "staging database, or rebaseline once the change is agreed with the state"
            )
        return recorded

    def _baseline(self, conn: Connection) -> None:
        """Inside a write transaction, after :meth:`_write_lock`: this destination's
        agreements and formats checked against the database's record, or recorded as it
        when there is none."""
        if self.holds_under is None or self._compare(conn) is not None:
            return
        agreements, formats = self.holds_under
        conn.execute(
            insert(self.agreement),
            {
                "id": 1,
                "destination": self.name,
                "agreements": agreements,
                "formats": formats,
                "recorded_at": dt.datetime.now(dt.UTC),
            },
        )

    def _create_tables(self, conn: Connection) -> None:
        """The tables when missing; once per client, the markers' index by program on a
        marker table made before it existed."""
        self.metadata.create_all(conn, checkfirst=True)
        if not self._indexed:
            (index,) = (i for i in self.markers.indexes if i.name == LATEST_INDEX)
            index.create(conn, checkfirst=True)
            self._indexed = True

    def _latest_digest(
        self, conn: Connection, batch: Batch, *, of_run: str | None = None
    ) -> str | None:
        """The digest of the program's latest marker (``deleted`` after a deletion), whichever
        destination name wrote it (the tables are the database's, not the name's), deletion
        markers of run ``of_run`` left aside."""
        m = self.markers.c
        query = select(m.batch_digest).where(m.program_code == batch.program_code)
        if of_run is not None:
            query = query.where(~and_(m.batch_digest == DELETED, m.run_id == of_run))
        return conn.execute(query.order_by(m.id.desc()).limit(1)).scalar_one_or_none()

    def _engine_(self) -> Engine:
        if self._engine is None:
            url = self._url().get_secret_value()
            for plain in ("postgresql://", "postgres://"):  # an Airflow connection's URI
                if url.startswith(plain):
                    url = "postgresql+psycopg://" + url.removeprefix(plain)
            connect_args: dict[str, Any] = {}
            if url.startswith("postgresql"):
                connect_args["connect_timeout"] = max(1, int(self.timeout))
            elif url.startswith("sqlite"):
                connect_args["timeout"] = self.timeout
            try:
                self._engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True)
            except (sa_exc.ArgumentError, ImportError, ValueError):
                raise TerminalDeliveryError(
                    f"{self.name}: the staging database URL is not usable"
                ) from None
        return self._engine

    def _guard(self, work: Callable[[], T]) -> T:
        try:
            return work()
        except DeliveryError:
            raise
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
            if _locked(exc):
                raise TransientDeliveryError(
                    f"{self.name}: staging database {self.where()} is busy: a lock was not "
                    f"granted in {self.timeout:g} s (most likely its write lock, held by a run "
                    "of another destination name on this database or another task of this "
                    f"one); nothing of this write was kept (rule {WRITER_RULE}; "
                    f"{_describe(exc)})"
                ) from None
            raise TransientDeliveryError(
                f"{self.name}: staging database {self.where()} unreachable or busy "
                f"({_describe(exc)})"
            ) from None
        except sa_exc.SQLAlchemyError as exc:
            raise TerminalDeliveryError(
                f"{self.name}: staging database refused the batch ({_describe(exc)})"
            ) from None

    def _retrying(self, attempt: Callable[[], T]) -> T:
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=self.retry_backoff, max=max(self.retry_backoff, 60)),
            retry=retry_if_exception_type(TransientDeliveryError),
            reraise=True,
        )
        return retrying(attempt)

    def __repr__(self) -> str:
        return f"StagingDbDestination({self.name!r}, tables={sorted(self.tables)})"


def describe_url(url: str) -> str | None:
    """A database URL as messages may show it: ``host H:P, database D`` (``SQLite file F``),
    never the user or password; None when it cannot be parsed."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except (sa_exc.ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite file {parsed.database or ':memory:'}"
    port = f":{parsed.port}" if parsed.port else ""
    return f"host {parsed.host or 'localhost'}{port}, database {parsed.database or ''}"


def database_identity(settings: StagingDbSettings) -> tuple[frozenset[tuple[str, ...]], str]:
    """Which database ``settings`` point at, as comparable keys and as messages may show it
    (never a user or password). The keys: the name of the environment variable or Airflow
    connection (two files naming the same one write to the same database), and, when that
    name resolves here (:func:`_quiet_url`), the URL's backend, host, port and database (a
    SQLite file's real path): two files write to the same database when their keys meet."""
    if settings.url_env is not None:
        keys: set[tuple[str, ...]] = {("env", settings.url_env)}
    else:
        keys = {("connection", str(settings.connection_id))}
    url = _quiet_url(settings)
    shown = describe_url(url) if url else None
    if not url or shown is None:
        return frozenset(keys), f"the database {_source(settings)}"
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = parsed.database or ":memory:"
        keys.add(("sqlite", os.path.realpath(path) if path != ":memory:" else path))
        return frozenset(keys), shown
    backend = "postgresql" if backend == "postgres" else backend
    default_port: dict[str, int | str] = {"postgresql": 5432}
    port = str(parsed.port or default_port.get(backend, ""))
    host = parsed.host or "localhost"
    keys.add((backend, host, port, parsed.database or ""))
    return frozenset(keys), shown


def _quiet_url(settings: StagingDbSettings) -> str | None:
    """The URL ``settings`` name when it can be read here without asking anything remote:
    the environment variable's value; an Airflow connection's from its
    ``AIRFLOW_CONN_<ID>`` variable (URI or JSON), or from Airflow itself when this process
    already runs it (a worker). None otherwise (never an error: load falls back to names)."""
    if settings.url_env is not None:
        return os.environ.get(settings.url_env) or None
    conn_id = str(settings.connection_id)
    text = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}", "").strip()
    if text.startswith("{"):
        return _json_connection_url(text)
    if text:
        return text
    if "airflow.sdk" not in sys.modules:
        return None
    try:
        from airflow.sdk import Connection

        return str(Connection.get(conn_id).get_uri())
    except Exception:
        return None


def _json_connection_url(text: str) -> str | None:
    """An ``AIRFLOW_CONN_`` variable's JSON form as a URL of backend, host, port and database
    (no user or password: only the database's identity is wanted)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    kind = str(data.get("conn_type") or "")
    if kind == "sqlite":
        return f"sqlite:///{data.get('host') or data.get('schema') or ''}"
    if not kind or not data.get("host"):
        return None
    port = f":{data['port']}" if data.get("port") else ""
    return f"{kind}://{data['host']}{port}/{data.get('schema') or ''}"


def _source(settings: StagingDbSettings) -> str:
    """Where the URL is found, when the URL itself cannot be shown."""
    if settings.url_env is not None:
        return f"named by environment variable {settings.url_env}"
    return f"of Airflow connection {settings.connection_id}"


def _locked(exc: sa_exc.SQLAlchemyError) -> bool:
    """Whether ``exc`` is a write lock not granted in time (PostgreSQL ``lock_timeout``,
    SQLSTATE 55P03; SQLite busy)."""
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) == "55P03":
        return True
    return getattr(orig, "sqlite_errorname", None) in {"SQLITE_BUSY", "SQLITE_LOCKED"}


def _describe(exc: sa_exc.SQLAlchemyError) -> str:
    """Error class and SQLSTATE, never the statement or its parameters."""
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    name = type(orig).__name__ if orig is not None else type(exc).__name__
    return f"{name}, SQLSTATE {state}" if state else name


def _upsert(conn: Connection, table: Table) -> Any:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(table)
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table)
    else:
        raise TerminalDeliveryError(f"staging databases on {dialect} are not supported")
    keys = [c.name for c in table.primary_key.columns]
    updates = {c.name: statement.excluded[c.name] for c in table.columns if not c.primary_key}
    if not updates:
        return statement.on_conflict_do_nothing(index_elements=keys)
    return statement.on_conflict_do_update(index_elements=keys, set_=updates)
