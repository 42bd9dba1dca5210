"""What a destination holds now, per program and child, and what tonight must change there.

A batch is unchanged only when it equals what the destination holds now — the last delivered
state, kept in ``delivery_state`` (:class:`schemas.DeliveredRecord`) — never because the same
batch was delivered at some time before: a middle name A -> B -> A over three nights sends A
again on the third. The same rules serve every destination type:

1. **Current**: per child, the digest of exactly its rows tonight (every artifact, parent
   statements included) and the key of each row; per program, the digest of the artifacts
   that belong to no child (aggregate tables).
2. **Send** (``resend: changes``): children whose digest differs from what is held (new ones
   included) and the program's artifacts when they differ. A file drop is a snapshot of the
   program, so when anything differs the whole snapshot goes. ``resend: full`` sends all, every
   night.
3. **Withdraw**: a child held (or, for a file drop, left out of a later snapshot: a state may
   keep earlier folders) and not in tonight's batch, withheld tonight because the parent
   revoked consent (when the agreement says ``delete_on_revocation``), or for another reason
   of the child's own (no valid consent any more, notice refused, ...) when it says
   ``delete_out_of_scope``. A child missing for a data problem (a quarantined row, a required
   field missing, a record the destination refused) is left as it is: we cannot tell a
   withdrawal from bad data.
4. **Replace**: a child sent tonight whose held rows include keys tonight's rows no longer
   have (a natural-key change, e.g. a corrected entry date, or a parent statement withdrawn):
   those rows are deleted where the destination deletes.

After the destination accepted, :func:`write_state` records what it now holds (the rows
:func:`state_changes` finds) in the transaction that logs the disclosures.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import json.encoder
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, Table, insert, select, update
from sqlalchemy.orm import Session

from pipelines.db import UPSERTS
from pipelines.destinations.base import Batch, ChildKey
from privacy.ledger_columns import copy_texts
from privacy.reasons import Level, Reason
from schemas import DeliveredRecord

if TYPE_CHECKING:
    import pandas as pd

HELD, DELETED, DROPPED = "held", "deleted", "dropped"
PROGRAM = ""
"""``child_local_id`` of a program's own artifacts (those that belong to no child)."""
REVOKED = Reason.CONSENT_REVOKED.value
OUT_OF_SCOPE = "out_of_scope"
NOT_A_WITHDRAWAL = frozenset(
    {Reason.CONSENT_REVOKED, Reason.REQUIRED_FIELD_MISSING, Reason.DESTINATION_REJECTED}
)
"""Child-level reasons that never count as leaving the agreement's scope."""

_CHUNK = 1000
_UPDATED = ("digest", "rows", "status", "run_id", "updated_at")

Rows = dict[str, list[list[str]]]
"""Artifact name -> the key of each of a child's rows there."""


@dataclass(frozen=True)
class Held:
    """One ``delivery_state`` row."""

    digest: str
    rows: Rows
    status: str


@dataclass(frozen=True)
class Current:
    """Tonight's batch, by child."""

    digests: dict[ChildKey, str]
    rows: dict[ChildKey, Rows]
    program_digest: str


@dataclass
class Changes:
    """What tonight changes at the destination."""

    send: set[ChildKey] = field(default_factory=set)
    program: bool = False
    withdraw: dict[ChildKey, str] = field(default_factory=dict)
    """Child -> ``consent_revoked`` or ``out_of_scope``."""
    replace: dict[ChildKey, Rows] = field(default_factory=dict)
    """Child -> held rows whose key tonight's rows no longer have."""
    snapshot: bool = False

    @property
    def nothing(self) -> bool:
        """Whether the destination already holds exactly tonight's batch."""
        return not (self.send or self.program or self.withdraw or self.replace)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (program-local ids only, for the delivery's reconciliation)."""
        return {
            "send": sorted(list(k) for k in self.send),
            "program": self.program,
            "withdraw": sorted([*k, why] for k, why in self.withdraw.items()),
            "replace": sorted([*k, rows] for k, rows in self.replace.items()),
            "snapshot": self.snapshot,
        }


def current_of(batch: Batch, ledger: Mapping[str, Any]) -> Current:
    """Tonight's digests and row keys: per child from the staged ledger's disclosure lines
    (whose digest covers every row of the child, statements included), row keys from the
    artifacts' key columns."""
    digests = {(d["program_code"], d["child_local_id"]): d["digest"] for d in ledger["disclosures"]}
    rows: dict[ChildKey, Rows] = {key: {} for key in digests}
    own = []
    for artifact in batch.artifacts:
        if not artifact.child_keys:
            own.append(f"{artifact.name}:{artifact.sha256}")
            continue
        columns = [c for c in artifact.key_columns if c in artifact.frame.columns]
        if not columns:
            continue
        name = artifact.name
        for child, values in zip(
            artifact.child_keys, _key_texts(artifact.frame, columns), strict=True
        ):
            held = rows.get(child)
            if held is None:
                rows[child] = {name: [values]}
            elif (kept := held.get(name)) is None:
                held[name] = [values]
            else:
                kept.append(values)
    program = hashlib.sha256("\n".join(sorted(own)).encode()).hexdigest()
    return Current(digests, rows, program)


def _key_texts(frame: pd.DataFrame, columns: list[str]) -> list[list[str]]:
    """Each row's key as text, column by column: ``str`` of the value, ``""`` where missing.
    The row keys saved in ``delivery_state`` and compared with tonight's, so the text must
    not change (a held key would no longer match); column by column in plain Python, which
    for a program's few hundred rows costs a fraction of the frame-wide pandas conversion."""
    texts = []
    for column in columns:
        series = frame[column]
        if _is_text(series):  # str or missing already: the same texts, without a loop
            texts.append(series.to_numpy(dtype=object, na_value="").tolist())
            continue
        missing = series.isna().to_numpy().tolist()
        values = series.to_numpy(dtype=object).tolist()
        texts.append(["" if m else str(v) for v, m in zip(values, missing, strict=True)])
    return [list(row) for row in zip(*texts, strict=True)]


def _is_text(series: pd.Series) -> bool:
    """Whether ``series`` is of pandas' string dtype (each value a ``str`` or missing)."""
    import pandas as pd

    return isinstance(series.dtype, pd.StringDtype)


def load_held(session: Session, destination: str, program: str) -> dict[ChildKey, Held]:
    """What ``destination`` holds for ``program`` (digests and status; row keys are read by
    :func:`with_rows` for the children that need them); the program's own artifacts under
    ``(program, PROGRAM)``."""
    return load_held_many(session, destination, [program])[program]


def load_held_many(
    session: Session, destination: str, programs: Iterable[str]
) -> dict[str, dict[ChildKey, Held]]:
    """:func:`load_held` of several programs (a shard's) in one query per ``_CHUNK``."""
    codes = sorted(set(programs))
    out: dict[str, dict[ChildKey, Held]] = {code: {} for code in codes}
    for start in range(0, len(codes), _CHUNK):
        query = select(
            DeliveredRecord.program_code,
            DeliveredRecord.child_local_id,
            DeliveredRecord.digest,
            DeliveredRecord.status,
        ).where(
            DeliveredRecord.destination == destination,
            DeliveredRecord.program_code.in_(codes[start : start + _CHUNK]),
        )
        for program, local_id, digest, status in session.execute(query):
            out[program][(program, local_id)] = Held(digest, {}, status)
    return out


def differing(held: Mapping[ChildKey, Held], current: Current) -> set[ChildKey]:
    """Children held whose rows differ tonight or who are gone: the only ones whose held row
    keys a plan can need (to replace or withdraw rows)."""
    return {
        key
        for key, h in held.items()
        if key[1] != PROGRAM
        and h.status in (HELD, DROPPED)
        and current.digests.get(key) != h.digest
    }


def with_rows(
    session: Session, destination: str, held: dict[ChildKey, Held], keys: Iterable[ChildKey]
) -> dict[ChildKey, Held]:
    """``held`` with the row keys of ``keys`` read in."""
    by_program: dict[str, list[str]] = {}
    for program, local_id in keys:
        by_program.setdefault(program, []).append(local_id)
    out = dict(held)
    for program, local_ids in by_program.items():
        for start in range(0, len(local_ids), _CHUNK):
            query = select(DeliveredRecord.child_local_id, DeliveredRecord.rows).where(
                DeliveredRecord.destination == destination,
                DeliveredRecord.program_code == program,
                DeliveredRecord.child_local_id.in_(local_ids[start : start + _CHUNK]),
            )
            for local_id, rows in session.execute(query):
                before = out[(program, local_id)]
                out[(program, local_id)] = Held(before.digest, dict(rows or {}), before.status)
    return out


def withheld_reasons(ledger: Mapping[str, Any], program: str) -> dict[ChildKey, str]:
    """Child -> the reason it was withheld tonight (child-level redactions)."""
    return {
        (program, r["subject"]): r["reason"] for r in ledger["redactions"] if r["field"] is None
    }


def _withdrawal(reason: str | None, on_revocation: bool, out_of_scope: bool) -> str | None:
    if reason is None:
        return None
    if reason == REVOKED:
        return REVOKED if on_revocation else None
    try:
        # Reason(code) looks a member up by value; mypy checks the call against
        # the __new__ that builds the members (value, level, description)
        known = Reason(reason)  # type: ignore[call-arg]
    except ValueError:
        return None
    if known.level is Level.CHILD and known not in NOT_A_WITHDRAWAL and out_of_scope:
        return OUT_OF_SCOPE
    return None


def plan_changes(
    held: Mapping[ChildKey, Held],
    current: Current,
    withheld: Mapping[ChildKey, str],
    *,
    program: str,
    full: bool = False,
    snapshot: bool = False,
    delete_on_revocation: bool = False,
    delete_out_of_scope: bool = False,
) -> Changes:
    """What tonight sends, withdraws and replaces (see the module doc)."""
    changes = Changes(snapshot=snapshot)
    own = held.get((program, PROGRAM))
    changes.program = full or own is None or own.digest != current.program_digest
    holding = {k: h for k, h in held.items() if k[1] != PROGRAM and h.status == HELD}
    for key, digest in current.digests.items():
        before = holding.get(key)
        if full or before is None or before.digest != digest:
            changes.send.add(key)
    kept = {k for k, h in held.items() if k[1] != PROGRAM and h.status in (HELD, DROPPED)}
    for key in kept - current.digests.keys():
        why = _withdrawal(withheld.get(key), delete_on_revocation, delete_out_of_scope)
        if why is not None:
            changes.withdraw[key] = why
    for key in changes.send:
        before = holding.get(key)
        if before is None:
            continue
        now = current.rows.get(key, {})
        stale = {
            name: [r for r in keys if r not in now.get(name, [])]
            for name, keys in (before.rows or {}).items()
        }
        stale = {name: keys for name, keys in stale.items() if keys}
        if stale:
            changes.replace[key] = stale
    if snapshot:
        # a file drop holds the program's latest snapshot: any difference sends all of it
        absent = holding.keys() - current.digests.keys()
        if changes.send or changes.withdraw or absent or changes.program:
            changes.send = set(current.digests)
            changes.program = True
        changes.replace = {}
    return changes


def narrowed(batch: Batch, changes: Changes) -> Batch:
    """The batch with only the rows of the children sent tonight (and the program's own
    artifacts only when they changed); a snapshot goes whole."""
    if changes.snapshot:
        return batch
    return batch.only(changes.send, program_artifacts=changes.program)


StateRow = tuple[str, str, str, str, Rows, str, str]
"""One ``delivery_state`` row but its time: the columns :data:`STATE_COLUMNS` in order."""
STATE_COLUMNS = (
    "destination",
    "program_code",
    "child_local_id",
    "digest",
    "rows",
    "status",
    "run_id",
)


@dataclass
class StateWrites:
    """The ``delivery_state`` rows to write: ``new`` ones (of children the destination held
    no row of when the plan read it) and ``changed`` ones (held: updated)."""

    new: list[StateRow] = field(default_factory=list)
    changed: list[StateRow] = field(default_factory=list)

    def __iadd__(self, other: StateWrites) -> StateWrites:
        self.new += other.new
        self.changed += other.changed
        return self

    def rows(self) -> list[StateRow]:
        """Every row, the new ones first."""
        return self.new + self.changed


def state_changes(
    *,
    destination: str,
    program: str,
    run_id: str,
    current: Current,
    held: Mapping[ChildKey, Held],
    sent: Iterable[ChildKey],
    program_sent: bool,
    withdrawn: Iterable[ChildKey] = (),
    snapshot: bool = False,
) -> StateWrites:
    """The ``delivery_state`` rows that change after tonight: the children ``sent`` (with
    their digests and row keys), those ``withdrawn`` (deleted), and for a snapshot every other
    child it held (no longer in the latest snapshot: dropped). One row per child: a child a
    file drop's withdrawals file withdrew is ``deleted``, not ``dropped`` (the recipient was
    told to delete it and the deletion is logged, so nothing of it is held any more: it is
    not withdrawn again on a later night). A row equal (digest and status) to the one held is
    left out. Tuples, not dicts: a state's first night writes a row per child."""
    sent = set(sent)
    withdrawn = set(withdrawn)
    digests, rows = current.digests, current.rows
    # (local id, digest, row keys, status) of each row
    wanted: list[tuple[str, str, Rows, str]] = [
        (key[1], digests[key], rows.get(key, {}), HELD) for key in sorted(sent)
    ]
    if program_sent:
        wanted.append((PROGRAM, current.program_digest, {}, HELD))
    wanted += [(key[1], "", {}, DELETED) for key in sorted(withdrawn - sent)]
    if snapshot:
        wanted += [
            (key[1], before.digest, before.rows, DROPPED)
            for key, before in held.items()
            if key[1] != PROGRAM
            and key not in sent
            and key not in withdrawn
            and before.status == HELD
        ]
    out = StateWrites()
    for local_id, digest, keys, status in wanted:
        before = held.get((program, local_id))
        row = (destination, program, local_id, digest, keys, status, run_id)
        if before is None:
            out.new.append(row)
        elif before.status != status or before.digest != digest:
            out.changed.append(row)
    return out


def write_state(
    session: Session, writes: StateWrites, updated_at: dt.datetime, new_text: str | None = None
) -> None:
    """Insert or update ``delivery_state`` rows (:func:`state_changes`, of one program or of
    several) on (destination, program, child), all at ``updated_at``; of two rows of one child
    the later wins. On PostgreSQL (psycopg 3) the new rows are ``COPY``ed into the table
    itself (``new_text``: their :func:`new_rows_text`, when the caller made it already), the
    changed ones into a temporary table and upserted from there in one statement; should a
    new row's child be held after all, every row is upserted."""
    if not (writes.new or writes.changed):
        return
    if session.get_bind().dialect.name == "postgresql" and _pg_write(
        session, writes, updated_at, new_text
    ):
        return
    _upsert_rows(session, writes.rows(), updated_at)


def new_rows_text(writes: StateWrites, updated_at: dt.datetime) -> str:
    """The ``COPY`` text of the new rows of ``writes``, at ``updated_at`` (:func:`write_state`
    on PostgreSQL): made in Python alone, so a caller can make it while the server is busy."""
    return _copy_text(writes.new, updated_at)


def _upsert_rows(session: Session, rows: list[StateRow], updated_at: dt.datetime) -> None:
    """Upserts of ``_CHUNK`` rows, or row by row where the database has no ``ON CONFLICT``."""
    dialect = session.get_bind().dialect.name
    # a declarative model's ``__table__`` is typed ``FromClause``; this one is a ``Table``
    table = cast(Table, DeliveredRecord.__table__)
    values = [
        {**dict(zip(STATE_COLUMNS, row, strict=True)), "updated_at": updated_at} for row in rows
    ]
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        if dialect in UPSERTS:
            statement = UPSERTS[dialect](table)
            statement = statement.on_conflict_do_update(
                index_elements=["destination", "program_code", "child_local_id"],
                set_={name: statement.excluded[name] for name in _UPDATED},
            )
            session.execute(statement, chunk)
            continue
        for row in chunk:  # a database without ON CONFLICT: update, else insert
            done = cast(  # an UPDATE's result is a CursorResult (it has the rowcount)
                CursorResult[Any],
                session.execute(
                    update(table)
                    .where(
                        table.c.destination == row["destination"],
                        table.c.program_code == row["program_code"],
                        table.c.child_local_id == row["child_local_id"],
                    )
                    .values({name: row[name] for name in _UPDATED})
                ),
            )
            if not done.rowcount:
                session.execute(insert(table), [row])


_INCOMING = "delivery_state_incoming"
_SAVEPOINT = "delivery_state_new"
_COPY_UPSERT = (
    f"INSERT INTO delivery_state ({', '.join(STATE_COLUMNS)}, updated_at) "
    f"SELECT destination, program_code, child_local_id, digest, CAST(rows AS json), status, "
    f"run_id, %(updated_at)s FROM {_INCOMING} "
    "ON CONFLICT (destination, program_code, child_local_id) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _UPDATED)
)


def _pg_write(
    session: Session, writes: StateWrites, updated_at: dt.datetime, new_text: str | None
) -> bool:
    """:func:`write_state` on PostgreSQL; False where the driver is not psycopg 3."""
    driver = session.connection().connection.driver_connection
    if driver is None or not hasattr(driver, "pgconn"):
        return False
    from psycopg.errors import UniqueViolation

    if writes.new:
        with driver.cursor() as cursor:  # a savepoint: a held child undoes only this COPY
            cursor.execute(f"SAVEPOINT {_SAVEPOINT}", prepare=False)
        try:
            if new_text is None:
                new_text = new_rows_text(writes, updated_at)
            _copy(driver, "delivery_state", [*STATE_COLUMNS, "updated_at"], new_text)
        except UniqueViolation:  # a child held after all (read before another writer's row)
            with driver.cursor() as cursor:
                cursor.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}", prepare=False)
            _copy_upsert(driver, _last_of_each(writes.rows()), updated_at)
            return True
        with driver.cursor() as cursor:
            cursor.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}", prepare=False)
    if writes.changed:
        _copy_upsert(driver, _last_of_each(writes.changed), updated_at)
    return True


def _last_of_each(rows: list[StateRow]) -> list[StateRow]:
    """One row per (destination, program, child), the later one (one upsert may not change
    the same row twice)."""
    last = {row[:3]: row for row in rows}
    return rows if len(last) == len(rows) else list(last.values())


def _copy_upsert(driver: Any, rows: list[StateRow], updated_at: dt.datetime) -> None:
    """The rows ``COPY``ed into a temporary table, then upserted from it in one statement."""
    with driver.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {_INCOMING} (destination text, program_code text, "
            "child_local_id text, digest text, rows text, status text, run_id text) "
            "ON COMMIT DROP",
            prepare=False,  # never a server-side prepared statement over a dropped table
        )
    _copy(driver, _INCOMING, list(STATE_COLUMNS), _copy_text(rows, None))
    with driver.cursor() as cursor:
        cursor.execute(_COPY_UPSERT, {"updated_at": updated_at}, prepare=False)
        cursor.execute(f"DROP TABLE {_INCOMING}", prepare=False)  # a second upsert may follow


def _copy_text(rows: list[StateRow], updated_at: dt.datetime | None) -> str:
    """``rows`` (and ``updated_at`` when given) as ``COPY`` text, built column by column: each
    row's keys written by one JSON encoder, as ``json.dumps`` writes them (the text a ``json``
    column keeps)."""
    if not rows:
        return ""
    destination, program, local_id, digest, keys, status, run_id = zip(*rows, strict=True)
    texts: list[Sequence[str]] = [destination, program, local_id, digest]
    texts += [list(map(_json_text, keys)), status, run_id]
    fields = [copy_texts(list(t)) for t in texts]
    if updated_at is not None:
        fields.append([updated_at.isoformat()] * len(rows))
    return "\n".join(map("\t".join, zip(*fields, strict=True))) + "\n"


def _copy(driver: Any, table: str, columns: list[str], text_: str) -> None:
    """``text_`` (:func:`_copy_text`) ``COPY``ed into ``table``."""
    from psycopg import sql

    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        copy.write(text_)


_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_json_text: Callable[[Any], str] = json.dumps
if _ENCODER is not None:  # CPython's C encoder, made once (``json.dumps`` makes one per call)
    _encode = _ENCODER(
        None,
        json.JSONEncoder().default,  # what json.dumps raises for a value it cannot write
        json.encoder.encode_basestring_ascii,
        None,
        ": ",
        ", ",
        False,
        False,
        True,
    )

    def _json_text(value: Any) -> str:
        return "".join(_encode(value, 0))
