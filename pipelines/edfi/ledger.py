"""The idempotency ledger of an Ed-Fi destination: ``sent_resources`` (schemas/delivery.py).

One row per (destination, resource, natural-key digest): the digest of the body last accepted,
the server's resource id, whether the resource is still there (``sent``) or was deleted
(``deleted``: a withdrawal, or an old copy a changed natural key left), the run that last
sent or deleted it, and the source fields the body last sent carried (``fields``, sorted;
``NULL`` on a row last sent before migration 0014). An unchanged record (same key, same body
digest, ``sent``) is not sent again; :meth:`SentLedger.for_children` finds what to delete on a
revocation; :meth:`SentLedger.sent_by_children` what a crashed run left, with its fields.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Engine, Table, func, insert, or_, select, update
from sqlalchemy.orm import Session

from pipelines.db import UPSERTS, session_scope
from pipelines.destinations.base import ChildKey
from schemas.delivery import SentResource

SENT, DELETED = "sent", "deleted"
PROGRAMS_RESOURCE = "programs"
_CHUNK = 500


@dataclass(frozen=True)
class LedgerEntry:
    """What the ledger knows about one resource at the destination."""

    resource: str
    key_digest: str
    payload_digest: str
    natural_key: dict[str, Any]
    program_code: str
    child_local_id: str
    resource_id: str | None
    status: str
    id: int | None = None
    fields: tuple[str, ...] | None = None
    """The source fields the body carried (a sent entry); ``None`` leaves the ledger's as
    they are (a deletion keeps what the deleted copy carried). Not read back by lookups."""

    @property
    def child_key(self) -> ChildKey | None:
        """The child the resource belongs to (``None`` for programs)."""
        return (self.program_code, self.child_local_id) if self.child_local_id else None


# a declarative model's ``__table__`` is typed ``FromClause``; this one is a ``Table``
_TABLE = cast(Table, SentResource.__table__)
_UPDATED = (
    "payload_digest",
    "natural_key",
    "program_code",
    "child_local_id",
    "status",
    "run_id",
    "updated_at",
)
_COLUMNS = (
    SentResource.resource,
    SentResource.key_digest,
    SentResource.payload_digest,
    SentResource.natural_key,
    SentResource.program_code,
    SentResource.child_local_id,
    SentResource.resource_id,
    SentResource.status,
    SentResource.id,
)


def _entry(row: Any) -> LedgerEntry:
    return LedgerEntry(row[0], row[1], row[2], dict(row[3]), *row[4:])


class SentLedger:
    """The ``sent_resources`` rows of one destination."""

    def __init__(self, engine: Engine, destination: str) -> None:
        self.engine, self.destination = engine, destination

    def lookup(
        self, keys: Iterable[tuple[str, str]], program_code: str | None = None
    ) -> dict[tuple[str, str], LedgerEntry]:
        """The entries for (resource, key digest) pairs, whatever their status. Given the
        batch's ``program_code``, one query reads that program's rows (and every program
        resource) instead of looking the digests up in chunks."""
        wanted = set(keys)
        found: dict[tuple[str, str], LedgerEntry] = {}
        if program_code is not None:
            queries = [
                select(*_COLUMNS).where(
                    SentResource.destination == self.destination,
                    or_(
                        SentResource.program_code == program_code,
                        SentResource.resource == PROGRAMS_RESOURCE,
                    ),
                )
            ]
        else:
            digests = sorted({digest for _, digest in wanted})
            queries = [
                select(*_COLUMNS).where(
                    SentResource.destination == self.destination,
                    SentResource.key_digest.in_(digests[start : start + _CHUNK]),
                )
                for start in range(0, len(digests), _CHUNK)
            ]
        with session_scope(self.engine) as session:
            for query in queries:
                for row in session.execute(query):
                    if (row[0], row[1]) in wanted:
                        found[(row[0], row[1])] = _entry(row)
        return found

    def held_by_program(self, program_code: str) -> dict[tuple[str, str], LedgerEntry]:
        """Every entry of ``program_code``'s children, and every program resource, by
        (resource, key digest): what a delivery of that program compares against."""
        query = select(*_COLUMNS).where(
            SentResource.destination == self.destination,
            or_(
                SentResource.program_code == program_code,
                SentResource.resource == PROGRAMS_RESOURCE,
            ),
        )
        with session_scope(self.engine) as session:
            return {(row[0], row[1]): _entry(row) for row in session.execute(query)}

    def record(self, entries: Sequence[LedgerEntry], run_id: str) -> None:
        """Write ``entries`` in one transaction: an upsert on (destination, resource, key
        digest) — a new key is inserted, a known one updated (its resource id kept when the
        entry has none; its child, when a child moved programs under the same key)."""
        if not entries:
            return
        now = dt.datetime.now(dt.UTC)
        rows = [
            {
                "destination": self.destination,
                "resource": e.resource,
                "key_digest": e.key_digest,
                "payload_digest": e.payload_digest,
                "natural_key": e.natural_key,
                "program_code": e.program_code,
                "child_local_id": e.child_local_id,
                "resource_id": e.resource_id,
                "status": e.status,
                "run_id": run_id,
                "updated_at": now,
                "fields": None if e.fields is None else sorted(e.fields),
            }
            for e in entries
        ]
        with session_scope(self.engine) as session:
            dialect = session.get_bind().dialect.name
            if dialect not in UPSERTS:
                self._record_portably(session, rows)
                return
            statement = UPSERTS[dialect](_TABLE)
            excluded = statement.excluded
            statement = statement.on_conflict_do_update(
                index_elements=["destination", "resource", "key_digest"],
                set_={
                    **{name: excluded[name] for name in _UPDATED},
                    "resource_id": func.coalesce(excluded.resource_id, _TABLE.c.resource_id),
                    "fields": func.coalesce(excluded.fields, _TABLE.c.fields),
                },
            )
            session.execute(statement, rows)

    def _record_portably(self, session: Session, rows: list[dict[str, Any]]) -> None:
        """Look up, then insert or update (databases without ``ON CONFLICT``)."""
        known = self.lookup((r["resource"], r["key_digest"]) for r in rows)
        inserts = [r for r in rows if (r["resource"], r["key_digest"]) not in known]
        new_fields: list[dict[str, Any]] = []
        same_fields: list[dict[str, Any]] = []  # an entry without fields keeps the stored ones
        for row in rows:
            previous = known.get((row["resource"], row["key_digest"]))
            if previous is not None:
                resource_id = row["resource_id"] or previous.resource_id
                changed = {**row, "id": previous.id, "resource_id": resource_id}
                if row["fields"] is None:
                    del changed["fields"]
                (same_fields if row["fields"] is None else new_fields).append(changed)
        if inserts:
            session.execute(insert(_TABLE), inserts)
        for updates in (new_fields, same_fields):
            if updates:
                session.execute(update(SentResource), updates)

    def sent_by(self, run_id: str, program_code: str) -> set[tuple[str, str, str]]:
        """(resource, key digest, body digest) of each resource of ``program_code`` that run
        ``run_id`` was the last to send and the API still holds (reconciling a run that
        crashed before its disclosures were logged)."""
        query = select(
            SentResource.resource, SentResource.key_digest, SentResource.payload_digest
        ).where(
            SentResource.destination == self.destination,
            SentResource.program_code == program_code,
            SentResource.run_id == run_id,
            SentResource.status == SENT,
        )
        with session_scope(self.engine) as session:
            return {(r[0], r[1], r[2]) for r in session.execute(query)}

    def sent_by_children(
        self, run_id: str, program_code: str
    ) -> dict[tuple[ChildKey, str], tuple[str, ...] | None]:
        """(child, resource) of each resource of ``program_code``'s children that run
        ``run_id`` was the last to send and the API still holds, with the source fields its
        bodies carried (sorted; a child's several resources of one kind, e.g. two school
        associations, together), or ``None`` when a row of them was written before the ledger
        kept fields (migration 0014): what they carried is not known."""
        query = select(
            SentResource.program_code,
            SentResource.child_local_id,
            SentResource.resource,
            SentResource.fields,
        ).where(
            SentResource.destination == self.destination,
            SentResource.program_code == program_code,
            SentResource.run_id == run_id,
            SentResource.status == SENT,
            SentResource.child_local_id != "",
        )
        found: dict[tuple[ChildKey, str], set[str] | None] = {}
        with session_scope(self.engine) as session:
            for row in session.execute(query):
                key = ((row[0], row[1]), row[2])
                names = found.setdefault(key, set())
                if row[3] is None or names is None:
                    found[key] = None
                else:
                    names.update(row[3])
        return {k: None if v is None else tuple(sorted(v)) for k, v in found.items()}

    def deleted_by(self, run_id: str, program_code: str) -> list[LedgerEntry]:
        """The resources of ``program_code``'s children that run ``run_id`` deleted (a
        withdrawal, or an old copy a changed natural key left) and that nothing sent since
        (reconciling a run that crashed before its deletions were logged)."""
        query = select(*_COLUMNS).where(
            SentResource.destination == self.destination,
            SentResource.program_code == program_code,
            SentResource.run_id == run_id,
            SentResource.status == DELETED,
            SentResource.child_local_id != "",
        )
        with session_scope(self.engine) as session:
            return [_entry(row) for row in session.execute(query)]

    def for_children(self, child_keys: Iterable[ChildKey]) -> list[LedgerEntry]:
        """Every resource still held (``sent``) for these children."""
        wanted = set(child_keys)
        by_program: dict[str, list[str]] = {}
        for program_code, local_id in wanted:
            by_program.setdefault(program_code, []).append(local_id)
        entries: list[LedgerEntry] = []
        with session_scope(self.engine) as session:
            for program_code, local_ids in by_program.items():
                for start in range(0, len(local_ids), _CHUNK):
                    query = select(*_COLUMNS).where(
                        SentResource.destination == self.destination,
                        SentResource.program_code == program_code,
                        SentResource.child_local_id.in_(local_ids[start : start + _CHUNK]),
                        SentResource.status == SENT,
                    )
                    entries.extend(_entry(row) for row in session.execute(query))
        return entries
