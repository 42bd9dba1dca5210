"""The disclosure log and the redaction audit: append-only, hash-chained, optionally keyed.

Each ledger (``disclosures`` = ``disclosure_log``, ``redactions`` = ``redaction_audit``) is a
chain. Entry ``seq`` runs 1, 2, 3, ... with no gap; ``prev_hash`` is the previous entry's
``entry_hash`` (64 zeros for seq 1); ``entry_hash`` is the digest of the entry's canonical
form: sorted-key compact JSON (UTF-8) of every column except ``id`` and ``entry_hash`` (so
``seq`` and ``prev_hash`` are covered), dates as ISO ``YYYY-MM-DD``, datetimes in UTC ISO 8601.

**Keyed chain.** When ``$DATASHARE_LEDGER_KEY`` is set (32 characters or more, e.g.
``python -c "import secrets; print(secrets.token_urlsafe(32))"``), the digest is
HMAC-SHA256 under that key; otherwise plain SHA-256. Unkeyed, the chain shows accidental
damage and naive tampering, but anyone who can write to the database can rewrite an entry and
recompute every later hash. Keyed, they cannot without the key: keep the key out of the
database and its backups (a secrets backend or the environment of the writer and the
verifier), use the same key to write and to verify, and never mix keyed and unkeyed appends
in one ledger (nothing here re-signs an old chain: a new key means a new ledger database).

**What no chain shows by itself**: removing the newest entries (the tail). Anchor the head:
:func:`verify` reports ``head_seq``/``head_hash``; keep them elsewhere (a run report, a
ticket) and pass them back as ``anchor`` to check that the chain still reaches them. Every run
anchors both heads itself (``privacy/anchors.py``).

**A wrong key** makes every entry fail its hash while every link still holds: :func:`verify`
then reports one ``key`` break ("the key looks wrong") instead of thousands of edited entries.

**Concurrency.** Appends take a per-ledger lock for the rest of the caller's transaction: a
transaction-scoped advisory lock on PostgreSQL, the database write lock (``BEGIN IMMEDIATE``)
on SQLite. Two writers therefore never read the same chain head; ``seq`` is unique besides
(under an isolation stricter than PostgreSQL's default READ COMMITTED, a writer that read the
ledger before another's append fails on that constraint rather than fork the chain).

Entries name children by program code and local id (or pseudonym) only, never by value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, Literal

from sqlalchemy import RowMapping, Table, insert, select, text
from sqlalchemy.orm import Session

from privacy.errors import LedgerError
from privacy.ledger_columns import (
    Columns,
    Encoded,
    Part,
    Segment,
    aware_utc,
    chain,
    copy_texts,
    joined,
)
from schemas.ledgers import DisclosureEntry, RedactionEntry

__all__ = [
    "GENESIS",
    "LEDGER_KEY_ENV",
    "Break",
    "Columns",
    "Disclosure",
    "LedgerName",
    "LoggedDisclosure",
    "LoggedRedaction",
    "Redaction",
    "VerifyReport",
    "append_columns",
    "append_disclosures",
    "append_redactions",
    "appending",
    "canonical",
    "digest",
    "disclosures_for_child",
    "entry_matches",
    "ledger_key",
    "ledger_table",
    "programs_for_child",
    "redactions",
    "verify",
]

LedgerName = Literal["disclosures", "redactions"]
LEDGER_KEY_ENV = "DATASHARE_LEDGER_KEY"
GENESIS = "0" * 64
MIN_KEY_LENGTH = 32
ACTIONS = frozenset({"disclose", "delete"})
_INSERT_BATCH = 1_000  # entries hashed and sent at a time
_STREAM_BATCH = 2_000
_MAX_BREAKS = 100
_SEQ_SEARCH = 256  # how far from its place an out-of-order entry is looked for


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, kw_only=True)
class Disclosure:
    """One child record disclosed to one recipient (the content of a log entry)."""

    run_id: str
    program_code: str
    child_local_id: str
    recipient_code: str
    agreement_id: str
    legal_basis: str
    purpose: str
    fields: tuple[str, ...]
    run_date: dt.date
    payload_digest: str
    action: str = "disclose"
    disclosed_at: dt.datetime = dc_field(default_factory=_utcnow)


@dataclass(frozen=True, kw_only=True)
class LoggedDisclosure(Disclosure):
    """A disclosure as read back from the log, with its place in the chain."""

    id: int
    seq: int


@dataclass(frozen=True, kw_only=True)
class Redaction:
    """A child withheld (``field`` None) or one field removed, with the reason and rule."""

    run_id: str
    program_code: str
    subject: str
    agreement_id: str
    reason_code: str
    rule: str
    field: str | None = None
    recorded_at: dt.datetime = dc_field(default_factory=_utcnow)


@dataclass(frozen=True, kw_only=True)
class LoggedRedaction(Redaction):
    """A redaction as read back from the audit, with its place in the chain."""

    id: int
    seq: int


@dataclass(frozen=True)
class _Ledger:
    table: Table
    lock_id: int
    time_column: str

    @property
    def content_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.table.columns if c.name not in ("id", "entry_hash"))


def _lock_id(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


_LEDGERS: dict[str, _Ledger] = {
    "disclosures": _Ledger(
        DisclosureEntry.__table__,  # type: ignore[arg-type]
        _lock_id("datashare.disclosure_log"),
        "disclosed_at",
    ),
    "redactions": _Ledger(
        RedactionEntry.__table__,  # type: ignore[arg-type]
        _lock_id("datashare.redaction_audit"),
        "recorded_at",
    ),
}


# -- hashing -------------------------------------------------------------------------------


def ledger_key() -> bytes | None:
    """The chain key from ``$DATASHARE_LEDGER_KEY``, or None (unkeyed SHA-256).

    Raises :class:`LedgerError` (fail closed) when it is set but shorter than 32 characters.
    """
    value = os.environ.get(LEDGER_KEY_ENV)
    if not value:
        return None
    if len(value) < MIN_KEY_LENGTH:
        raise LedgerError(f"{LEDGER_KEY_ENV} is shorter than {MIN_KEY_LENGTH} characters")
    return value.encode()


def _digester(key: bytes | None):  # type: ignore[no-untyped-def]
    if key is None:
        return lambda data: hashlib.sha256(data).hexdigest()
    base = hmac.new(key, digestmod=hashlib.sha256)  # keyed once, copied per entry

    def keyed(data: bytes) -> str:
        mac = base.copy()
        mac.update(data)
        return mac.hexdigest()

    return keyed


def digest(content: Mapping[str, Any]) -> str:
    """The digest of ``content`` (its canonical form) under the current ledger key."""
    return str(_digester(ledger_key())(canonical(content)))


def _json_default(value: Any) -> str:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # SQLite hands back the stored UTC wall time, naive
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"a ledger column holds an unexpected type: {type(value).__name__}")


def canonical(content: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash covers: sorted-key compact JSON of its content columns."""
    return json.dumps(
        dict(content),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=_json_default,
    ).encode()


# -- appending -----------------------------------------------------------------------------
#
# An append works on columns (column name -> one value per entry), never on an object per
# entry (:mod:`privacy.ledger_columns`): each distinct value of a column is checked and encoded
# once, the canonical text of every entry is joined from its columns' pieces around the one
# part that waits for the previous hash (``prev_hash``), and PostgreSQL receives the rows as
# ``COPY`` text built the same way.


def _encoded(ledger: _Ledger, columns: Columns) -> tuple[list[Encoded], int]:
    """Every column of ``columns`` checked (names, lengths, types) and encoded; the count."""
    expected = set(ledger.content_columns) - {"seq", "prev_hash"}
    if set(columns) != expected:
        missing, extra = sorted(expected - set(columns)), sorted(set(columns) - expected)
        raise LedgerError(
            f"ledger columns do not match the ledger: missing {missing}, extra {extra}"
        )
    lengths = {len(values) for values in columns.values()}
    if len(lengths) != 1:
        raise LedgerError("ledger columns of one append must have the same length")
    encoded = [Encoded(ledger.table.c[name], columns[name]) for name in sorted(columns)]
    if "action" in columns and not set(columns["action"]) <= ACTIONS:
        raise LedgerError(f"disclosure action must be one of {sorted(ACTIONS)}")
    return encoded, lengths.pop()


def _lock(session: Session, ledger: _Ledger) -> None:
    """Hold the ledger's append lock until the caller's transaction ends."""
    connection = session.connection()
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ledger.lock_id})
    elif dialect == "sqlite":
        dbapi = connection.connection.dbapi_connection
        # Not yet in a transaction: take the write lock now. Already in one: a write of this
        # transaction holds it (pysqlite begins a transaction only before a write).
        if dbapi is not None and not dbapi.in_transaction:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


Write = Callable[[list[Part], dict[str, list[Any]], list[str]], None]


@contextmanager
def _writer(session: Session, table: Table) -> Iterator[Write]:
    """A function that writes parts of the entries (with their ``seq``, ``prev_hash`` and
    ``entry_hash``): ``COPY ... FROM STDIN`` text on PostgreSQL (psycopg 3), built column by
    column, multi-row inserts elsewhere; either way in the caller's transaction."""
    connection = session.connection()
    driver = connection.connection.driver_connection
    names = [c.name for c in table.columns if c.name != "id"]
    if driver is None or connection.dialect.name != "postgresql" or not hasattr(driver, "pgconn"):

        def insert_rows(
            parts: list[Part], chained: dict[str, list[Any]], hashes: list[str]
        ) -> None:
            values = {p.name: p.stored() for p in parts} | chained | {"entry_hash": hashes}
            rows = zip(*map(values.get, names), strict=True)
            session.execute(insert(table), [dict(zip(names, row, strict=True)) for row in rows])

        yield insert_rows
        return
    from psycopg import sql

    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    with driver.cursor() as cursor, cursor.copy(statement) as copy:

        def copy_rows(parts: list[Part], chained: dict[str, list[Any]], hashes: list[str]) -> None:
            fields: dict[str, Segment] = {p.name: p.copy_fields() for p in parts}
            fields["seq"] = list(map(str, chained["seq"]))
            first, *rest = chained["prev_hash"]  # the rest are hex digests: nothing to escape
            fields["prev_hash"] = [*copy_texts([first]), *rest]
            fields["entry_hash"] = hashes
            line: list[Segment] = []
            for name in names:
                line += [fields[name], "\t"]
            line[-1] = "\n"
            copy.write("".join(joined(line, len(hashes))))

        yield copy_rows


def append_columns(session: Session, ledger: LedgerName, columns: Columns) -> list[int]:
    """Append entries given as columns (:data:`Columns`) to ``ledger`` in the caller's
    transaction; returns their ``seq``s. The chain, the canonical form and the stored rows are
    exactly those of the same entries appended one by one.

    Nothing is written when any value is invalid (:class:`LedgerError`).
    """
    with appending(session, ledger, columns) as seqs:
        return seqs


@contextmanager
def appending(session: Session, ledger: LedgerName, columns: Columns) -> Iterator[list[int]]:
    """:func:`append_columns` whose block runs while the server stores the entries: it gets
    their ``seq``s once every entry is sent, and the append is done when it ends. The block
    must not use the session (on PostgreSQL the ``COPY`` is still open): it is for the
    caller's own work, which the server's would otherwise wait for.

    Every entry is checked, the lock taken, then the entries are chained and written part by
    part: on PostgreSQL the server stores one part while the next is hashed."""
    spec = _LEDGERS[ledger]
    table = spec.table
    encoded, count = _encoded(spec, columns)  # validate everything before touching the ledger
    if not count:
        yield []
        return
    key = ledger_key()
    _lock(session, spec)
    head = session.execute(
        select(table.c.seq, table.c.entry_hash).order_by(table.c.seq.desc()).limit(1)
    ).first()
    seq, prev = (int(head.seq), str(head.entry_hash)) if head else (0, GENESIS)
    seqs = list(range(seq + 1, seq + 1 + count))
    with _writer(session, table) as write:
        for start in range(0, count, _INSERT_BATCH):
            stop = min(start + _INSERT_BATCH, count)
            parts = [c.part(start, stop) for c in encoded]
            hashes = chain(parts, seqs[start:stop], prev, key)
            write(parts, {"seq": seqs[start:stop], "prev_hash": [prev, *hashes[:-1]]}, hashes)
            prev = hashes[-1]
        yield seqs


def _disclosure_row(item: Disclosure) -> dict[str, Any]:
    """The content of ``item`` as stored."""
    if item.action not in ACTIONS:
        raise LedgerError(f"disclosure action must be one of {sorted(ACTIONS)}")
    if isinstance(item.fields, str):
        raise LedgerError("disclosure fields must be a sequence of field names")
    return {
        "run_id": str(item.run_id),
        "program_code": str(item.program_code),
        "child_local_id": str(item.child_local_id),
        "recipient_code": str(item.recipient_code),
        "agreement_id": str(item.agreement_id),
        "legal_basis": str(item.legal_basis),
        "purpose": str(item.purpose),
        "fields": tuple(str(f) for f in item.fields),
        "action": str(item.action),
        "run_date": item.run_date,
        "disclosed_at": aware_utc(item.disclosed_at, "disclosed_at"),
        "payload_digest": str(item.payload_digest),
    }


def _redaction_row(item: Redaction) -> dict[str, Any]:
    """The content of ``item`` as stored."""
    return {
        "run_id": str(item.run_id),
        "program_code": str(item.program_code),
        "subject": str(item.subject),
        "agreement_id": str(item.agreement_id),
        "field": None if item.field is None else str(item.field),
        "reason_code": str(item.reason_code),
        "rule": str(item.rule),
        "recorded_at": aware_utc(item.recorded_at, "recorded_at"),
    }


def _as_columns(name: str, rows: Iterable[dict[str, Any]]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {
        c: [] for c in _LEDGERS[name].content_columns if c not in ("seq", "prev_hash")
    }
    for row in rows:
        for column, values in columns.items():
            values.append(row[column])
    return columns


def append_disclosures(session: Session, items: Iterable[Disclosure]) -> list[int]:
    """Append disclosures to the log in the caller's transaction; returns their ``seq``s.

    Nothing is written when any item is invalid (:class:`LedgerError`).
    """
    rows = (_disclosure_row(i) for i in items)
    return append_columns(session, "disclosures", _as_columns("disclosures", rows))


def append_redactions(session: Session, items: Iterable[Redaction]) -> list[int]:
    """Append redactions to the audit in the caller's transaction; returns their ``seq``s."""
    rows = (_redaction_row(i) for i in items)
    return append_columns(session, "redactions", _as_columns("redactions", rows))


# -- verifying -----------------------------------------------------------------------------

BreakKind = Literal["edited", "deleted", "reordered", "relinked", "anchor", "key", "checkpoint"]


@dataclass(frozen=True)
class Break:
    """Where a chain is broken and how: ``seq`` and ``entry_id`` of the entry found wrong."""

    seq: int | None
    entry_id: int | None
    kind: BreakKind
    detail: str

    def __str__(self) -> str:
        where = "chain" if self.seq is None else f"seq {self.seq}"
        if self.seq is not None and self.entry_id is not None:
            where += f" (id {self.entry_id})"
        return f"{where}: {self.kind}: {self.detail}"


@dataclass
class VerifyReport:
    """The outcome of walking one ledger's chain: the whole of it (``since`` 0), or the entries
    after a verified-through checkpoint at seq ``since`` (incremental)."""

    ledger: str
    keyed: bool
    entries: int = 0
    since: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    breaks: list[Break] = dc_field(default_factory=list)
    more_breaks: int = 0
    wrong_key: bool = False

    @property
    def ok(self) -> bool:
        """True when no break was found."""
        return not self.breaks

    @property
    def verified_range(self) -> str:
        """What was walked, in words: every entry, or the seqs after the checkpoint."""
        if not self.since:
            return f"full: every entry, seq 1..{self.head_seq}"
        if self.head_seq <= self.since:
            return f"incremental: nothing after the checkpoint at seq {self.since}"
        return f"incremental: seq {self.since + 1}..{self.head_seq}, after the checkpoint"

    def summary(self) -> str:
        """One line: ledger, size, what was walked, result."""
        mode = "HMAC-SHA256 (keyed)" if self.keyed else "SHA-256 (unkeyed)"
        state = "intact" if self.ok else f"BROKEN at {len(self.breaks) + self.more_breaks} place(s)"
        if self.wrong_key:
            state = "NOT VERIFIED: the key looks wrong"
        return (
            f"{self.ledger}: {self.entries} entries, head seq {self.head_seq} "
            f"({self.verified_range}), {mode}: {state}"
        )


class _Walk:
    """State of one walk along a chain (one pass, in seq order, constant memory)."""

    def __init__(self, session: Session, ledger: _Ledger, report: VerifyReport) -> None:
        self.session = session
        self.ledger = ledger
        self.report = report
        self.columns = ledger.content_columns
        self.digest = _digester(ledger_key())
        self.expected = 1
        self.prev_hash = GENESIS
        self.prev_seq = 0
        self.shift: int | None = None  # original seq minus current seq, for a moved run
        self.moved: set[int] = set()
        self.hashes_ok = 0  # entries whose content matches their entry_hash
        self.links_ok = True  # every entry follows the one before (seq and prev_hash)
        self.first: tuple[int, int, dict[str, Any], str] | None = None  # seq, id, content, hash

    def add(self, item: Break) -> None:
        if len(self.report.breaks) < _MAX_BREAKS:
            self.report.breaks.append(item)
        else:
            self.report.more_breaks += 1

    def hash_at(self, content: dict[str, Any], seq: int) -> str:
        return str(self.digest(canonical({**content, "seq": seq})))

    def original_seq(self, content: dict[str, Any], stored: str, seq: int) -> int | None:
        """The seq this entry's hash was made with, searched near its place, else None."""
        if len(self.report.breaks) >= _MAX_BREAKS:
            return None
        candidates: list[int] = [seq + self.shift] if self.shift else []
        for step in range(1, _SEQ_SEARCH + 1):
            candidates += [seq + step, seq - step]
        for candidate in candidates:
            if candidate > 0 and hmac.compare_digest(self.hash_at(content, candidate), stored):
                return candidate
        return None

    def find_by_hash(self, entry_hash: str) -> tuple[int, int] | None:
        table = self.ledger.table
        row = self.session.execute(
            select(table.c.id, table.c.seq).where(table.c.entry_hash == entry_hash).limit(1)
        ).first()
        return (int(row.id), int(row.seq)) if row else None

    def step(self, row: RowMapping) -> None:
        seq, entry_id = int(row["seq"]), int(row["id"])
        stored, prev_hash = str(row["entry_hash"]), str(row["prev_hash"])
        content = {c: row[c] for c in self.columns}
        content_ok = hmac.compare_digest(str(self.digest(canonical(content))), stored)
        link_ok = prev_hash == self.prev_hash
        gap = seq != self.expected
        self.hashes_ok += content_ok
        self.links_ok = self.links_ok and link_ok and not gap
        if self.first is None:
            self.first = (seq, entry_id, content, stored)
        if gap:
            missing = seq - self.expected
            detail = (
                f"{missing} entr{'y' if missing == 1 else 'ies'} missing before it "
                f"(seq {self.expected}..{seq - 1}), after seq {self.prev_seq}"
            )
            self.add(Break(seq, entry_id, "deleted", detail))
        if not content_ok:
            self.misplaced_or_edited(content, stored, prev_hash, seq, entry_id, link_ok)
        else:
            self.shift = None
            if not link_ok and not gap:
                self.relinked(prev_hash, seq, entry_id)
        self.prev_hash, self.prev_seq, self.expected = stored, seq, seq + 1
        self.report.entries += 1
        self.report.head_seq, self.report.head_hash = seq, stored

    def misplaced_or_edited(
        self,
        content: dict[str, Any],
        stored: str,
        prev_hash: str,
        seq: int,
        entry_id: int,
        link_ok: bool,
    ) -> None:
        origin = self.original_seq(content, stored, seq)
        if origin is None:
            self.shift = None
            detail = "content does not match its entry_hash (changed after it was written)"
            self.add(Break(seq, entry_id, "edited", detail))
            return
        shift = origin - seq
        continuing = self.shift == shift and link_ok
        self.shift = shift
        self.moved.add(entry_id)
        if continuing:
            return  # the same renumbering as the entry before: reported there
        if prev_hash != GENESIS and self.find_by_hash(prev_hash) is None:
            detail = (
                f"written at seq {origin}, now at seq {seq}; the entry before it is gone "
                "(an entry was deleted and later entries renumbered)"
            )
            self.add(Break(seq, entry_id, "deleted", detail))
        else:
            self.add(
                Break(seq, entry_id, "reordered", f"written at seq {origin}, now at seq {seq}")
            )

    def relinked(self, prev_hash: str, seq: int, entry_id: int) -> None:
        predecessor = self.find_by_hash(prev_hash)
        if predecessor is not None and predecessor[0] in self.moved:
            return  # already reported: its predecessor was moved
        if predecessor is not None:
            detail = (
                f"its predecessor is id {predecessor[0]} at seq {predecessor[1]}, "
                f"not seq {self.prev_seq}"
            )
            self.add(Break(seq, entry_id, "reordered", detail))
            return
        detail = (
            f"prev_hash does not match the entry_hash of seq {self.prev_seq}: that entry was "
            "rewritten and re-hashed, or replaced"
        )
        self.add(Break(seq, entry_id, "relinked", detail))


def _stream(session: Session, table: Table, after: int = 0) -> Iterator[RowMapping]:
    query = select(table).order_by(table.c.seq)
    if after:
        query = query.where(table.c.seq > after)
    result = session.execute(query.execution_options(yield_per=_STREAM_BATCH))
    yield from result.mappings()


def verify(
    session: Session,
    ledger: LedgerName,
    *,
    anchor: tuple[int, str] | None = None,
    start: tuple[int, str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Walk ``ledger`` in seq order and report every break: where (seq, id) and what.

    Finds an edited entry (its hash no longer matches), a deleted one (a seq gap, or a
    renumbered run whose predecessor is gone), a reordered one (hash made at another seq, or
    a predecessor elsewhere), a re-hashed one (the next entry's link breaks). ``anchor`` =
    (seq, entry_hash) recorded earlier: the chain must still contain it (catches a cut tail).

    ``start`` = (seq, entry_hash) of an entry already verified (a checkpoint, checked by the
    caller: ``privacy/checkpoints.py``): only the entries after it are walked, the first of
    them linked to ``entry_hash``. An ``anchor`` at or before it is looked up, not walked.
    ``progress`` is called with the count of entries walked so far, every few thousand.
    """
    spec = _LEDGERS[ledger]
    report = VerifyReport(ledger=ledger, keyed=ledger_key() is not None)
    walk = _Walk(session, spec, report)
    after = 0
    if start is not None and start[0] > 0:
        after = report.since = start[0]
        walk.expected, walk.prev_seq = after + 1, after
        walk.prev_hash = report.head_hash = start[1]
        report.head_seq = after
    anchor_seen = False
    if anchor is not None and 0 < anchor[0] <= after:
        anchor_seen = True
        found = session.execute(
            select(spec.table.c.id, spec.table.c.entry_hash).where(spec.table.c.seq == anchor[0])
        ).first()
        if found is None or found.entry_hash != anchor[1]:
            state = "is missing" if found is None else "differs from the anchor"
            entry_id = None if found is None else int(found.id)
            walk.add(Break(anchor[0], entry_id, "anchor", f"anchored seq {anchor[0]} {state}"))
    for row in _stream(session, spec.table, after):
        walk.step(row)
        if progress is not None and report.entries % _STREAM_BATCH == 0:
            progress(report.entries)
        if anchor is not None and int(row["seq"]) == anchor[0]:
            anchor_seen = True
            if row["entry_hash"] != anchor[1]:
                walk.add(Break(anchor[0], int(row["id"]), "anchor", "hash differs from the anchor"))
    if progress is not None:
        progress(report.entries)
    if anchor is not None and anchor[0] > 0 and not anchor_seen:
        detail = f"anchored seq {anchor[0]} is missing; the chain ends at seq {report.head_seq}"
        walk.add(Break(anchor[0], None, "anchor", detail))
    if walk.first is not None and walk.hashes_ok == 0 and walk.links_ok:
        _blame_the_key(report, walk.first)  # one entry alone could be an edit: see there
    return report


def ledger_table(ledger: LedgerName) -> Table:
    """The table of ``ledger`` (for the checks around a walk: checkpoints, anchors)."""
    return _LEDGERS[ledger].table


def entry_matches(ledger: LedgerName, row: Mapping[str, Any] | RowMapping) -> bool:
    """Whether one stored entry's content (a full row of its table) still gives its
    ``entry_hash`` under the current key: one entry checked without walking the chain."""
    content = {c: row[c] for c in _LEDGERS[ledger].content_columns}
    return hmac.compare_digest(digest(content), str(row["entry_hash"]))


def _blame_the_key(report: VerifyReport, first: tuple[int, int, dict[str, Any], str]) -> None:
    """Every entry fails its hash yet every link holds: the key, not the entries, is wrong.
    Replace the breaks with one that says so (and which way, when the first entry tells)."""
    seq, entry_id, content, stored = first
    unkeyed = hmac.compare_digest(hashlib.sha256(canonical(content)).hexdigest(), stored)
    if report.entries < 2 and not (report.keyed and unkeyed):
        return  # a single entry failing is as likely edited: leave the break as found
    if report.keyed and unkeyed:
        hint = f"the ledger was written without a key: unset {LEDGER_KEY_ENV} to verify it"
    elif report.keyed:
        hint = f"{LEDGER_KEY_ENV} is not the key this ledger was written with"
    else:
        hint = f"the ledger was written with a key: set {LEDGER_KEY_ENV} to verify it"
    detail = (
        f"the very first entry fails its hash and so do all {report.entries}, while every "
        f"link holds: the key looks wrong ({hint})"
    )
    anchors = [b for b in report.breaks if b.kind == "anchor"]
    report.breaks = [Break(seq, entry_id, "key", detail), *anchors]
    report.more_breaks = 0
    report.wrong_key = True


# -- queries -------------------------------------------------------------------------------


def _logged_disclosure(row: RowMapping) -> LoggedDisclosure:
    return LoggedDisclosure(
        id=int(row["id"]),
        seq=int(row["seq"]),
        run_id=row["run_id"],
        program_code=row["program_code"],
        child_local_id=row["child_local_id"],
        recipient_code=row["recipient_code"],
        agreement_id=row["agreement_id"],
        legal_basis=row["legal_basis"],
        purpose=row["purpose"],
        fields=tuple(row["fields"]),
        run_date=row["run_date"],
        payload_digest=row["payload_digest"],
        action=row["action"],
        disclosed_at=_as_utc(row["disclosed_at"]),
    )


def _as_utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def disclosures_for_child(
    session: Session, program_code: str, child_local_id: str
) -> list[LoggedDisclosure]:
    """Every log entry for one child, oldest first (a parent's request, 45 CFR 1303.23)."""
    table = _LEDGERS["disclosures"].table
    rows = session.execute(
        select(table)
        .where(table.c.program_code == program_code, table.c.child_local_id == child_local_id)
        .order_by(table.c.seq)
    ).mappings()
    return [_logged_disclosure(r) for r in rows]


def programs_for_child(session: Session, child_local_id: str) -> list[str]:
    """The program codes under which ``child_local_id`` appears in the disclosure log."""
    table = _LEDGERS["disclosures"].table
    rows = session.execute(
        select(table.c.program_code)
        .where(table.c.child_local_id == child_local_id)
        .distinct()
        .order_by(table.c.program_code)
    )
    return [str(r[0]) for r in rows]


def redactions(
    session: Session,
    *,
    run_id: str | None = None,
    program_code: str | None = None,
    reason_code: str | None = None,
    agreement_id: str | None = None,
    subject: str | None = None,
    fields_only: bool | None = None,
    limit: int | None = None,
) -> list[LoggedRedaction]:
    """Audit entries matching every filter given, in seq order.

    ``fields_only``: True for removed fields only, False for withheld children only.
    """
    table = _LEDGERS["redactions"].table
    query = select(table).order_by(table.c.seq)
    filters: Sequence[tuple[str, str | None]] = (
        ("run_id", run_id),
        ("program_code", program_code),
        ("reason_code", reason_code),
        ("agreement_id", agreement_id),
        ("subject", subject),
    )
    for column, value in filters:
        if value is not None:
            query = query.where(table.c[column] == value)
    if fields_only is True:
        query = query.where(table.c.field.is_not(None))
    elif fields_only is False:
        query = query.where(table.c.field.is_(None))
    if limit is not None:
        query = query.limit(limit)
    return [
        LoggedRedaction(
            id=int(r["id"]),
            seq=int(r["seq"]),
            run_id=r["run_id"],
            program_code=r["program_code"],
            subject=r["subject"],
            agreement_id=r["agreement_id"],
            field=r["field"],
            reason_code=r["reason_code"],
            rule=r["rule"],
            recorded_at=_as_utc(r["recorded_at"]),
        )
        for r in session.execute(query).mappings()
    ]
