"""The idempotency ledger of an Ed-Fi destination: ``sent_resources`` (schemas/delivery.py).

One row per (destination, resource, natural-key digest): the digest of the body last accepted,
the server's resource id, and whether the resource is still there (``sent``) or was deleted
after a revocation (``deleted``). An unchanged record (same key, same body digest, ``sent``)
is not sent again; :meth:`SentLedger.for_children` finds what to delete on a revocation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, update

from pipelines.db import session_scope
from pipelines.destinations.base import ChildKey
from schemas.delivery import SentResource

SENT, DELETED = "sent", "deleted"
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

    @property
    def child_key(self) -> ChildKey | None:
        """The child the resource belongs to (``None`` for programs)."""
        return (self.program_code, self.child_local_id) if self.child_local_id else None


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
    return LedgerEntry(*row[:3], dict(row[3]), *row[4:])


class SentLedger:
    """The ``sent_resources`` rows of one destination."""

    def __init__(self, engine: Engine, destination: str) -> None:
        self.engine, self.destination = engine, destination

    def lookup(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], LedgerEntry]:
        """The entries for (resource, key digest) pairs, whatever their status."""
        wanted = set(keys)
        digests = sorted({digest for _, digest in wanted})
        found: dict[tuple[str, str], LedgerEntry] = {}
        with session_scope(self.engine) as session:
            for start in range(0, len(digests), _CHUNK):
                query = select(*_COLUMNS).where(
                    SentResource.destination == self.destination,
                    SentResource.key_digest.in_(digests[start : start + _CHUNK]),
                )
                for row in session.execute(query):
                    if (row[0], row[1]) in wanted:
                        found[(row[0], row[1])] = _entry(row)
        return found

    def record(
        self,
        entries: Sequence[LedgerEntry],
        run_id: str,
        known: Mapping[tuple[str, str], LedgerEntry] | None = None,
    ) -> None:
        """Write ``entries`` (insert new keys, update known ones), in one transaction;
        ``known`` (what :meth:`lookup` found for them) saves looking them up again."""
        if not entries:
            return
        if known is None:
            known = self.lookup((e.resource, e.key_digest) for e in entries)
        now = dt.datetime.now(dt.UTC)
        inserts, updates = [], []
        for entry in entries:
            values = {
                "resource": entry.resource,
                "key_digest": entry.key_digest,
                "payload_digest": entry.payload_digest,
                "natural_key": entry.natural_key,
                "program_code": entry.program_code,
                "child_local_id": entry.child_local_id,
                "resource_id": entry.resource_id,
                "status": entry.status,
                "run_id": run_id,
                "updated_at": now,
            }
            previous = known.get((entry.resource, entry.key_digest))
            if previous is None:
                inserts.append({"destination": self.destination, **values})
            else:
                if entry.resource_id is None:
                    values["resource_id"] = previous.resource_id
                updates.append({"id": previous.id, **values})
        with session_scope(self.engine) as session:
            if inserts:
                session.execute(insert(SentResource), inserts)
            if updates:
                session.execute(update(SentResource), updates)

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
