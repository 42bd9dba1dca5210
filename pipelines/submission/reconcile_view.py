"""A dry run's view of reconciliation, read only.

A real run first settles the deliveries earlier runs left open (:mod:`.reconcile`: a crash
after the bytes left and before the disclosure log was written): what arrived is logged under
the crashed run's id and date and recorded as held, so it is not sent again; what did not is
sent afresh. A dry run writes nothing (no log entry, no delivery state, no delivery row, no
file removed at the destination, no Ed-Fi ledger row, no staged file removed), so without this
it planned against the delivery state as the crash left it and reported a batch that arrived
as a full resend.

Here each open delivery is judged exactly as :func:`.reconcile.judge` judges it for the real
run, with every write left out (a file drop's folder only read, the Ed-Fi ledger only read),
and:

- :func:`report` says, per program, what the real run would settle and how (for the run
  summary's ``reconciled``, and ``would_settle``: how many open deliveries of which runs, how
  many arrived and are to be logged, how many to resend);
- :func:`overlay` is the delivery state each settlement would leave (the very rows
  :func:`.state.state_changes` computes for the records it would log), which the dry run plans
  against (:func:`.deliver._planned`) and counts with at plan (:func:`held_counts`), so it
  reports what the real run would then send, withdraw and find unchanged.

The open deliveries judged are all the destination's unfinished ones, whatever the state of
the run they are of, as :func:`.reconcile.reconcile` settles them: a crashed run a dry run
would mark abandoned (and leaves ``running``: :func:`.runs.would_abandon`) has its deliveries
previewed exactly as the real run settles them after marking it (a run still alive stops
both at plan, :class:`.runs.ConcurrentRun`).

Judged once per run context and program (a dry run's plan, and each deliver task, reads its
own view). Not covered: an open delivery whose staged batch is unreadable (reported as such; the
dry run plans as if it stayed open), several open deliveries of one program (each judged
against the delivery state as it is), and a staging database's other names' open deliveries
(:func:`.staging_copy.adopt`).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from pipelines.db import session_scope
from pipelines.destinations.base import ChildKey, DeliveryError
from pipelines.submission.context import RunContext
from pipelines.submission.reconcile import Settlement, judge, open_deliveries
from pipelines.submission.record import would_log
from pipelines.submission.state import (
    DROPPED,
    HELD,
    PROGRAM,
    Held,
    load_held_many,
    state_changes,
)

_JUDGED: weakref.WeakKeyDictionary[RunContext, dict[str | None, list[Settlement | str]]] = (
    weakref.WeakKeyDictionary()
)
UNREADABLE = "unreadable"
NOT_LOGGED = ("not_arrived", UNREADABLE)


def judged(context: RunContext, program: str | None = None) -> list[Settlement | str]:
    """The open deliveries of the destination (of ``program`` when given), each judged as a
    real run's reconciliation would (:func:`.reconcile.judge`, nothing written); a run id for
    one whose staged batch cannot be read. Empty for a real run."""
    if not context.run.dry_run:
        return []
    cache = _JUDGED.setdefault(context, {})
    if program in cache:
        return cache[program]
    if None in cache:  # every program judged already
        return [s for s in cache[None] if _program(s) == program]
    rows = open_deliveries(context, program)
    destination = context.client if rows else None
    out: list[Settlement | str] = []
    for delivery in rows:
        try:
            found = judge(context, destination, delivery, view=True)
        except DeliveryError as error:  # as the real run's plan stops
            raise type(error)(
                f"reconciling run {delivery.run_id}'s delivery of {delivery.program} (dry "
                f"run, nothing written): {error}; the delivery stays open for the next run"
            ) from error
        out.append(found if found is not None else f"{UNREADABLE}:{delivery.program}")
    cache[program] = out
    return out


def _program(judgement: Settlement | str) -> str:
    if isinstance(judgement, Settlement):
        return judgement.open.program
    return judgement.split(":", 1)[1]


def report(context: RunContext) -> tuple[dict[str, str], dict[str, Any]]:
    """What a real run would settle first: program -> the outcome it would have (for the run
    summary's ``reconciled``), and ``would_settle``: the open deliveries, the runs they are
    of, how many arrived (logged, not sent again) and how many are to be resent, and per
    program its outcome and how many entries it would log under the crashed run."""
    outcomes: dict[str, str] = {}
    programs: dict[str, dict[str, Any]] = {}
    runs: set[str] = set()
    items = judged(context)
    with session_scope(context.engine) as session:
        for item in items:
            if not isinstance(item, Settlement):
                program = _program(item)
                outcomes[program] = (
                    "an open delivery whose staged files cannot be read: a real run settles "
                    "it from its delivery row first (not previewed by a dry run)"
                )
                programs[program] = {"outcome": UNREADABLE}
                continue
            program, run_id = item.open.program, item.open.run_id
            runs.add(run_id)
            logged = sum(would_log(session, context, item.records)) if item.records else 0
            left = _old_copies(context, item)
            text = item.describe(logged, left, view=True)
            outcomes[program] = f"a real run would settle it first (nothing written now): {text}"
            programs[program] = {
                "run_id": run_id,
                "outcome": item.kind,
                "logged": logged - len(item.deleted) - len(item.replaced),
                "deleted": len(item.deleted) + len(item.replaced),
                "old_copies": left,
                "resend": item.mark == "failed",
            }
    summary = {
        "deliveries": len(items),
        "runs": sorted(runs),
        "arrived": sum(1 for p in programs.values() if p["outcome"] not in NOT_LOGGED),
        "resend": sum(1 for p in programs.values() if p.get("resend")),
        "programs": programs,
    }
    return outcomes, (summary if items else {})


def _old_copies(context: RunContext, settled: Settlement) -> int:
    """How many old copies the real run would delete for the crashed run (a staging database
    that did not delete them: :func:`.reconcile._delete_old_copies`)."""
    changes = settled.old_copies
    if changes is None or not changes.replace or context.destination.type.value != "staging_db":
        return 0
    return len(changes.replace)


def overlay(context: RunContext, program: str) -> dict[ChildKey, Held]:
    """The ``delivery_state`` rows of ``program`` a real run's reconciliation would write
    (digest, row keys and status per child; the program's own snapshot digest cleared where it
    would be); empty for a real run or a program with no open delivery."""
    out: dict[ChildKey, Held] = {}
    for item in judged(context, program):
        if not isinstance(item, Settlement):
            continue
        for record in item.records:
            state = record.state
            if state is None or record.accepted is None:
                continue
            writes = state_changes(
                destination=context.run.destination,
                program=record.program,
                run_id=record.run_id,
                current=state.current,
                held={**state.held, **out},
                sent=record.accepted,
                program_sent=state.program_sent,
                withdrawn=record.deleted or {},
                snapshot=state.snapshot,
            )
            for _, code, local_id, digest, rows, status, _ in writes.rows():
                out[(code, local_id)] = Held(digest, rows, status)
        if item.forget_snapshot:
            key = (program, PROGRAM)
            before = out.get(key) or _held_now(context, program).get(key)
            if before is not None:  # cleared where held (:func:`.reconcile._forget_snapshot`)
                out[key] = Held("", before.rows, before.status)
    return out


def _held_now(context: RunContext, program: str) -> dict[ChildKey, Held]:
    with session_scope(context.engine) as session:
        return load_held_many(session, context.run.destination, [program])[program]


def held_counts(
    session: Session, context: RunContext, counts: dict[str, int], programs: Iterable[str]
) -> dict[str, int]:
    """``counts`` (children held per program) with the programs that have an open delivery
    counted as a real run would after settling it (:func:`overlay`)."""
    if not context.run.dry_run:
        return counts
    viewed = [p for p in programs if judged(context, p)]
    if not viewed:
        return counts
    from pipelines.submission import staging_view

    held = staging_view.held_many(
        session, context, load_held_many(session, context.run.destination, viewed)
    )
    out = {p: n for p, n in counts.items() if p not in viewed}
    for program in viewed:
        children = {**held[program], **overlay(context, program)}
        n = sum(1 for (_, c), h in children.items() if c != PROGRAM and h.status in (HELD, DROPPED))
        if n:
            out[program] = n
    return out
