"""A dry run's view of a staging database's delivery state after the take-over, read only.

A real run first takes over the delivery state of each program last written under another
destination name (:func:`.staging_copy.take_over`); a dry run writes nothing, so without this
it would plan against this name's state alone and report a full resend after a rename.
:func:`view` says, per program last written under another name, which name's delivery state
to read alongside this name's; :func:`held_many` and :func:`rows_of` apply it (each child's
later row of the two wins, as the take-over copies it), so the dry run reports what the real
run would send and delete now.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipelines.destinations.base import ChildKey
from pipelines.submission.context import RunContext
from pipelines.submission.state import Held, Rows
from schemas import DeliveredRecord

_VIEWS: weakref.WeakKeyDictionary[RunContext, dict[str, str]] = weakref.WeakKeyDictionary()


def is_staging(context: RunContext) -> bool:
    """Whether the run's destination is a staging database."""
    return context.destination.type.value == "staging_db"


def view(context: RunContext) -> dict[str, str]:
    """A dry run's take-over view: program code -> the name whose delivery state a real run
    would take over now (read once per run and process); empty for a real run (it took over
    at plan) and for other destinations."""
    if not context.run.dry_run or not is_staging(context):
        return {}
    found = _VIEWS.get(context)
    if found is None:
        found = _VIEWS[context] = dict(context.client.last_writers())  # type: ignore[attr-defined]
    return found


def held_many(
    session: Session, context: RunContext, held: dict[str, dict[ChildKey, Held]]
) -> dict[str, dict[ChildKey, Held]]:
    """``held`` (this name's, per program) as a real run would see it after the take-over:
    each child's later row of this name's and the viewed name's (:func:`view`)."""
    writers = view(context)
    for program in [p for p in held if p in writers]:
        mine = _stamped(session, context.run.destination, program)
        theirs = _stamped(session, writers[program], program)
        for child, (their, at) in theirs.items():
            ours = mine.get(child)
            if ours is None or older(ours[1], at):
                held[program][(program, child)] = Held(their.digest, {}, their.status)
    return held


def held_counts(
    session: Session, context: RunContext, counts: dict[str, int], programs: Iterable[str]
) -> dict[str, int]:
    """``counts`` (children held per program, this name's: :func:`.withdrawals.held_counts`)
    with the programs of :func:`view` counted as :func:`held_many` sees them."""
    writers = view(context)
    viewed = [p for p in programs if p in writers]
    if not viewed:
        return counts
    from pipelines.submission.state import DROPPED, HELD, PROGRAM, load_held_many

    held = held_many(session, context, load_held_many(session, context.run.destination, viewed))
    out = {p: n for p, n in counts.items() if p not in writers}
    for program, children in held.items():
        n = sum(1 for (_, c), h in children.items() if c != PROGRAM and h.status in (HELD, DROPPED))
        if n:
            out[program] = n
    return out


def rows_of(
    session: Session, context: RunContext, held: dict[ChildKey, Held], keys: Iterable[ChildKey]
) -> dict[ChildKey, Held]:
    """The row keys of ``keys`` from the name whose row :func:`held_many` kept."""
    writers = view(context)
    out = dict(held)
    for program, local_id in keys:
        if program not in writers:
            continue
        rows: dict[str, tuple[Rows, Any]] = {}
        for name in (context.run.destination, writers[program]):
            found = session.execute(
                select(DeliveredRecord.rows, DeliveredRecord.updated_at).where(
                    DeliveredRecord.destination == name,
                    DeliveredRecord.program_code == program,
                    DeliveredRecord.child_local_id == local_id,
                )
            ).first()
            if found is not None:
                rows[name] = (dict(found.rows or {}), found.updated_at)
        mine, theirs = rows.get(context.run.destination), rows.get(writers[program])
        chosen = theirs if theirs and (mine is None or older(mine[1], theirs[1])) else mine
        if chosen is not None:
            before = out[(program, local_id)]
            out[(program, local_id)] = Held(before.digest, chosen[0], before.status)
    return out


def _stamped(session: Session, destination: str, program: str) -> dict[str, tuple[Held, Any]]:
    found = session.execute(
        select(
            DeliveredRecord.child_local_id,
            DeliveredRecord.digest,
            DeliveredRecord.status,
            DeliveredRecord.updated_at,
        ).where(DeliveredRecord.destination == destination, DeliveredRecord.program_code == program)
    )
    return {c: (Held(d, {}, s), at) for c, d, s, at in found}


def older(ours: Any, theirs: Any) -> bool:
    """Whether ``ours`` was written before ``theirs`` (times as the database returns them:
    aware on PostgreSQL, naive UTC on SQLite)."""
    if (ours.tzinfo is None) != (theirs.tzinfo is None):
        ours, theirs = ours.replace(tzinfo=None), theirs.replace(tzinfo=None)
    return bool(ours < theirs)
