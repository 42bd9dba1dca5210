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

A name renamed right after a crash leaves its open delivery behind (the batch may be in the
tables, unlogged). Before the take-over, :func:`catch_up` settles the open deliveries of every
other name that wrote here, once none of that name's runs is alive: as that name (its delivery
state), under the crashed run's id and date (:func:`.reconcile.reconcile`), so what arrived is
logged once and the take-over then finds it held; nothing is sent again. A run of that name
still alive leaves its deliveries alone (it settles them itself).

A dry run writes nothing: it reads the take-over view instead (:mod:`.staging_view`).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipelines.db import session_scope
from pipelines.submission.cleanup import sweep_closed_runs
from pipelines.submission.context import RunContext
from pipelines.submission.reconcile import UNFINISHED, reconcile
from pipelines.submission.runs import ConcurrentRun, LiveCheck, settle_open_runs
from pipelines.submission.staging_view import is_staging, older, view
from schemas import DeliveredRecord, Delivery

COPIED = ("digest", "rows", "status", "run_id", "updated_at")


def catch_up(context: RunContext, is_live: LiveCheck | None = None) -> dict[str, str]:
    """For a staging database, before the run settles its own deliveries: the open
    deliveries other names left here settled (:func:`adopt`), then this name's delivery
    state brought up to date (:func:`take_over`); program code -> what was done. A dry run
    only reads which names it would take over from (:func:`view`). Raises
    :class:`~pipelines.destinations.base.DeliveryError` when the database cannot be reached
    (nothing is settled or taken over: the caller stops the destination's programs)."""
    if not is_staging(context):
        return {}
    if context.run.dry_run:
        view(context)
        return {}
    outcomes = adopt(context, is_live)
    for program, text in take_over(context).items():
        outcomes[program] = f"{outcomes[program]}; {text}" if program in outcomes else text
    return outcomes


def adopt(context: RunContext, is_live: LiveCheck | None = None) -> dict[str, str]:
    """Settle the open deliveries of the other names that wrote to this database, as those
    names, once none of their runs is alive (their crashed runs are marked abandoned by this
    one), and what those runs left staged removed; program code -> outcome."""
    others = getattr(context.client, "writers", None)
    names = others() if others is not None else set()
    if not names:
        return {}
    with session_scope(context.engine) as session:
        open_names = session.scalars(
            select(Delivery.destination)
            .where(Delivery.destination.in_(sorted(names)), Delivery.status.in_(UNFINISHED))
            .distinct()
        ).all()
    outcomes: dict[str, str] = {}
    for name in sorted(open_names):
        named = as_name(context, name)
        try:
            settle_open_runs(named, is_live=is_live)
        except ConcurrentRun:
            continue  # alive: that run settles its own deliveries
        for program, text in reconcile(named).items():
            outcomes[program] = f"destination {name}'s open delivery, taken over: {text}"
        sweep_closed_runs(named)  # what its closed runs left staged, as its own plan would
    return outcomes


def as_name(context: RunContext, name: str) -> RunContext:
    """This run's context acting as destination name ``name`` for the delivery state and
    delivery rows (same configuration, agreement, client and stores; still this run's id)."""
    for shared in ("destination", "agreement", "client", "engine", "staged"):
        getattr(context, shared)  # computed once here, shared with the copy
    named = copy.copy(context)
    named.run = dataclasses.replace(context.run, destination=name)
    return named


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
        if our is not None and not older(our.updated_at, their.updated_at):
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
