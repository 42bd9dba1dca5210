"""Reconcile batches an earlier run sent (or may have sent) but never logged.

For each such delivery of the destination: if the destination holds the batch as it was sent
(the children it carried, from the delivery's recorded changes), its disclosures are logged
now, under the run that sent them and with its run date (the batch keeps the identity it was
staged with, :func:`.batches.load_batch`: a file drop is looked for in that date's folder, on
whatever night the reconciliation happens), and the delivery state records them as held; if not,
nothing arrived, nothing is logged, and the batch is marked failed so this run sends it afresh.
Deletions of that run (withdrawals, and old copies a changed key left) are logged here too,
under that run and its date, where the destination says it made them (a staging database: the
run's deletion marker, written in the transaction that deleted; Ed-Fi: its own ledger, which
marks each resource deleted by the run that deleted it, a child counting as withdrawn once
nothing of it is held; a file drop: the withdrawals file of a batch that arrived, or is
presumed to have); the delivery state then no longer holds the withdrawn children, so this
run neither withdraws them again nor logs them a second time. Elsewhere (or when the run
crashed before deleting) the state still lists the withdrawn children as held, so this run
plans them again and logs them;
old copies a staging database still has are deleted here, by this run, and logged under it
(the delivery state logged with the batch has the new keys only: no later night would find
them). Either way the staged files go.

A file drop's batch that did not arrive whole (killed mid-upload: some files, ``.part`` files,
no manifest) is not just sent afresh: what it left in its folder is removed first (the
destination's ``discard``), so no file sits at the state that no manifest vouches for and no
disclosure log entry explains; the run summary says how many files went from which folder. A
batch whose own manifest is in its folder arrived whole (the manifest is written last), even
when the state has since taken its files away (``arrived``): it is logged, never discarded. A
same-day rerun killed while renaming its files into place has removed the folder's old
manifest: that folder (the last logged batch's) is no longer complete, so its remaining files
of the batch's names go too, its disclosures stay logged (the folder was complete and could be
read), and the delivery state forgets the program's snapshot digest so this run sends the
program's whole snapshot again (the children it held stay held: withdrawals still name them).

A file drop's folder the state took away whole before this run looked (files and manifest
gone) shows nothing of the batch, exactly like a batch that never left: the delivery row's
marks (:mod:`.marks`, committed before each step) tell them apart (:func:`.arrival.decide`). A batch
whose upload or publish had begun and of which nothing is left is logged as presumed arrived,
under the run that sent it, with its date and the per-child digests of the staged batch; the
run summary and the delivery row say it was presumed, and the program's snapshot goes again
tonight (the state may have taken it incomplete; a same-date resend of identical content is
the same disclosure and is not logged twice). A batch that never began its upload is not
logged. Once its publish began, a file of the batch under no name (final or ``.part``) was
published and taken, even when the state left what it did not see (``.part`` files): the batch
is presumed arrived too. Otherwise a folder that still shows the batch was not taken: what the
batch left goes, as above. A staged batch lost too (its files unreadable) is logged,
when it arrived or is presumed to have, from its delivery row (:func:`_settle_unreadable`:
the children it sent, every field the agreement allows, the content unknown); otherwise what
it left goes by the names the row keeps. An Ed-Fi batch lost so is logged from the API's own
ledger (:func:`_settle_unreadable_at_api`): per child, each resource the crashed run sent and
the API still holds, with exactly the fields its bodies carried (the ledger keeps them since
migration 0014; a row from before, with every permitted field such a resource can carry), and
the deletions it made.

A destination that cannot be reached while reconciling (``holds`` or ``discard`` fails) leaves
the delivery open and its staged files kept: the error stops this run at its plan (sending the
program afresh now would leave an unsettled older batch behind tonight's), and the next run
settles it.

A destination that takes a batch part by part and can say which parts it holds (Ed-Fi,
resource by resource: ``carried_by``) has exactly those logged, whole or not, with the
``resource:field`` pairs its deliveries log. A crash between the students and their school
associations logs the students under the run that sent them, with its date; the delivery state
holds the child as partly sent, so this run sends the rest (what is there is not sent again),
logs it, and can withdraw the child if it no longer qualifies.

Each delivery is first judged (:func:`judge`: a :class:`Settlement`, what is to be logged and
marked), then settled (:func:`_apply`). A dry run reads the same judgement without writing
anything (:mod:`.reconcile_view`): a file drop's folder is only looked at, an Ed-Fi ledger
only read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pipelines.db import session_scope
from pipelines.destinations.base import Batch, ChildKey, DeliveryError, Discarded
from pipelines.destinations.local import MANIFEST, part_name
from pipelines.staging import StagingError
from pipelines.submission import staging_view
from pipelines.submission.arrival import PRESUMED, Marks, Verdict, decide
from pipelines.submission.batches import load_batch, load_ledger, remove_staged
from pipelines.submission.context import RunContext
from pipelines.submission.deliver import outgoing
from pipelines.submission.record import Recording, StateUpdate, record_delivery, record_one
from pipelines.submission.state import (
    PROGRAM,
    Changes,
    Current,
    Held,
    current_of,
    load_held,
    with_rows,
)
from pipelines.submission.withdrawals import withdrawals_spec
from privacy.transforms.registry import get_transform
from schemas import DeliveredRecord, Delivery, Run
from schemas.filespec import load_spec

UNFINISHED = ("pending", "delivered")
PARTIAL = "partial"
"""The ``delivery_state`` digest of a child of whom a crashed run left only part at the
destination: no batch has it, so the next run sends the child (what is there already is not
sent again) and can withdraw what is there."""


def reconcile(context: RunContext) -> dict[str, str]:
    """Settle every unfinished delivery of the run's destination; program code -> outcome.
    (A staging database's other names are caught up first, at plan:
    :func:`.staging_copy.catch_up`.)"""
    rows = open_deliveries(context)
    outcomes: dict[str, str] = {}
    destination = context.client if rows else None
    for delivery in rows:
        delivery_id, run_id, program = delivery.delivery_id, delivery.run_id, delivery.program
        try:
            outcomes[program] = _settle(
                context,
                destination,
                delivery_id,
                run_id,
                program,
                delivery.artifacts,
                delivery.marks,
            )
        except DeliveryError as error:
            raise type(error)(
                f"reconciling run {run_id}'s delivery of {program}: {error}; the delivery "
                "stays open for the next run"
            ) from error
    return outcomes


def open_deliveries(context: RunContext, program: str | None = None) -> list[Open]:
    """The destination's unfinished deliveries (of ``program`` when given), in the order
    :func:`reconcile` settles them."""
    query = select(
        Delivery.id,
        Delivery.run_id,
        Delivery.program_code,
        Delivery.artifacts,
        Delivery.upload_began_at,
        Delivery.publish_began_at,
    ).where(Delivery.destination == context.run.destination, Delivery.status.in_(UNFINISHED))
    if program is not None:
        query = query.where(Delivery.program_code == program)
    with session_scope(context.engine) as session:
        rows = session.execute(query.order_by(Delivery.id)).all()
    return [
        Open(i, run_id, code, artifacts, Marks(upload is not None, publish is not None))
        for i, run_id, code, artifacts, upload, publish in rows
    ]


def _settle(
    context: RunContext,
    destination: Any,
    delivery_id: int,
    run_id: str,
    program: str,
    artifacts: dict[str, Any],
    marks: Marks,
) -> str:
    """Settle one unfinished delivery; its outcome for the run summary."""
    found = judge(context, destination, Open(delivery_id, run_id, program, artifacts, marks))
    if found is None:
        return _settle_unreadable(context, destination, delivery_id, run_id, artifacts, marks)
    return _apply(context, destination, found)


@dataclass(frozen=True)
class Open:
    """One unfinished delivery of the destination, as its row keeps it."""

    delivery_id: int
    run_id: str
    program: str
    artifacts: dict[str, Any]
    marks: Marks


@dataclass(frozen=True)
class Settlement:
    """What settling one unfinished delivery does, decided before anything of it is written
    (:func:`judge`): the records to log, in order, in one transaction (each with the delivery
    state it leaves), what becomes of the delivery row, and the old copies a staging database
    still has that this run deletes (and logs under itself) first. A real run carries it out
    (:func:`_apply`); a dry run only reads it (:mod:`.reconcile_view`)."""

    open: Open
    kind: str
    """``presumed``, ``arrived`` (whole), ``partial`` (Ed-Fi, in part) or ``not_arrived``."""
    records: tuple[Recording, ...]
    verdict: Verdict
    deleted: dict[ChildKey, str]
    replaced: dict[ChildKey, tuple[str, ...]]
    mark: str | None
    """``failed`` (the batch is sent afresh) or None (logged with its records)."""
    forget_snapshot: bool
    """The program's snapshot digest is cleared: its snapshot goes again tonight."""
    old_copies: Changes | None
    discarded: _Discard | None

    def describe(self, logged: int, left: int, *, view: bool = False) -> str:
        """The run summary's words, given how many entries the records logged (disclosures
        and deletions) and how many old copies this run deleted."""
        run_id = self.open.run_id
        gone = len(self.deleted) + len(self.replaced)
        removed = _removed(self.discarded)
        if view:
            removed = removed.replace("; removed ", "; would remove ", 1)
        if self.kind == "presumed":
            return (
                f"logged {logged - len(self.deleted)} disclosures{_deletions(len(self.deleted))} "
                f"of run {run_id}, {PRESUMED[self.verdict]}"
            )
        if self.kind == "arrived":
            text = f"logged {logged - gone} disclosures{_deletions(gone)} of run {run_id}"
            if left:
                text += f"; deleted {left} old copies it left (logged under this run)"
            return text
        if self.kind == "partial":
            return (
                f"run {run_id} arrived in part: logged {logged - gone} disclosures"
                f"{_deletions(gone)} of it; the rest sent afresh"
            )
        text = f"run {run_id} did not arrive{removed}; sent afresh"
        if gone:
            text += f"; logged{_deletions(gone)} it made"
        return text


def judge(
    context: RunContext, destination: Any, delivery: Open, *, view: bool = False
) -> Settlement | None:
    """What settling ``delivery`` does (see the module doc); None when its staged batch
    cannot be read (:func:`_settle_unreadable` settles it). Writes nothing but what it must
    to find out: a file drop's batch that did not arrive whole has what it left removed first
    (its folder then says whether it was taken), and an Ed-Fi API's resources found held are
    written to its ledger. With ``view`` (a dry run) not even that: what the folder shows is
    only read, the ledger left as it is, and the delivery state read as a dry run sees it."""
    delivery_id, run_id, program = delivery.delivery_id, delivery.run_id, delivery.program
    artifacts, marks = delivery.artifacts, delivery.marks
    prepared: dict[str, Any] = artifacts["prepared"]
    try:
        ledger = load_ledger(context, prepared)
        batch = load_batch(context, prepared, ledger, run_id=run_id)
    except (StagingError, OSError):
        return None
    assert destination is not None
    recorded = artifacts.get("changes") or {}
    snapshot = bool(recorded.get("snapshot", True))
    changes = Changes(
        send={(p, c) for p, c in recorded.get("send", [])},
        program=bool(recorded.get("program", True)),
        withdraw={(p, c): why for p, c, why in recorded.get("withdraw", [])},
        replace={(p, c): rows for p, c, rows in recorded.get("replace", [])},
        snapshot=snapshot,
    )
    with session_scope(context.engine) as session:
        held = _held(session, context, program, changes.withdraw, view)
    if recorded:
        # as sent: a program sharing aggregate outputs only sent its tables alone
        sent = outgoing(context, batch, changes, held, bool(prepared.get("keeps_aggregates")))
        accepted = changes.send & batch.child_keys
    else:  # a delivery recorded before the delivery state existed
        sent, accepted = batch, set(batch.child_keys)
    whole = destination.holds(sent) or _arrived(destination, sent)
    did_delete = bool(recorded) and _did_delete(destination, run_id, program, changes)
    deleted = dict(changes.withdraw) if did_delete else {}
    replaced = _what(changes.replace) if did_delete else {}
    if recorded:  # an API's deletions, by its own ledger (Ed-Fi)
        api_deleted, api_replaced = _deleted_at_api(destination, run_id, program, changes)
        deleted |= api_deleted
        replaced |= api_replaced
    whole = whole or bool(deleted and not sent.artifacts)  # it only deleted: that is done
    carried = _carried(destination, sent, run_id, whole, view)
    current = current_of(batch, ledger)
    discarded = (
        None
        if whole or carried
        else _discard(context, destination, run_id, program, prepared, view=view)
    )
    shows, missing = _found(discarded, prepared)
    verdict = decide(whole=whole, shows=shows, missing=missing, marks=marks)
    if verdict is Verdict.ARRIVED or verdict in PRESUMED:  # its withdrawals file went with it
        deleted |= _listed(context, sent, changes)
    crashed = {"run_id": run_id, "program": program, "ledger": ledger}
    date = dt.date.fromisoformat(batch.run_date)
    common: dict[str, Any] = {**crashed, "run_date": date, "rejected": {}}
    state = StateUpdate(current, held, changes.program, snapshot)
    if verdict in PRESUMED:
        main = Recording(
            **common, accepted=set(accepted), delivery_id=delivery_id, deleted=deleted, state=state
        )
        return Settlement(
            delivery, "presumed", (main,), verdict, deleted, {}, None, True, None, discarded
        )
    if whole:
        main = Recording(
            **common,
            accepted=set(accepted),
            delivery_id=delivery_id,
            deleted=deleted,
            replaced=replaced,
            carried=carried,
            state=state,
        )
        old = None if did_delete else changes
        return Settlement(
            delivery, "arrived", (main,), verdict, deleted, replaced, None, False, old, discarded
        )
    if carried:
        part = set(carried) & set(accepted)
        partial = Current({k: PARTIAL for k in part}, current.rows, current.program_digest)
        main = Recording(
            run_id=run_id,
            program=program,
            ledger={**ledger, "redactions": []},
            run_date=dt.date.fromisoformat(prepared["run_date"]),
            accepted=part,
            rejected={},
            delivery_id=None,
            deleted=deleted,
            replaced=replaced,
            carried=carried,
            state=StateUpdate(partial, held, False, snapshot),
        )
        return Settlement(
            delivery,
            "partial",
            (main,),
            verdict,
            deleted,
            replaced,
            "failed",
            False,
            None,
            discarded,
        )
    records: tuple[Recording, ...] = ()
    if deleted or replaced:  # its batch was overwritten since, but it deleted these
        records = (
            Recording(
                **{**common, "ledger": {**ledger, "redactions": []}},
                accepted=set(),
                delivery_id=None,
                deleted=deleted,
                replaced=replaced,
                state=StateUpdate(current, held, False, snapshot),
            ),
        )
    lost = discarded is not None and discarded.snapshot_lost
    found = (verdict, deleted, replaced, "failed", lost, None, discarded)
    return Settlement(delivery, "not_arrived", records, *found)


def _held(
    session: Session, context: RunContext, program: str, withdraw: dict[ChildKey, str], view: bool
) -> dict[ChildKey, Held]:
    """What the destination holds of ``program`` (with the row keys of the children the
    batch withdrew); for a dry run, as it sees it (:mod:`.staging_view`: a staging
    database's take-over)."""
    held = load_held(session, context.run.destination, program)
    if view:
        held = staging_view.held_many(session, context, {program: held})[program]
    held = with_rows(session, context.run.destination, held, withdraw)
    return staging_view.rows_of(session, context, held, withdraw) if view else held


def _apply(context: RunContext, destination: Any, settled: Settlement) -> str:
    """Carry out ``settled``: the old copies the crashed run left deleted (logged under this
    run), its records logged, its delivery row marked; its staged files removed."""
    left: dict[ChildKey, tuple[str, ...]] = {}
    if settled.old_copies is not None:
        left = _delete_old_copies(context, destination, settled.open.program, settled.old_copies)
    delivery_id = settled.open.delivery_id
    with session_scope(context.engine) as session:
        if left:  # deleted now, by this run: logged under it
            record_one(session, context, _old_copies(context, settled, left))
        logged = sum(record_one(session, context, r) for r in settled.records)
        if settled.kind == "presumed":
            _presumed(session, context, delivery_id, settled.verdict)
        if settled.mark is not None:
            _mark(session, delivery_id, settled.mark, forget_snapshot=settled.discarded)
    remove_staged(context, settled.open.artifacts["prepared"])
    return settled.describe(logged, len(left))


def _old_copies(
    context: RunContext, settled: Settlement, left: dict[ChildKey, tuple[str, ...]]
) -> Recording:
    """The record of the old copies this run deleted for a crashed run: under this run."""
    return Recording(
        run_id=context.run.run_id,
        run_date=context.run.run_date,
        program=settled.open.program,
        ledger={"disclosures": [], "redactions": []},
        accepted=None,
        rejected={},
        delivery_id=None,
        replaced=left,
    )


def _settle_unreadable(
    context: RunContext,
    destination: Any,
    delivery_id: int,
    run_id: str,
    artifacts: dict[str, Any],
    marks: Marks,
) -> str:
    """Settle a delivery whose staged batch cannot be read: what it left at a file drop goes
    (by the names its row keeps). It is logged when it arrived (its own manifest was there)
    or is presumed arrived (:func:`decide`), from its row: each child it sent
    (``changes.send``), with every field the agreement lets leave (the child's own are lost
    with the staged ledger: never fewer than were sent) and, for content no longer known, the
    digest of ``unknown:{run}:{program}:{child}``; the delivery state holds those children
    as partly known (:data:`PARTIAL`), so this run sends the whole snapshot again. Either way
    the run's redaction audit is lost with its staged ledger: one audit line says so, under
    that run, with the counts its row kept (:func:`_audit_lost`)."""
    prepared: dict[str, Any] = artifacts["prepared"]
    program = str(prepared["program"])
    if hasattr(destination, "sent_fields_by"):
        return _settle_unreadable_at_api(context, destination, delivery_id, run_id, artifacts)
    discarded = _discard(context, destination, run_id, program, prepared)
    arrived = discarded is not None and MANIFEST in discarded.done.removed
    shows, missing = _found(discarded, prepared)
    verdict = decide(whole=arrived, shows=shows, missing=missing, marks=marks)
    recorded = artifacts.get("changes") or {}
    sent = {(p, c) for p, c in recorded.get("send", [])}
    lost = _audit_lost(run_id, program, prepared)
    if verdict is Verdict.NOT_ARRIVED or not sent:
        with session_scope(context.engine) as session:
            record_delivery(  # the crashed run's redaction audit went with its staged ledger
                session,
                context,
                run_id=run_id,
                program=program,
                ledger={"disclosures": [], "redactions": [lost]},
                run_date=dt.date.fromisoformat(
                    prepared.get("run_date") or _run_date(session, run_id)
                ),
                accepted=None,
                rejected={},
                delivery_id=None,
            )
            _mark(session, delivery_id, "failed", forget_snapshot=discarded)
        return "failed: staged files unreadable" + _removed(discarded) + ", sent afresh"
    run_date = prepared.get("run_date")
    fields = sorted(context.agreement.fields)
    ledger = {
        "disclosures": [
            {
                "program_code": p,
                "child_local_id": c,
                "fields": fields,
                "digest": hashlib.sha256(f"unknown:{run_id}:{p}:{c}".encode()).hexdigest(),
            }
            for p, c in sorted(sent)
        ],
        "redactions": [lost],
    }
    with session_scope(context.engine) as session:
        run_date = run_date or _run_date(session, run_id)
        held = load_held(session, context.run.destination, program)
        partial = Current({k: PARTIAL for k in sent}, {}, "")
        logged = record_delivery(
            session,
            context,
            run_id=run_id,
            program=program,
            ledger=ledger,
            run_date=dt.date.fromisoformat(run_date),
            accepted=sent,
            rejected={},
            delivery_id=delivery_id,
            state=StateUpdate(partial, held, False, bool(recorded.get("snapshot", True))),
        )
        _presumed(session, context, delivery_id, verdict)
    why = PRESUMED.get(verdict, "arrived whole (its own manifest was there)")
    return (
        f"logged {logged} disclosures of run {run_id} from its delivery row (staged files "
        f"unreadable: every field the agreement allows, content unknown), {why}"
        f"{_removed(discarded)}"
    )


AUDIT_LOST = "redaction_audit_lost"
"""The reason code of the audit line that says a crashed run's redaction audit is lost."""


def _audit_lost(run_id: str, program: str, prepared: dict[str, Any]) -> dict[str, Any]:
    """The program-level redaction audit line of a crashed run whose staged ledger (and with
    it the run's redaction audit: who was withheld and which fields removed, and why) cannot
    be read: it says so, with the counts the delivery row kept (no child named)."""
    counts = prepared.get("counts") or {}
    rule = (
        f"the staged ledger of run {run_id} could not be read: its redaction audit of this "
        "program (each child withheld, each field removed, and why) is not recovered"
    )
    if counts:
        parts = []
        for what, key in (("children withheld", "withheld_by_reason"),
                          ("fields removed", "fields_removed_by_reason")):  # fmt: skip
            by = {str(k): int(v) for k, v in (counts.get(key) or {}).items() if v}
            each = ", ".join(f"{k} {n}" for k, n in sorted(by.items()))
            parts.append(f"{sum(by.values())} {what}" + (f" ({each})" if each else ""))
        rule += "; its counts: " + "; ".join(parts)
    else:
        rule += "; its counts are unknown"
    return {"subject": program, "field": None, "reason": AUDIT_LOST, "rule": rule}


def _settle_unreadable_at_api(
    context: RunContext,
    destination: Any,
    delivery_id: int,
    run_id: str,
    artifacts: dict[str, Any],
) -> str:
    """Settle a delivery to an API that keeps its own ledger (Ed-Fi) whose staged batch cannot
    be read: what that ledger says the crashed run left at the API is logged under that run
    and its date (each resource it sent, with exactly the fields its bodies carried, or for a
    ledger row from before migration 0014 every permitted field such a resource can carry:
    ``sent_fields_by``; the content no longer known: the digest of
    ``unknown:{run}:{program}:{child}``), and so are the deletions it made (``withdrawn_by``).
    The delivery is marked failed: this run sends the program afresh (what the API holds
    unchanged is not sent again, nor logged twice), and the children logged are held as
    partly known (:data:`PARTIAL`)."""
    prepared: dict[str, Any] = artifacts["prepared"]
    program = str(prepared["program"])
    recorded = artifacts.get("changes") or {}
    withdraw = {(p, c): why for p, c, why in recorded.get("withdraw", [])}
    carried = dict(destination.sent_fields_by(run_id, program, _permitted(context)))
    gone, replaced = destination.withdrawn_by(run_id, program, withdraw)
    deleted = {key: withdraw[key] for key in gone}
    with session_scope(context.engine) as session:
        logged = 0
        if carried or deleted or replaced:
            run_date = prepared.get("run_date") or _run_date(session, run_id)
            held = load_held(session, context.run.destination, program)
            held = with_rows(session, context.run.destination, held, deleted)
            ledger = {
                "disclosures": [
                    {
                        "program_code": p,
                        "child_local_id": c,
                        "fields": list(carried[(p, c)]),
                        "digest": hashlib.sha256(f"unknown:{run_id}:{p}:{c}".encode()).hexdigest(),
                    }
                    for p, c in sorted(carried)
                ],
                "redactions": [],
            }
            partial = Current(dict.fromkeys(carried, PARTIAL), {}, "")
            logged = record_delivery(
                session,
                context,
                run_id=run_id,
                program=program,
                ledger=ledger,
                run_date=dt.date.fromisoformat(run_date),
                accepted=set(carried),
                rejected={},
                delivery_id=None,
                deleted=deleted,
                replaced=replaced,
                carried=carried,
                state=StateUpdate(partial, held, False, bool(recorded.get("snapshot", True))),
            )
        _mark(session, delivery_id, "failed")
    gone_count = len(deleted) + len(replaced)
    return (
        f"staged files unreadable: logged {logged - gone_count} disclosures"
        f"{_deletions(gone_count)} of run {run_id} from the destination's own ledger (each "
        "resource it sent, with the fields its bodies carried, or every permitted field its "
        "resource can carry for a row from before the ledger kept fields; content unknown); "
        "sent afresh"
    )


def _permitted(context: RunContext) -> set[str]:
    """The fields the agreement lets leave (a transform other than ``drop``)."""
    return {
        name for name, spec in context.agreement.fields.items() if get_transform(spec.name).leaves
    }


def _deleted_at_api(
    destination: Any, run_id: str, program: str, changes: Changes
) -> tuple[dict[ChildKey, str], dict[ChildKey, tuple[str, ...]]]:
    """What the crashed run deleted at an API that says it (Ed-Fi's ledger: ``withdrawn_by``):
    the children it withdrew (child -> reason) and, per child, the old copies it replaced;
    nothing for the other destinations."""
    withdrawn_by = getattr(destination, "withdrawn_by", None)
    if withdrawn_by is None:
        return {}, {}
    gone, replaced = withdrawn_by(run_id, program, changes.withdraw)
    return {key: changes.withdraw[key] for key in gone}, dict(replaced)


def _listed(context: RunContext, sent: Batch, changes: Changes) -> dict[ChildKey, str]:
    """The children the withdrawals file of a file drop's batch that arrived (or is presumed
    to have) named: the state was told to delete them by that run (child -> reason)."""
    if not changes.snapshot or not changes.withdraw:
        return {}
    spec = withdrawals_spec([load_spec(n) for n in context.destination.formats])
    if spec is None:
        return {}
    named = {k for a in sent.artifacts if a.name == spec.file_name for k in a.child_keys}
    return {key: why for key, why in changes.withdraw.items() if key in named}


def _found(discarded: _Discard | None, prepared: dict[str, Any]) -> tuple[bool | None, bool]:
    """What ``discard`` found of the batch in its folder: anything (``shows``; None: no
    discard), and whether one of its artifacts is there under no name (``missing``). The
    manifest's ``.part`` file alone shows nothing: it names no child, and a local folder
    writes it with the artifacts' ``.part`` files, so a folder the state emptied of those
    but not of it was taken all the same (never under-state a disclosure)."""
    if discarded is None:
        return None, False
    there = set(discarded.done.removed) | set(discarded.done.kept)
    names = [str(a["name"]) for a in prepared["artifacts"]]
    forms = [{n, f"{n}.pgp", part_name(n), part_name(f"{n}.pgp")} for n in names]
    return bool(there - {part_name(MANIFEST)}), any(not (f & there) for f in forms)


def _presumed(session: Session, context: RunContext, delivery_id: int, verdict: Verdict) -> None:
    """A batch logged as presumed arrived: its delivery row says so and by which run, and the
    program's snapshot digest is cleared (:func:`_forget_snapshot`) so this run sends the
    whole snapshot again (the state may have taken it incomplete)."""
    row = session.get(Delivery, delivery_id)
    assert row is not None
    row.artifacts = {
        **row.artifacts,
        "reconciled": {"verdict": verdict.value, "by_run": context.run.run_id},
    }
    _forget_snapshot(session, row.destination, row.program_code)


@dataclass(frozen=True)
class _Discard:
    """What ``discard`` removed, and whether the folder was an earlier logged batch's that
    lost its manifest (the program's snapshot must go again)."""

    done: Discarded
    snapshot_lost: bool


def _discard(
    context: RunContext,
    destination: Any,
    run_id: str,
    program: str,
    prepared: dict[str, Any],
    *,
    view: bool = False,
) -> _Discard | None:
    """Remove what the batch of ``run_id`` left at a file drop without arriving whole
    (``discard``; None for a destination without it). The names are the recorded ones (the
    delivery row's staged artifacts, readable even when the staged files are not), the
    withdrawals file when the destination's formats carry one, and those of every batch an
    earlier logged run of the program delivered to the same folder (a same-day rerun: their
    files lose their manifest if the crash came while renaming). Raises
    :class:`DeliveryError` when the destination cannot be reached (the caller leaves the
    delivery open). With ``view`` (a dry run) nothing is removed: what would be is said."""
    discard = getattr(destination, "discard", None)
    if discard is None:
        return None
    with session_scope(context.engine) as session:
        run_date = prepared.get("run_date") or _run_date(session, run_id)
        earlier = _earlier_names(session, context, program, run_date, run_id)
    names = {str(a["name"]) for a in prepared["artifacts"]} | earlier
    spec = withdrawals_spec([load_spec(n) for n in context.destination.formats])
    if spec is not None:
        names.add(spec.file_name)
    if view:  # a dry run: what would go, read only
        done: Discarded = discard(run_date, program, sorted(names), run_id=run_id, dry_run=True)
    else:
        done = discard(run_date, program, sorted(names), run_id=run_id)
    return _Discard(done, snapshot_lost=bool(earlier) and done.vouched_by is None)


def _run_date(session: Session, run_id: str) -> str:
    run = session.get(Run, run_id)
    assert run is not None, f"run {run_id} of an unfinished delivery is not recorded"
    return run.run_date.isoformat()


def _earlier_names(
    session: Session, context: RunContext, program: str, run_date: str, run_id: str
) -> set[str]:
    """The artifact names of the program's logged deliveries of ``run_date`` by runs other
    than ``run_id`` (they wrote to the same folder)."""
    rows = session.execute(
        select(Delivery.artifacts)
        .join(Run, Run.id == Delivery.run_id)
        .where(
            Delivery.destination == context.run.destination,
            Delivery.program_code == program,
            Delivery.status == "logged",
            Delivery.run_id != run_id,
            Run.run_date == dt.date.fromisoformat(run_date),
        )
    ).scalars()
    names: set[str] = set()
    for artifacts in rows:
        prepared = artifacts.get("prepared") if isinstance(artifacts, dict) else None
        if prepared and prepared.get("run_date", run_date) == run_date:
            names |= {str(a["name"]) for a in prepared.get("artifacts", [])}
    return names


def _forget_snapshot(session: Session, destination: str, program: str) -> None:
    """The destination no longer offers the program's last logged snapshot (its folder lost
    its manifest to a same-day rerun killed while renaming, and what was left of it is gone):
    the program's own digest in the delivery state is cleared, so this run sends the whole
    snapshot again. Its children stay held: the folder was complete and could have been read
    (their disclosures stand), and withdrawals still name them."""
    session.execute(
        update(DeliveredRecord)
        .where(
            DeliveredRecord.destination == destination,
            DeliveredRecord.program_code == program,
            DeliveredRecord.child_local_id == PROGRAM,
        )
        .values(digest="", updated_at=dt.datetime.now(dt.UTC))
    )


def _removed(discarded: _Discard | None) -> str:
    if discarded is None:
        return ""
    text = f"; {discarded.done.describe()}"
    if discarded.snapshot_lost:
        text += "; the folder's earlier logged batch lost its manifest: its snapshot goes again"
    return text


def _arrived(destination: Any, sent: Batch) -> bool:
    """Whether a file drop's folder has the batch's own manifest (written last: the batch
    arrived whole) though its files are no longer all there (the state took them): it
    arrived, and is logged, never discarded."""
    arrived = getattr(destination, "arrived", None)
    return bool(arrived(sent)) if arrived is not None else False


def _did_delete(destination: Any, run_id: str, program: str, changes: Changes) -> bool:
    """Whether the crashed run carried out its deletions (withdrawals and old copies a changed
    key left): at a staging database whose deletion marker of that run is there (written in
    the transaction that deleted). They are then logged under that run and its date, and the
    delivery state no longer holds the withdrawn children. False elsewhere, or when it deleted
    nothing (crashed before deleting, or the rows were gone): this run plans the withdrawals
    again, and deletes the old copies itself (:func:`_delete_old_copies`)."""
    deleted_by = getattr(destination, "deleted_by", None)
    if deleted_by is None or not (changes.withdraw or changes.replace):
        return False
    return bool(deleted_by(run_id, program))


def _what(replace: dict[ChildKey, Any]) -> dict[ChildKey, tuple[str, ...]]:
    """Per child, the tables of its old copies (what a ``delete`` entry names)."""
    return {key: tuple(sorted(rows)) for key, rows in replace.items()}


def _delete_old_copies(
    context: RunContext, destination: Any, program: str, changes: Changes
) -> dict[ChildKey, tuple[str, ...]]:
    """Delete now the old copies the crashed run was to delete and did not (a staging
    database: the delivery state of the batch being logged has the new keys only, so no later
    night would find them); per child, the tables, to log under this run. Raises
    :class:`DeliveryError` when the database cannot be reached (nothing is logged: the
    delivery stays open)."""
    if not changes.replace or not hasattr(destination, "delete_rows"):
        return {}
    rows: dict[str, list[list[str]]] = {}
    for stale in changes.replace.values():
        for name, keys in stale.items():
            rows.setdefault(name, []).extend(keys)
    run = context.run
    destination.delete_rows(
        rows, program_code=program, run_id=run.run_id, run_date=run.run_date.isoformat()
    )
    return _what(changes.replace)


def _deletions(count: int) -> str:
    return f" and {count} deletions" if count else ""


def _carried(
    destination: Any, sent: Batch, run_id: str, whole: bool, view: bool = False
) -> dict[ChildKey, tuple[str, ...]] | None:
    """Per child, what the crashed run left at a destination that says it (Ed-Fi, resource
    by resource); None for the others (a batch is there whole or not at all). With ``view``
    (a dry run) the destination's own ledger is left as it is."""
    carried_by = getattr(destination, "carried_by", None)
    if carried_by is None:
        return None
    if view:
        return dict(carried_by(sent, run_id, held_by_api=whole, record=False))
    return dict(carried_by(sent, run_id, held_by_api=whole))


def _mark(
    session: Session, delivery_id: int, status: str, *, forget_snapshot: _Discard | None = None
) -> None:
    row = session.get(Delivery, delivery_id)
    assert row is not None
    row.status = status
    row.updated_at = dt.datetime.now(dt.UTC)
    if forget_snapshot is not None and forget_snapshot.snapshot_lost:
        _forget_snapshot(session, row.destination, row.program_code)
