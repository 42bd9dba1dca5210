"""The withdrawals file of a file-drop destination (``schemas/formats/hs_withdrawals.yaml``),
and what a destination still holds of programs that no longer share.

A file drop cannot delete; when its formats include a ``withdrawals``-level spec, every
delivered folder carries that file, listing the children the state must delete, named exactly
as the identity file named them (the held row keys, so a pseudonym stays the pseudonym).

**A program that stops sharing, or an agreement that lapses.** Withdrawals are per child and
decided inside a program's delivery (:func:`.state.plan_changes`): a child the parent revoked
(``delete_on_revocation``) or who left the agreement's scope (``delete_out_of_scope``). A
program that no longer shares — withdrawn from the recipient, an AIAN opt-in revoked or
incomplete — and every program under an agreement no longer in force (expired, suspended,
review overdue) is skipped at plan and has no delivery, so nothing is withdrawn for it.
The domain (45 CFR 1303.22(a), docs/domain.md) makes a revocation not retroactive and leaves
the destruction of what was lawfully disclosed to the written agreement's terms
(1303.22(c)(2)-(3)); it does not ask the program to send deletions when it stops sharing or
the agreement ends. So the conservative course is taken: nothing more is sent (no data, and no
deletion list under an agreement no longer in force), the redaction audit line of the skipped
program says how many children's records the destination still holds from earlier deliveries
(:func:`held_counts`, counts only) and that the agreement's destruction terms govern them, and
``datashare run`` prints the same. A data manager asks the recipient to destroy them; with
``delete_out_of_scope`` the line says the agreement asks for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipelines.destinations.base import Artifact, ChildKey
from pipelines.submission.state import DROPPED, HELD, PROGRAM, Held
from schemas import DeliveredRecord
from schemas.filespec import FileSpec

IDENTIFIERS = ("program_code", "child_local_id")


def withdrawals_spec(specs: Sequence[FileSpec]) -> FileSpec | None:
    """The destination's withdrawals spec, if its formats carry one."""
    return next((s for s in specs if s.level == "withdrawals"), None)


def _as_sent(key: ChildKey, held: Held, specs: Sequence[FileSpec]) -> dict[str, str]:
    """The child's program code and id as a record file carried them (its held row key)."""
    for spec in specs:
        if spec.level != "record" or spec.file_name not in held.rows:
            continue
        sources = {spec.column(name).source: i for i, name in enumerate(spec.key)}
        if all(s in sources for s in IDENTIFIERS) and held.rows[spec.file_name]:
            row = held.rows[spec.file_name][0]
            return {s: row[sources[s]] for s in IDENTIFIERS}
    return dict(zip(IDENTIFIERS, key, strict=True))


def withdrawals_artifact(
    spec: FileSpec,
    specs: Sequence[FileSpec],
    withdraw: Mapping[ChildKey, str],
    held: Mapping[ChildKey, Held],
    run_date: dt.date,
) -> Artifact:
    """The withdrawals file for ``withdraw`` (child -> reason), in ``spec``'s layout."""
    rows = []
    keys = []
    for key, reason in sorted(withdraw.items()):
        source = {**_as_sent(key, held[key], specs), "withdrawal_reason": reason}
        row = {}
        for column in spec.columns:
            value = source.get(column.source, "")
            if column.codes is not None:
                value = column.codes.get(str(value), "")
            elif column.type.value == "date" and column.source == "run_date":
                value = run_date.strftime(column.date_format)
            row[column.name] = value
        rows.append(row)
        keys.append(key)
    frame = pd.DataFrame(rows, columns=list(spec.column_names), dtype=object)
    return Artifact(spec.file_name, frame, tuple(spec.key), tuple(keys))


def held_counts(session: Session, destination: str, programs: Sequence[str]) -> dict[str, int]:
    """Program -> how many children's records ``destination`` still holds from earlier
    deliveries (held, or left in an earlier file-drop folder); programs holding none are left
    out. Counts only: no child is named."""
    if not programs:
        return {}
    d = DeliveredRecord
    rows = session.execute(
        select(d.program_code, func.count())
        .where(
            d.destination == destination,
            d.program_code.in_(list(programs)),
            d.child_local_id != PROGRAM,
            d.status.in_((HELD, DROPPED)),
        )
        .group_by(d.program_code)
    ).all()
    return {program: int(n) for program, n in rows if n}


def still_held_note(count: int, delete_out_of_scope: bool) -> str:
    """The audit and run-output line for a program that no longer shares (no PII)."""
    asks = " (the agreement asks for their deletion: delete_out_of_scope)"
    asks = asks if delete_out_of_scope else ""
    return (
        f"the destination still holds {count} children's records from earlier deliveries; "
        f"nothing more is sent and they are not withdrawn automatically: the agreement's "
        f"destruction terms govern them{asks}"
    )
