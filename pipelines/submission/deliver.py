"""Deliver one program's batch, then record exactly what the destination accepted.

Tonight's batch is compared with what the destination holds now (:mod:`.state`): only what
differs goes (``resend: changes``; a file drop gets its whole snapshot when anything differs),
or everything (``resend: full``); children withdrawn or whose old copy a natural-key change
left behind are deleted where the destination deletes (staging database, Ed-Fi) or listed in
the withdrawals file (file drops whose formats carry one), each logged as a ``delete`` entry.
An unchanged night sends nothing. A batch sent but not logged (a crash between the two) is
reconciled by the next run (``reconcile``), which asks the destination whether it holds the
batch. A dry run writes the exact payloads to a local folder and logs nothing.

A shard (:func:`deliver_shard`, what one mapped Airflow task does) delivers its programs one
after the other with one destination client (one connection pool, one Ed-Fi client, one SFTP
session where the destination keeps one open); a program that fails stops only itself. It
reads once for all its programs (:class:`_Ahead`) their staged files (one query; each file
still checked and opened on its own), what the destination holds of them and which already
have a delivery row of this run. The shard records what it sent in groups of programs
(about ``RECORD_GROUP_CHILDREN`` children:
:func:`.record.record_group`, one transaction and bulk writes per group, each program alone
should the group's write fail), always after the group's deliveries: a crash in between
leaves the group's deliveries open for the next run to reconcile. Each program's outcome is
kept with its delivery row in the same transaction as its disclosure log entries (an
unchanged night gets an ``unchanged`` row), so a retried shard task returns the outcome of a
program an earlier attempt delivered instead of sending it again.

A shard's writes run on two threads, each in a fixed order. One (:class:`_Sender`) writes
each program's delivery, in shard order: its pending row (the rows of the programs waiting to
be sent inserted together, each before its program's upload), its marks and bytes, what the
destination deletes. The other (the recorder) records the groups, in group order, each once
every delivery of the group is done: so each program's record still follows its own delivery,
and a crash at any point leaves what it always could (deliveries sent and not yet recorded,
open for the next run to reconcile). While group k is recorded, group k+1 is sent: the two
write different rows (group k's delivery rows, log entries and ``delivery_state`` rows;
group k+1's pending rows and marks), so neither waits on the other's locks; the ledgers' append
lock is taken by the recorder alone. Should recording a group fail outright, nothing more is
sent; what the next group sent meanwhile is still recorded in its turn (or, should that fail
too, left open as after a crash). On SQLite, whose one writer would make them wait on each
other, both run on the one thread, in the order above. The task's own thread meanwhile reads,
plans and renders the next programs (:func:`_ready`: reads only), so their CPU work overlaps
the commits and disk flushes the writes wait for.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, suppress
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from pipelines.collector import frozen
from pipelines.db import autocommit, session_scope
from pipelines.destinations.base import Batch, ChildKey, DeliveryResult
from pipelines.destinations.local import LocalFolderDestination
from pipelines.destinations.registry import Resend
from pipelines.paths import safe_join
from pipelines.settings import Settings
from pipelines.staged_store import Readable
from pipelines.submission.batches import (
    load_batch,
    load_ledger,
    prefetch,
    remove_staged,
    remove_staged_many,
)
from pipelines.submission.context import RunContext
from pipelines.submission.marks import deliver_marked, flushed_by_mark
from pipelines.submission.record import Recording, StateUpdate, record_delivery, record_group
from pipelines.submission.staging_view import held_many, rows_of
from pipelines.submission.state import (
    HELD,
    PROGRAM,
    Changes,
    Current,
    Held,
    current_of,
    differing,
    load_held,
    load_held_many,
    narrowed,
    plan_changes,
    with_rows,
    withheld_reasons,
)
from pipelines.submission.withdrawals import (
    aggregates_only,
    only_withdrawals,
    program_withdrawal,
    withdrawals_artifact,
    withdrawals_spec,
)
from privacy.fields import CATALOG
from schemas import Delivery
from schemas.filespec import load_spec

SNAPSHOTS = ("local", "sftp")
"""File drops: each delivered folder is the program's complete current snapshot."""


def _dry_run(context: RunContext, batch: Batch) -> dict[str, Any]:
    """Write exactly what would be sent under ``--output``; send and log nothing."""
    folder = Path(context.run.output) if context.run.output else None
    folder = folder or safe_join(context.settings.state_dir, "dry-run", context.run.run_id)
    if context.destination.type.value == "edfi":
        destination = context.client
        target = safe_join(folder, batch.program_code, role="program code")
        destination.write_dry_run(batch, target)  # type: ignore[attr-defined]
    else:
        LocalFolderDestination(f"{context.run.destination}-dry-run", folder).deliver(batch)
    return {"location": str(folder)}


def _new_delivery_rows(context: RunContext, readies: Sequence[_Ready]) -> dict[str, int]:
    """program -> the id of this run's delivery of it, inserted pending for each of
    ``readies`` (programs of which the run has no row yet: :class:`_Ahead` knows) by one
    statement that commits by itself.

    For a file drop on PostgreSQL the commit does not wait for the disk flush (the statement
    sets ``synchronous_commit`` off for its own transaction): no byte leaves before the upload
    mark (:mod:`.marks`), whose synchronous commit flushes the log up to itself, these rows
    included (the log is written in order); the mark fails if the row is gone. Other
    destinations send without a mark, so their rows wait for the flush."""
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "destination": context.run.destination,
            "program_code": ready.sending.program_code,
            "run_id": context.run.run_id,
            "batch_digest": ready.sending.digest,
            "status": "pending",
            "artifacts": ready.artifacts,
            "staged_path": ready.prepared["ledger"]["path"],
            "created_at": now,
            "updated_at": now,
        }
        for ready in readies
    ]
    statement = _NEW_ROWS_UNFLUSHED if flushed_by_mark(context) else _NEW_ROWS
    with autocommit(context.engine) as connection:
        return {str(row[0]): int(row[1]) for row in connection.execute(statement, rows)}


_NEW_ROWS = insert(Delivery).returning(Delivery.program_code, Delivery.id)
"""One statement for any number of rows (SQLAlchemy's ``insertmanyvalues``: one ``INSERT``
of many ``VALUES``), built and compiled once."""
_NEW_ROWS_UNFLUSHED = _NEW_ROWS.returning(func.set_config("synchronous_commit", "off", True))
""":data:`_NEW_ROWS` whose commit does not wait for the disk (evaluated before it)."""


def _delivery_row(  # type: ignore[no-untyped-def]
    session,
    context: RunContext,
    batch: Batch,
    prepared: dict[str, Any],
    artifacts: dict[str, Any],
) -> Delivery:
    """This run's delivery of the program, pending (a retried task finds its own row);
    ``artifacts``: the prepared batch and tonight's changes (``Changes.to_dict``)."""
    now = dt.datetime.now(dt.UTC)
    row = session.scalars(
        select(Delivery).where(
            Delivery.destination == context.run.destination,
            Delivery.program_code == batch.program_code,
            Delivery.run_id == context.run.run_id,
        )
    ).one_or_none()
    if row is None:
        row = Delivery(
            destination=context.run.destination,
            program_code=batch.program_code,
            run_id=context.run.run_id,
            created_at=now,
        )
        session.add(row)
    elif row.status == "logged":
        return row
    row.batch_digest = batch.digest
    row.status = "pending"
    row.artifacts = artifacts
    row.staged_path = prepared["ledger"]["path"]
    row.updated_at = now
    session.flush()
    return row


def _not_sent(result: DeliveryResult) -> list[dict[str, Any]]:
    """What an API destination left out for a child (a resource the agreement's fields cannot
    fill), as redaction-audit lines: names the resource and field, never a value."""
    return [
        {
            "program_code": item.child_key[0],
            "subject": item.child_key[1],
            "field": item.field if item.field in CATALOG else None,
            "reason": str(item.reason).lower()[:40],
            "rule": f"{item.resource}: {item.code}",
        }
        for item in getattr(result, "not_sent", ())
    ]


def _planned(
    context: RunContext,
    batch: Batch,
    ledger: dict[str, Any],
    stopped: bool = False,
    tables: bool = False,
    held: dict[ChildKey, Held] | None = None,
) -> tuple[Current, dict[ChildKey, Held], Changes]:
    """Tonight's batch against what the destination holds now (:mod:`.state`; ``held``: as
    :func:`.state.load_held` read it for the shard); for a program that ``stopped`` sharing
    child records, every child held is withdrawn (:mod:`.withdrawals`) and, when it still
    shares aggregate ``tables``, they go if they changed."""
    current = current_of(batch, ledger)
    if held is None:
        with session_scope(context.engine) as session:
            held = load_held(session, context.run.destination, batch.program_code)
            # a dry run on a staging database: as the real run's take-over would leave it
            held = held_many(session, context, {batch.program_code: held})[batch.program_code]
    overlaid = _settled_view(context, batch.program_code)
    if overlaid:  # a dry run: as the real run's reconciliation would leave it
        held = {**held, **overlaid}
    if needed := differing(held, current):
        fetch = needed - overlaid.keys()  # the view has the row keys it would write
        with session_scope(context.engine) as session:
            held = with_rows(session, context.run.destination, held, fetch)
            held = rows_of(session, context, held, fetch)
    if stopped:
        snapshot = context.destination.type.value in SNAPSHOTS
        changes = program_withdrawal(
            held,
            snapshot=snapshot,
            aggregates=(batch.program_code, current.program_digest) if tables else None,
            full=context.destination.resend is Resend.FULL,
        )
        return current, held, changes
    agreement = context.agreement
    changes = plan_changes(
        held,
        current,
        withheld_reasons(ledger, batch.program_code),
        program=batch.program_code,
        full=context.destination.resend is Resend.FULL,
        snapshot=context.destination.type.value in SNAPSHOTS,
        delete_on_revocation=agreement.delete_on_revocation,
        delete_out_of_scope=agreement.delete_out_of_scope,
    )
    return current, held, changes


def _settled_view(context: RunContext, program: str) -> dict[ChildKey, Held]:
    """For a dry run, the delivery state rows of ``program`` the real run's reconciliation
    of its open delivery would write (:func:`.reconcile_view.overlay`); empty otherwise."""
    if not context.run.dry_run:
        return {}
    from pipelines.submission.reconcile_view import overlay  # it imports this module

    return overlay(context, program)


def outgoing(
    context: RunContext,
    batch: Batch,
    changes: Changes,
    held: dict[ChildKey, Held],
    tables_only: bool = False,
) -> Batch:
    """What goes tonight: the changed children's rows (a file drop: the whole snapshot, with
    its withdrawals file when its formats carry one); with ``tables_only`` (a program sharing
    aggregate outputs only, whose records are withdrawn) its aggregate tables alone, when they
    go, and the withdrawals file."""
    if tables_only:
        batch = aggregates_only(batch, context.destination)
    out = narrowed(batch, changes)
    if not changes.snapshot:
        return out
    specs = [load_spec(name) for name in context.destination.formats]
    spec = withdrawals_spec(specs)
    if spec is None:
        return out
    run_date = dt.date.fromisoformat(batch.run_date)
    artifact = withdrawals_artifact(spec, specs, changes.withdraw, held, run_date)
    return Batch(out.run_id, out.run_date, out.program_code, (*out.artifacts, artifact))


def _marks_empty(destination: Any, stopped: bool) -> bool:
    """Whether a stopped program's empty batch goes to ``destination`` too: a staging database
    marks each batch it holds and writes nothing for a batch equal to its latest mark, so the
    empty mark says it no longer holds the program's last batch (sent afresh on resuming)."""
    return stopped and hasattr(destination, "delete_rows")


def _doomed_rows(changes: Changes, held: dict[ChildKey, Held]) -> dict[str, list[list[str]]]:
    """Per table, the keys of the rows a deleting destination removes tonight: every row of
    a withdrawn child and each old copy a changed natural key left behind."""
    rows: dict[str, list[list[str]]] = {}
    for key in changes.withdraw:
        for name, keys in held[key].rows.items():
            rows.setdefault(name, []).extend(keys)
    for stale in changes.replace.values():
        for name, keys in stale.items():
            rows.setdefault(name, []).extend(keys)
    return rows


def _delete(
    context: RunContext,
    destination: Any,
    program: str,
    changes: Changes,
    held: dict[ChildKey, Held],
) -> tuple[set[ChildKey], dict[ChildKey, tuple[str, ...]], dict[str, int]]:
    """Delete at the destination what tonight withdraws or replaces, where it can delete;
    returns the children withdrawn, per child the old copies replaced, and the rows deleted
    per table or resource."""
    if changes.snapshot:
        carried = withdrawals_spec([load_spec(n) for n in context.destination.formats])
        return (set(changes.withdraw) if carried else set()), {}, {}
    if hasattr(destination, "delete_rows"):
        run = context.run
        deleted = destination.delete_rows(
            _doomed_rows(changes, held),
            program_code=program,
            run_id=run.run_id,
            run_date=run.run_date.isoformat(),
        )
        replaced = {k: tuple(sorted(v)) for k, v in changes.replace.items()}
        return set(changes.withdraw), replaced, dict(deleted)
    if hasattr(destination, "withdraw") and changes.withdraw:
        results = destination.withdraw(sorted(changes.withdraw), run_id=context.run.run_id)
        failed = {w.child_key for w in results if w.status == "failed"}
        gone = Counter(w.resource for w in results if w.status == "deleted")
        return set(changes.withdraw) - failed, {}, dict(gone)
    return set(), {}, {}


def _would_deliver(
    context: RunContext, batch: Batch, ledger: dict[str, Any], tables_only: bool = False
) -> dict[str, Any]:
    """What a real run would do now, for a dry run: children it would send (new or changed)
    and withdraw, rows per file, table or resource it would deliver and delete. Only reads
    (what the destination holds, by the delivery ledger): nothing is sent, written or logged.
    ``tables_only``: a program whose records are withdrawn while its aggregate tables go."""
    _, held, changes = _planned(context, batch, ledger, tables_only, tables_only)
    if changes.nothing:
        return {"would": {"send": 0, "withdraw": 0}, "rows_would_deliver": {}}
    sending = outgoing(context, batch, changes, held, tables_only)
    client = context.client if context.destination.type.value == "edfi" else None
    if client is not None:
        rows = dict(Counter(p.resource for p in client.map(sending).payloads))  # type: ignore[attr-defined]
        entries = client.ledger.for_children(changes.withdraw) if changes.withdraw else []  # type: ignore[attr-defined]
        deleting = dict(Counter(e.resource for e in entries))
    else:
        rows = {a.name: len(a.frame) for a in sending.artifacts if len(a.frame)}
        deletes = context.destination.type.value == "staging_db" and not changes.snapshot
        doomed = _doomed_rows(changes, held) if deletes else {}
        deleting = {name: len(keys) for name, keys in doomed.items() if keys}
    return {
        "would": {"send": len(changes.send), "withdraw": len(changes.withdraw)},
        "rows_would_deliver": rows,
        "rows_would_delete": deleting,
    }


def _nothing_to_tell(batch: Batch, held: dict[ChildKey, Held], changes: Changes) -> bool:
    """A file drop's snapshot without a single row, for a program of which the destination
    holds no child: no folder goes (an empty folder for a program that never had anything to
    share is noise). Once the destination held children of it, the empty snapshot does go:
    the state replaces the program's data with each folder and must learn it has none now
    (full-snapshot semantics); after that, nights are unchanged again."""
    return (
        changes.snapshot
        and not changes.withdraw
        and all(a.frame.empty for a in batch.artifacts)
        and not any(k[1] != PROGRAM and h.status == HELD for k, h in held.items())
    )


def deliver_program(
    run: dict[str, Any], prepared: dict[str, Any], settings: Settings | None = None
) -> dict[str, Any]:
    """Send ``prepared`` to the run's destination and record the outcome."""
    context = RunContext.of(run, settings)
    outcome, sent = _send(context, prepared)
    if sent is None:
        return outcome
    started = time.perf_counter()
    with session_scope(context.engine) as session:
        logged = record_delivery(session, context, **_arguments(sent.recording))
        _finish(session, context, [(sent, logged)])
    remove_staged(context, prepared)
    outcome.setdefault("seconds", {})["record"] = round(time.perf_counter() - started, 3)
    return outcome


@dataclass(frozen=True)
class _Sent:
    """One program sent (or found unchanged), waiting to be recorded: its recording, and
    what its delivery row keeps once logged."""

    recording: Recording
    prepared: dict[str, Any]
    outcome: dict[str, Any]
    artifacts: dict[str, Any] | None
    """The delivery row's artifacts; None for an unchanged batch (no row yet)."""
    digest: str


def _arguments(recording: Recording) -> dict[str, Any]:
    return {f.name: getattr(recording, f.name) for f in fields(Recording)}


class _Ahead:
    """What a shard reads once for all its programs, at the first program's turn: their
    staged files (:func:`.batches.prefetch`, each still checked and opened on its own), what
    the destination holds of each (:func:`.state.load_held_many`) and which already have a
    delivery row of this run. Should that read fail, the program at whose turn it failed
    fails with it and each later one reads its own, as when delivered alone."""

    def __init__(self, context: RunContext, prepared: Sequence[dict[str, Any]]) -> None:
        self.context = context
        self.staged: Readable = prefetch(context, prepared)
        self._programs: list[str] | None = [str(p["program"]) for p in prepared]
        self._held: dict[str, dict[ChildKey, Held]] = {}
        self._fresh: set[str] = set()

    def _read(self) -> None:
        if self._programs is None:
            return
        programs, self._programs = self._programs, None
        run = self.context.run
        with session_scope(self.context.engine) as session:
            rows = session.scalars(
                select(Delivery.program_code).where(
                    Delivery.destination == run.destination,
                    Delivery.run_id == run.run_id,
                    Delivery.program_code.in_(programs),
                )
            )
            fresh = set(programs) - set(rows)
            held = load_held_many(session, run.destination, programs)
        self._held, self._fresh = held, fresh

    def held(self, program: str) -> dict[ChildKey, Held] | None:
        """What the destination holds of ``program`` (None: not read ahead, read it)."""
        self._read()
        return self._held.pop(program, None)

    def fresh(self, program: str) -> bool:
        """Whether the run had no delivery row of ``program`` when the shard began."""
        self._read()
        return program in self._fresh


@dataclass(frozen=True)
class _Ready:
    """One program planned and rendered, waiting to be sent (:func:`_transmit`)."""

    context: RunContext
    prepared: dict[str, Any]
    outcome: dict[str, Any]
    sending: Batch
    changes: Changes
    held: dict[ChildKey, Held]
    current: Current
    common: dict[str, Any]
    stopped: bool
    fresh: bool
    artifacts: dict[str, Any]
    """What its delivery row keeps: the prepared batch and tonight's changes."""


def _send(
    context: RunContext, prepared: dict[str, Any], ahead: _Ahead | None = None
) -> tuple[dict[str, Any], _Sent | None]:
    """Send ``prepared`` (nothing for an unchanged batch; to a folder for a dry run); the
    outcome, and what is to be recorded (None: nothing, the dry run's staged files are gone).
    ``ahead``: what the shard read at once (default: each program reads its own)."""
    ready = _ready(context, prepared, ahead)
    return _transmit(ready) if isinstance(ready, _Ready) else ready


def _ready(
    context: RunContext, prepared: dict[str, Any], ahead: _Ahead | None = None
) -> _Ready | tuple[dict[str, Any], _Sent | None]:
    """Everything :func:`_send` does before anything is written: the batch read back, planned
    against what the destination holds and rendered (its files and digests), or the outcome
    of a batch that sends nothing (unchanged, or a dry run)."""
    store = ahead.staged if ahead is not None else None
    ledger = load_ledger(context, prepared, store)
    batch = load_batch(context, prepared, ledger, store=store)
    outcome: dict[str, Any] = {"program": batch.program_code, "counts": prepared["counts"]}
    stopped = bool(prepared.get("withdraw_program"))
    tables = stopped and bool(prepared.get("keeps_aggregates"))
    if context.run.dry_run and stopped and not tables:  # deletes nothing: says what it would
        outcome |= {"status": "dry_run", "would_withdraw": prepared["counts"]["withdrawing"]}
        remove_staged(context, prepared)
        return outcome, None
    if context.run.dry_run:
        shown = aggregates_only(batch, context.destination) if tables else batch
        outcome |= {
            "status": "dry_run",
            **_dry_run(context, shown),
            **_would_deliver(context, batch, ledger, tables),
        }
        if tables:
            outcome["would_withdraw"] = prepared["counts"]["withdrawing"]
        remove_staged(context, prepared)
        return outcome, None
    program = batch.program_code
    held_now = ahead.held(program) if ahead is not None else None
    current, held, changes = _planned(context, batch, ledger, stopped, tables, held_now)
    common: dict[str, Any] = {
        "run_id": context.run.run_id,
        "run_date": context.run.run_date,
        "program": batch.program_code,
        "ledger": ledger,
    }
    empty = _nothing_to_tell(batch, held, changes)
    if changes.nothing or empty:
        outcome |= {"status": "unchanged", "logged": 0, "sent_nothing_new": True}
        if empty:
            outcome["note"] = "nothing to publish: the destination holds no child of it"
        unchanged = Recording(**common, accepted=None, rejected={}, delivery_id=None)
        return outcome, _Sent(unchanged, prepared, outcome, None, batch.digest)
    sending = outgoing(context, batch, changes, held, tables)
    if stopped:
        only_withdrawals(sending, changes, context.destination, aggregates=tables)
    sending.digest  # noqa: B018 -- rendered and digested now, before anything is written
    fresh = ahead is not None and ahead.fresh(program)
    artifacts = {"prepared": prepared, "changes": changes.to_dict()}
    return _Ready(
        context,
        prepared,
        outcome,
        sending,
        changes,
        held,
        current,
        common,
        stopped,
        fresh,
        artifacts,
    )


def _transmit(ready: _Ready, delivery_id: int | None = None) -> tuple[dict[str, Any], _Sent]:
    """The writing half of :func:`_send`: the pending delivery row (``delivery_id``: already
    inserted), the batch sent (a file drop's steps marked on the row before each), what the
    destination deletes."""
    context, prepared, outcome = ready.context, ready.prepared, ready.outcome
    sending, changes, held, stopped = ready.sending, ready.changes, ready.held, ready.stopped
    artifacts = ready.artifacts
    if delivery_id is None and ready.fresh:
        delivery_id = _new_delivery_rows(context, [ready])[sending.program_code]
    elif delivery_id is None:
        with session_scope(context.engine) as session:
            delivery_id = _delivery_row(session, context, sending, prepared, artifacts).id
    destination = context.client
    started = time.perf_counter()
    result: DeliveryResult = (
        deliver_marked(context, destination, sending, delivery_id)
        if sending.artifacts or changes.snapshot or _marks_empty(destination, stopped)
        else DeliveryResult()
    )
    withdrawn, replaced, deleted = _delete(
        context, destination, sending.program_code, changes, held
    )
    replaced |= result.replaced
    rows_deleted = Counter(result.rows_deleted) + Counter(deleted)
    outcome["seconds"] = {"deliver": round(time.perf_counter() - started, 3)}
    outcome |= {
        "status": "withdrawn" if stopped else "delivered",
        "logged": 0,
        "sent": len(changes.send),
        "withdrawn": len(withdrawn),
        "replaced": len(replaced),
        "rejected": len(result.rejected),
        "rows_delivered": result.rows,
        "rows_deleted": dict(rows_deleted),
        "location": result.location,
        "sent_nothing_new": result.sent_nothing_new,
    }
    recording = Recording(
        **ready.common,
        accepted=result.accepted & changes.send,
        rejected=result.rejected,
        delivery_id=delivery_id,
        notes=_not_sent(result),
        deleted={k: changes.withdraw[k] for k in withdrawn},
        replaced=replaced,
        carried=result.carried,
        state=StateUpdate(ready.current, held, changes.program, changes.snapshot),
    )
    return outcome, _Sent(recording, prepared, outcome, artifacts, sending.digest)


def _finish(session: Session, context: RunContext, logged: Sequence[tuple[_Sent, int]]) -> None:
    """In the transaction that logs them: each delivered program's outcome kept with its
    delivery row; an ``unchanged`` row for each program found unchanged (nothing was sent,
    nothing awaits), so a retried task returns the outcome instead of sending again."""
    now = dt.datetime.now(dt.UTC)
    kept = []
    for sent, count in logged:
        sent.outcome["logged"] = count
        if sent.artifacts is None:
            session.add(
                Delivery(
                    destination=context.run.destination,
                    program_code=sent.recording.program,
                    run_id=sent.recording.run_id,
                    batch_digest=sent.digest,
                    status="unchanged",
                    artifacts={"outcome": sent.outcome},
                    staged_path=None,
                    created_at=now,
                    updated_at=now,
                )
            )
        else:
            kept.append(
                {
                    "id": sent.recording.delivery_id,
                    "artifacts": {**sent.artifacts, "outcome": sent.outcome},
                }
            )
    if kept:
        session.execute(update(Delivery), kept)


def recorded_outcomes(
    context: RunContext, programs: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """program -> outcome of every program this run delivered (or found unchanged) and
    logged; limited to ``programs`` when given."""
    query = select(Delivery.program_code, Delivery.artifacts).where(
        Delivery.destination == context.run.destination,
        Delivery.run_id == context.run.run_id,
        Delivery.status.in_(("logged", "unchanged")),
    )
    if programs is not None:
        query = query.where(Delivery.program_code.in_(list(programs)))
    with session_scope(context.engine) as session:
        rows = session.execute(query).all()
    return {
        r.program_code: r.artifacts["outcome"]
        for r in rows
        if isinstance(r.artifacts, dict) and "outcome" in r.artifacts
    }


def deliver_shard(
    run: dict[str, Any], prepared: Sequence[dict[str, Any]], settings: Settings | None = None
) -> tuple[list[dict[str, Any]], dict[str, Exception]]:
    """Deliver a shard's prepared programs one after the other with one destination client;
    returns their outcomes and, per program that failed, its error (the others went on). A
    program an earlier attempt of the same run already delivered is not sent again: its
    recorded outcome is returned.

    Deliveries are written by one thread in shard order (:class:`_Sender`: each program's
    delivery row, its marks and bytes) and groups recorded by another in group order, each
    once the group's deliveries are done, while the next group is sent (one thread for both
    on SQLite). Meanwhile this thread reads, plans and renders the next programs (it only
    reads), at most about two groups ahead.

    The garbage collector leaves alone what the process held before the shard (``gc.freeze``
    until the shard is done): a shard makes and drops many small objects (ledgers, rows,
    cells), and each full collection would otherwise walk the whole process again."""
    with frozen():  # what the process held before the shard is not scanned again and again
        return _deliver_shard(run, prepared, settings)


def _deliver_shard(
    run: dict[str, Any], prepared: Sequence[dict[str, Any]], settings: Settings | None
) -> tuple[list[dict[str, Any]], dict[str, Exception]]:
    context = RunContext.of(run, settings)
    done = (
        {} if context.run.dry_run else recorded_outcomes(context, [p["program"] for p in prepared])
    )
    slots: list[list[dict[str, Any]] | Future[list[dict[str, Any]]]] = []
    failed: dict[str, Exception] = {}
    with ExitStack() as stack:
        if not context.run.dry_run and prepared and hasattr(context.client, "shard_session"):
            stack.enter_context(context.client.shard_session())
        sender = stack.enter_context(_Sender(context))
        group: list[_Entry] = []
        ahead = _Ahead(context, [p for p in prepared if str(p["program"]) not in done])
        for item in prepared:
            program = str(item["program"])
            if program in done:
                slots.append([done[program]])
                continue
            if sender.broken:
                break
            try:
                ready = _ready(context, item, ahead)
            except Exception as error:  # one program's failure stops only that program
                failed[program] = error
                continue
            if isinstance(ready, _Ready):
                children = len(ready.common["ledger"]["disclosures"])
                group.append(_Entry(program, children, sender.send(ready)))
            elif ready[1] is None:
                slots.append([ready[0]])
                continue
            else:
                children = len(ready[1].recording.ledger["disclosures"])
                group.append(_Entry(program, children, ready[1]))
            if _full(group):
                slots.append(sender.record(group))
                group = []
        if group:
            slots.append(sender.record(group))
    outcomes: list[dict[str, Any]] = []
    for slot in slots:
        outcomes += slot if isinstance(slot, list) else slot.result()
    return outcomes, failed | sender.failed


RECORD_GROUP_CHILDREN = 5_000
"""A shard records its programs in groups of about this many children (:func:`_full`)."""
RECORD_GROUP_PROGRAMS = 50


@dataclass(frozen=True)
class _Entry:
    """A program of a group to record: sent (or being sent), or found unchanged."""

    program: str
    children: int
    sent: Future[tuple[dict[str, Any], _Sent]] | _Sent


def _full(group: Sequence[_Entry]) -> bool:
    """Whether ``group`` is to be recorded now: bulk writes pay off past a few thousand
    children, while a crash before recording leaves open (to be reconciled, or resent by a
    retried task) only what at most two groups sent (one being recorded, the next being
    sent)."""
    children = sum(e.children for e in group)
    return children >= RECORD_GROUP_CHILDREN or len(group) >= RECORD_GROUP_PROGRAMS


class _Sender:
    """The threads that write a shard: one sends its programs (:func:`_transmit`), in the
    order they are handed to it, while the caller prepares the next programs; one records its
    groups (:func:`_record_sent`), in the order they are handed to it, each once every
    delivery of the group is done, so group k is recorded while group k+1 is sent (on
    SQLite both are one thread: see :func:`_recorder`). A program whose delivery fails is
    kept in :attr:`failed`.

    Should recording a group fail outright, nothing is sent once that is known
    (:attr:`broken`: each delivery checks it before it writes anything) and the group's
    error is raised where its outcomes are asked for. The next group's deliveries that went
    out before it was known (sent while the group was recorded) were accepted: they are
    still recorded in their turn, each program alone should that fail too, its delivery
    then left open (pending, its marks set) for the next run's reconciliation or a retried
    task, as after a crash. Nothing that was not sent is logged; nothing sent is dropped.

    The pending delivery rows of the programs handed over and not yet sent are inserted
    together, by one statement, at the turn of the first of them (each row still before its
    own program's upload): a crash leaves the later ones pending without a mark, as one
    that crashed just after its row, and the next run's reconciliation finds nothing of
    them sent."""

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.failed: dict[str, Exception] = {}
        self.broken = False
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deliver")
        self._recorder = _recorder(context, self._pool)
        self._records: list[Future[list[dict[str, Any]]]] = []
        self._queued: deque[_Ready] = deque()  # handed over, row not yet inserted
        self._rows: dict[str, int] = {}  # program -> its pending row, inserted ahead

    def __enter__(self) -> _Sender:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=kind is not None)
        self._recorder.shutdown(wait=True, cancel_futures=kind is not None)

    def send(self, ready: _Ready) -> Future[tuple[dict[str, Any], _Sent]]:
        """Send ``ready`` after everything handed over before it."""
        if ready.fresh:
            self._queued.append(ready)
        return self._pool.submit(self._transmit, ready)

    def record(self, group: Sequence[_Entry]) -> Future[list[dict[str, Any]]]:
        """Record ``group`` once its deliveries are done, after the groups before it;
        returns when the group before it is recorded (the caller stays at most about two
        groups ahead)."""
        future = self._recorder.submit(self._record, list(group))
        self._records.append(future)
        if len(self._records) > 1:
            wait([self._records[-2]])
        return future

    def _transmit(self, ready: _Ready) -> tuple[dict[str, Any], _Sent]:
        if self.broken:
            raise DeliveryStopped("not sent: recording an earlier group failed")
        program = ready.sending.program_code
        if ready.fresh and program not in self._rows and self._queued:
            queued = [self._queued.popleft() for _ in range(len(self._queued))]
            with suppress(SQLAlchemyError):  # none inserted: each inserts its own at its turn
                self._rows |= _new_delivery_rows(self.context, queued)
        return _transmit(ready, self._rows.pop(program, None))

    def _record(self, group: list[_Entry]) -> list[dict[str, Any]]:
        sent: list[_Sent] = []
        for entry in group:
            if isinstance(entry.sent, _Sent):
                sent.append(entry.sent)
                continue
            try:
                sent.append(entry.sent.result()[1])
            except Exception as error:  # one program's failure stops only that program
                self.failed[entry.program] = error
        if not sent:
            return []
        try:
            return _record_sent(self.context, sent, self.failed)
        except BaseException:
            self.broken = True
            raise


def _recorder(context: RunContext, sender: ThreadPoolExecutor) -> ThreadPoolExecutor:
    """The thread that records a shard's groups: its own on PostgreSQL, where a group's
    record (its own connection and transaction) and the next group's deliveries write
    different rows and run side by side; on SQLite the ``sender``'s, since its one writer
    would make each wait for the other's commit (and a long record time out a delivery's
    pending row or mark)."""
    if context.engine.dialect.name != "postgresql":
        return sender
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="record")


class DeliveryStopped(Exception):
    """A program not sent because recording an earlier group of its shard failed."""


def _record_sent(
    context: RunContext, group: Sequence[_Sent], failed: dict[str, Exception]
) -> list[dict[str, Any]]:
    """Record ``group`` in one transaction (each program alone should that fail), then remove
    its staged files in one delete; the outcomes of the programs logged, and each program that
    could not be logged in ``failed`` (its delivery stays open: the next run reconciles it)."""
    if not group:
        return []
    started = time.perf_counter()
    by_recording = {id(s.recording): s for s in group}

    def finish(session: Session, logged: Sequence[tuple[Recording, int]]) -> None:
        _finish(session, context, [(by_recording[id(r)], n) for r, n in logged])

    logged, errors = record_group(context, [s.recording for s in group], finish)
    failed.update(errors)
    done = [s for s in group if s.recording.program in logged]
    remove_staged_many(context, [s.prepared for s in done])
    share = round((time.perf_counter() - started) / len(group), 3)
    for sent in done:
        sent.outcome.setdefault("seconds", {})["record"] = share
    return [s.outcome for s in done]
