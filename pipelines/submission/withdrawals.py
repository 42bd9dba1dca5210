"""The withdrawals file of a file-drop destination (``schemas/formats/hs_withdrawals.yaml``),
and what becomes of a destination's copy of programs that no longer share.

A file drop cannot delete; when its formats include a ``withdrawals``-level spec, every
delivered folder carries that file, listing the children the state must delete, named exactly
as the identity file named them (the held row keys, so a pseudonym stays the pseudonym).

**A program that stops sharing, or an agreement that lapses.** Child withdrawals are decided
inside a program's delivery (:func:`.state.plan_changes`): a child the parent revoked
(``delete_on_revocation``) or who left the agreement's scope (``delete_out_of_scope``). A whole
program stops sharing when its participation is withdrawn (or no longer registered), it is no
longer in the recipient's state, an AIAN program's opt-in ends or is incomplete, or the
agreement no longer covers anyone (expired,
review overdue, the recipient no longer eligible, destruction terms missing):
:data:`WITHDRAWING` lists those reasons. Every child of such a program has then left the
agreement's scope, so:

- with ``delete_out_of_scope`` and a destination that can delete (staging database, Ed-Fi, a
  file drop whose formats carry the withdrawals file: :func:`can_withdraw`), plan keeps the
  program (``withdrawing``, program -> children held) and its delivery withdraws every child
  the destination holds with :attr:`Reason.PROGRAM_OUT_OF_SCOPE
  <privacy.reasons.Reason.PROGRAM_OUT_OF_SCOPE>` (:func:`program_withdrawal`): deleted on the
  staging database and Ed-Fi (dependent resources first), listed in a withdrawals-only folder
  on a file drop, each logged as a ``delete`` entry, ``delivery_state`` marking it deleted.
  Nothing else leaves: the program is not extracted, its staged batch has no artifact, and
  :func:`only_withdrawals` refuses a delivery that would carry anything but the withdrawals
  file. A program that later shares again holds nothing at the destination and is sent afresh;
- otherwise (no ``delete_out_of_scope``, or a file drop without the withdrawals file), nothing
  more is sent: the redaction audit line of the skipped program and ``datashare run`` say how
  many children's records the destination still holds (:func:`held_counts`, counts only,
  ``still_held``) and that the agreement's destruction terms govern them. The domain
  (45 CFR 1303.22(a), docs/domain.md) makes a revocation not retroactive and leaves the
  destruction of what was lawfully disclosed to the written agreement's terms
  (1303.22(c)(2)-(3)); an agreement without ``delete_out_of_scope`` does not ask for it.

**An AIAN program that narrows its opt-in to aggregate outputs only** under a record agreement
(reason :attr:`Reason.AIAN_AGGREGATE_ONLY <privacy.reasons.Reason.AIAN_AGGREGATE_ONLY>`) still
shares, but no longer its children's records: every child record the destination holds of it
has left the scope of the program's decision (45 CFR 1302.53(b)(4)). With
``delete_out_of_scope`` and a destination that can delete it is withdrawn like a stopped
program's (``withdrawing``, :func:`program_withdrawal`, reason ``program_out_of_scope``), and
the same night its aggregate tables still go when the destination's formats carry them (the
opt-in allows aggregate outputs): the program is then extracted and decided as usual (every
child withheld as ``aian_aggregate_only``), and :func:`only_withdrawals` lets through the
aggregate tables (:func:`aggregates_only`) and the withdrawals file, never a child's row.
Without ``delete_out_of_scope`` the records held are counted in ``still_held``.

A suspension of the recipient (a temporary bar: nothing at all goes to it), an agreement not
yet in effect and a recipient without a state on record (a record to fix, not a decision) are
never reasons to withdraw: what the destination holds is counted only. Aggregate tables are
not withdrawn (no row keys are kept for them): a program's aggregate tables the destination
still holds are counted in ``aggregates_held`` (:func:`aggregates_held`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipelines.destinations.base import Artifact, Batch, ChildKey
from pipelines.destinations.registry import DestinationConfig
from pipelines.submission.context import SubmissionError
from pipelines.submission.state import DROPPED, HELD, PROGRAM, Changes, Held
from privacy.agreements import Agreement
from privacy.reasons import Reason
from schemas import DeliveredRecord
from schemas.filespec import FileSpec, load_spec

IDENTIFIERS = ("program_code", "child_local_id")
WITHDRAWN_PROGRAM = Reason.PROGRAM_OUT_OF_SCOPE.value
"""The withdrawal reason of every child of a program that stopped sharing."""
WITHDRAWING = frozenset(
    {
        Reason.PROGRAM_NOT_REGISTERED,
        Reason.PROGRAM_WITHDRAWN,
        Reason.PROGRAM_NOT_IN_JURISDICTION,
        Reason.AIAN_NO_OPT_IN,
        Reason.AIAN_OPT_IN_INCOMPLETE,
        Reason.AGREEMENT_EXPIRED,
        Reason.AGREEMENT_REVIEW_OVERDUE,
        Reason.RECIPIENT_NOT_ELIGIBLE,
        Reason.DESTRUCTION_TERMS_MISSING,
        Reason.AIAN_AGGREGATE_ONLY,
    }
)
"""Why a program no longer shares (or, ``aian_aggregate_only``, no longer shares child
records), when it means its children's records left the agreement's scope (see the module doc
for the reasons that do not)."""
FILE_DROPS = ("local", "sftp")


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


def still_held_note(count: int, delete_out_of_scope: bool, aggregates: bool = False) -> str:
    """The audit and run-output line for a program whose held records stay where they are
    (no PII): one that no longer shares, where nothing more is sent, or (``aggregates``) an
    AIAN program sharing aggregate outputs only whose aggregate tables still go."""
    asks = " (the agreement asks for their deletion: delete_out_of_scope)"
    asks = asks if delete_out_of_scope else ""
    sent = (
        "no child record of it is sent any more (its aggregate tables still go: the AIAN "
        "opt-in allows aggregate outputs)"
        if aggregates
        else "nothing more is sent"
    )
    return (
        f"the destination still holds {count} children's records from earlier deliveries; "
        f"{sent} and they are not withdrawn automatically: the agreement's destruction terms "
        f"govern them{asks}"
    )


def can_withdraw(destination: DestinationConfig) -> bool:
    """Whether ``destination`` can be told to delete: a staging database or Ed-Fi deletes, a
    file drop only through the withdrawals file among its formats."""
    if destination.type.value not in FILE_DROPS:
        return True
    return withdrawals_spec([load_spec(name) for name in destination.formats]) is not None


def withdraws_program(reason: str, agreement: Agreement, destination: DestinationConfig) -> bool:
    """Whether a program skipped for ``reason`` has what ``destination`` holds of it withdrawn
    tonight: the reason takes every child out of the agreement's scope (:data:`WITHDRAWING`),
    the agreement asks for deletion (``delete_out_of_scope``) and the destination can delete."""
    return (
        reason in {r.value for r in WITHDRAWING}
        and agreement.delete_out_of_scope
        and can_withdraw(destination)
    )


def program_withdrawal(
    held: Mapping[ChildKey, Held],
    *,
    snapshot: bool,
    aggregates: tuple[str, str] | None = None,
    full: bool = False,
) -> Changes:
    """Tonight's changes for a program that stopped sharing (child records): every child the
    destination holds (or a file drop's earlier folders left) is withdrawn and no child is
    sent. The program's own artifacts go only for a program that still shares aggregates:
    ``aggregates`` is then (program code, tonight's program digest), and they go when they
    differ from what is held (always under ``resend: full``; a file drop's snapshot goes whole
    when anything differs)."""
    withdraw = {
        key: WITHDRAWN_PROGRAM
        for key, h in held.items()
        if key[1] != PROGRAM and h.status in (HELD, DROPPED)
    }
    changes = Changes(withdraw=withdraw, snapshot=snapshot)
    if aggregates is not None:
        program, digest = aggregates
        own = held.get((program, PROGRAM))
        changes.program = full or own is None or own.digest != digest
        changes.program = changes.program or (snapshot and bool(withdraw))
    return changes


def aggregates_only(batch: Batch, destination: DestinationConfig) -> Batch:
    """``batch`` with only its aggregate tables (the destination's ``aggregate``-level formats):
    what a program sharing aggregate outputs only may still send."""
    names = aggregate_files(destination)
    kept = tuple(a for a in batch.artifacts if a.name in names and not a.child_keys)
    return Batch(batch.run_id, batch.run_date, batch.program_code, kept)


def aggregate_files(destination: DestinationConfig) -> frozenset[str]:
    """The file names of ``destination``'s aggregate-level formats."""
    specs = (load_spec(name) for name in destination.formats)
    return frozenset(s.file_name for s in specs if s.level == "aggregate")


def only_withdrawals(
    batch: Batch, changes: Changes, destination: DestinationConfig, *, aggregates: bool = False
) -> None:
    """Fail closed unless the delivery of a program whose records are withdrawn carries
    nothing but withdrawals: no child sent, no file other than the withdrawals file and, for a
    program that still shares ``aggregates``, its aggregate tables (no program artifact
    otherwise); no artifact that holds a child's row."""
    spec = withdrawals_spec([load_spec(name) for name in destination.formats])
    allowed = {spec.file_name} if spec is not None and changes.snapshot else set()
    if aggregates:
        allowed |= aggregate_files(destination)
    extra = sorted(
        a.name
        for a in batch.artifacts
        if a.name not in allowed or (a.child_keys and (spec is None or a.name != spec.file_name))
    )
    if changes.send or (changes.program and not aggregates) or extra:
        what = "aggregate tables and withdrawals" if aggregates else "withdrawals"
        raise SubmissionError(
            f"program {batch.program_code}: it no longer shares child records, so only "
            f"{what} may go to destination {destination.name}; the delivery would also carry "
            f"{', '.join(extra) or 'child records'}: nothing is sent"
        )


def withdrawing_note(count: int, aggregates: bool = False) -> str:
    """The audit and run-output line for a program whose held records are withdrawn tonight
    (``aggregates``: an AIAN program sharing aggregate outputs only, whose aggregate tables
    still go)."""
    rest = (
        "its aggregate tables still go (the AIAN opt-in allows aggregate outputs), nothing "
        "else of it is sent"
        if aggregates
        else "nothing else is sent"
    )
    return (
        f"the destination holds {count} children's records from earlier deliveries; the "
        f"agreement asks for their deletion (delete_out_of_scope), so they are withdrawn "
        f"tonight ({WITHDRAWN_PROGRAM}) and {rest}"
    )


EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()
"""The program digest of a batch without aggregate tables (:func:`.state.current_of`)."""


def aggregates_held(
    session: Session, destination: DestinationConfig, programs: Sequence[str]
) -> dict[str, int]:
    """Program -> how many aggregate tables ``destination`` still holds from earlier
    deliveries (the destination's aggregate formats, when the program's own artifacts were
    held non-empty); they are not withdrawn. Programs holding none are left out."""
    tables = sum(load_spec(name).level == "aggregate" for name in destination.formats)
    if not programs or not tables:
        return {}
    d = DeliveredRecord
    rows = session.execute(
        select(d.program_code).where(
            d.destination == destination.name,
            d.program_code.in_(list(programs)),
            d.child_local_id == PROGRAM,
            d.status == HELD,
            d.digest != EMPTY_DIGEST,
        )
    ).scalars()
    return {program: tables for program in rows}


def aggregates_note(count: int) -> str:
    """The line for a stopped program whose aggregate tables the destination still holds."""
    return (
        f"the destination also still holds {count} aggregate table(s) of the program from "
        "earlier deliveries; aggregate tables are not withdrawn automatically"
    )
