"""A staging database's copy under more than one destination name.

The tables of a staging database are the database's, not a destination name's: a destination
renamed in config (or a second destination file pointing at the same database) writes the very
rows the other name wrote. The database's markers (:mod:`pipelines.destinations.staging_db`) say
which name wrote each program's latest batch or deletion, and its unchanged-batch skip reads the
latest marker whoever wrote it. The program database keeps what a destination holds per name
(:mod:`.state`), so before a run settles or plans anything, :func:`take_over` brings this name's
delivery state of every program last written under another name up to date from that name's:
child by child, the later of the two rows (the one written after the other) says what the
tables hold of the child. A renamed destination so withdraws a child the database held from
before the rename, and resends nothing it holds; two destination files on one database each
plan against what the other did. The other name's rows are kept (copied, not moved): should
that file still run, it takes this name's rows over in turn once this name writes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipelines.db import session_scope
from pipelines.submission.context import RunContext
from schemas import DeliveredRecord

COPIED = ("digest", "rows", "status", "run_id", "updated_at")


def take_over(context: RunContext) -> dict[str, str]:
    """For a staging database, this destination's delivery state of each program last
    written under another name, brought up to date from that name's; program code -> what
    was done (for the run summary). Nothing for other destinations."""
    last_writers = getattr(context.client, "last_writers", None)
    if last_writers is None:
        return {}
    writers: dict[str, str] = last_writers()
    name = context.run.destination
    outcomes: dict[str, str] = {}
    with session_scope(context.engine) as session:
        for program, writer in sorted(writers.items()):
            taken = _merge(session, writer, name, program)
            outcomes[program] = (
                f"the staging database was last written for it as destination {writer}: "
                f"{taken} rows of its delivery state taken over"
            )
    return outcomes


def _merge(session: Session, source: str, target: str, program: str) -> int:
    """Copy ``source``'s delivery-state rows of ``program`` to ``target`` where ``target``
    has none of the child or an older one; how many were copied."""

    def rows(destination: str) -> dict[str, DeliveredRecord]:
        found = session.scalars(
            select(DeliveredRecord).where(
                DeliveredRecord.destination == destination,
                DeliveredRecord.program_code == program,
            )
        )
        return {r.child_local_id: r for r in found}

    theirs, ours = rows(source), rows(target)
    taken = 0
    for child, their in theirs.items():
        our = ours.get(child)
        if our is not None and not _older(our.updated_at, their.updated_at):
            continue
        values: dict[str, Any] = {c: getattr(their, c) for c in COPIED}
        if our is None:
            session.add(
                DeliveredRecord(
                    destination=target, program_code=program, child_local_id=child, **values
                )
            )
        else:
            for column, value in values.items():
                setattr(our, column, value)
        taken += 1
    return taken


def _older(ours: Any, theirs: Any) -> bool:
    """Whether ``ours`` was written before ``theirs`` (times as the database returns them:
    aware on PostgreSQL, naive UTC on SQLite)."""
    if (ours.tzinfo is None) != (theirs.tzinfo is None):
        ours, theirs = ours.replace(tzinfo=None), theirs.replace(tzinfo=None)
    return bool(ours < theirs)
