"""Program participation: which programs share with which recipient, from the event history.

Every change is a ``ParticipationEvent`` kept forever; the state on a date is derived from the
events with ``effective_date <= on``. Two tracks are resolved separately:

- *participation* (``participate`` / ``withdraw``) per program and recipient. A ``withdraw``
  with no recipient withdraws from every recipient; a ``participate`` with no recipient counts
  for nothing (a program registers with each recipient by name).
- *opt-in* (``opt_in`` / ``opt_out``, AIAN programs only, 45 CFR 1302.53(b)(4)). One with no
  recipient applies to all recipients; a recipient-specific one overrides it.

Resolution, chosen to protect the child where the rules are silent:

- Within one track and scope, the latest event wins, ordered by effective date, then a
  disabling action (``withdraw``, ``opt_out``) after an enabling one on the same date, then
  recording time. So a program that withdraws or opts out on date D shares nothing on a run
  dated D, even if an enabling event of the same date was recorded later.
- Across scopes, the recipient-specific latest event governs, except that a general disabling
  event dated on or after a specific enabling event ends it too (a tribe's opt-out from
  everyone is never undone by an older opt-in for one recipient). A general enabling event
  never overrides a specific disabling one.
- An AIAN program shares only while participating *and* holding an active opt-in.

An opt-in is the program's decision only when the registry shows it was made (45 CFR
1302.53(b)(4): an AIAN program decides for itself): it names the authority that made it (a
tribal council resolution), who decided and who recorded it, its effective date and its scope,
and excludes only fields of the catalog. The command line refuses anything less, but a row can
come from elsewhere (an import, SQL, an older schema), so the resolution checks again: when
the governing opt-in is incomplete the program is *not* opted in (``ProgramStatus.
opt_in_missing`` says what is missing; reason ``aian_opt_in_incomplete``). An incomplete
opt-in still governs: it ends an older complete one rather than letting it run on, because
a narrower decision (aggregate only, one more excluded field) entered badly must not leave
the broader one in force. An undated opt-in or opt-out counts as dated at the beginning of
time (any dated decision supersedes it); an undated ``participate`` counts for nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from privacy.errors import ParticipationError
from privacy.fields import CATALOG
from schemas import ParticipationEvent, Program, Recipient
from schemas.codes import OptInScope, ParticipationAction

A = ParticipationAction
_DISABLING = frozenset({A.WITHDRAW, A.OPT_OUT})
_PARTICIPATION = frozenset({A.PARTICIPATE, A.WITHDRAW})
E = TypeVar("E", bound=StrEnum)


class ParticipationState(StrEnum):
    """A program's standing with one recipient on one date."""

    PARTICIPATING = "participating"
    WITHDRAWN = "withdrawn"
    NOT_REGISTERED = "not_registered"


@dataclass(frozen=True)
class Change:
    """One participation event as read back from the registry (no PII: names of deciders and
    authorities are program governance, not child data)."""

    program_code: str
    action: ParticipationAction
    recipient_code: str | None
    effective_date: dt.date | None
    decided_by: str | None
    authority: str | None = None
    scope: OptInScope | None = None
    excluded_fields: tuple[str, ...] = ()
    reason: str | None = None
    recorded_at: dt.datetime | None = None
    id: int = 0
    recorded_by: str | None = None

    @property
    def effective(self) -> dt.date:
        """The effective date used for resolution (see the module docstring when missing)."""
        if self.effective_date is not None:
            return self.effective_date
        return dt.date.max if self.action is A.PARTICIPATE else dt.date.min

    def missing(self) -> tuple[str, ...]:
        """What an ``opt_in`` lacks to be the program's decision (empty when complete, and
        for every other action)."""
        if self.action is not A.OPT_IN:
            return ()
        lacking = [
            name
            for name, value in (
                ("authority", self.authority),
                ("decided_by", self.decided_by),
                ("recorded_by", self.recorded_by),
            )
            if not (value and value.strip())
        ]
        if self.effective_date is None:
            lacking.append("effective_date")
        if self.scope is None:
            lacking.append("scope")
        if any(name not in CATALOG for name in self.excluded_fields):
            lacking.append("excluded_fields")
        return tuple(lacking)

    def order(self) -> tuple[dt.date, bool, dt.datetime, int]:
        """Sort key: effective date, disabling after enabling, recording time, id."""
        recorded = self.recorded_at or dt.datetime.min
        if recorded.tzinfo is not None:
            recorded = recorded.astimezone(dt.UTC)
        return (
            self.effective,
            self.action in _DISABLING,
            recorded.replace(tzinfo=None),
            self.id,
        )


@dataclass(frozen=True)
class OptIn:
    """An AIAN program's active opt-in: who decided, on what authority, what may leave."""

    authority: str | None
    scope: OptInScope
    excluded_fields: frozenset[str]
    effective_date: dt.date
    recipient_code: str | None
    decided_by: str
    recorded_by: str = ""


@dataclass(frozen=True)
class ProgramStatus:
    """A program's participation with one recipient on one date. ``opt_in_missing`` names
    what the governing opt-in lacks when it is incomplete (then ``opt_in`` is None)."""

    program_code: str
    is_aian: bool
    state: ParticipationState
    since: dt.date | None = None
    decided_by: str | None = None
    opt_in: OptIn | None = None
    opt_in_missing: tuple[str, ...] = ()

    @property
    def shares(self) -> bool:
        """Whether anything of this program may go to the recipient."""
        participating = self.state is ParticipationState.PARTICIPATING
        return participating and (not self.is_aian or self.opt_in is not None)


def _latest(changes: Iterable[Change]) -> Change | None:
    return max(changes, key=Change.order, default=None)


def _governing(specific: Change | None, general: Change | None) -> Change | None:
    if specific is None:
        return general
    if specific.action in _DISABLING:
        return specific
    if (
        general is not None
        and general.action in _DISABLING
        and general.effective >= specific.effective
    ):
        return general
    return specific


def resolve(
    program_code: str,
    is_aian: bool,
    changes: Iterable[Change],
    recipient_code: str,
    on: dt.date,
) -> ProgramStatus:
    """The status of one program with ``recipient_code`` on ``on``, from its change history."""
    relevant = [
        c
        for c in changes
        if c.program_code == program_code
        and c.effective <= on
        and c.recipient_code in (None, recipient_code)
    ]
    part = [c for c in relevant if c.action in _PARTICIPATION]
    specific = _latest(c for c in part if c.recipient_code == recipient_code)
    general = _latest(c for c in part if c.recipient_code is None and c.action is A.WITHDRAW)
    governing = _governing(specific, general) if specific is not None else None
    if governing is None:
        return ProgramStatus(program_code, is_aian, ParticipationState.NOT_REGISTERED)
    state = (
        ParticipationState.PARTICIPATING
        if governing.action is A.PARTICIPATE
        else ParticipationState.WITHDRAWN
    )
    opt_in, missing = _active_opt_in(relevant, recipient_code) if is_aian else (None, ())
    return ProgramStatus(
        program_code,
        is_aian,
        state,
        since=governing.effective_date,
        decided_by=governing.decided_by,
        opt_in=opt_in,
        opt_in_missing=missing,
    )


def _active_opt_in(
    relevant: Sequence[Change], recipient_code: str
) -> tuple[OptIn | None, tuple[str, ...]]:
    """The governing opt-in when it is complete; else None and what it lacks."""
    opts = [c for c in relevant if c.action not in _PARTICIPATION]
    specific = _latest(c for c in opts if c.recipient_code == recipient_code)
    general = _latest(c for c in opts if c.recipient_code is None)
    governing = _governing(specific, general)
    if governing is None or governing.action is not A.OPT_IN:
        return None, ()
    missing = governing.missing()
    scope, effective = governing.scope, governing.effective_date
    if missing or scope is None or effective is None:
        return None, missing
    return OptIn(
        authority=governing.authority,
        scope=scope,
        excluded_fields=frozenset(governing.excluded_fields),
        effective_date=effective,
        recipient_code=governing.recipient_code,
        decided_by=str(governing.decided_by),
        recorded_by=str(governing.recorded_by),
    ), ()


# -- the registry in the database ------------------------------------------------------------


def _changes(session: Session, program_code: str | None = None) -> list[Change]:
    query = (
        select(ParticipationEvent, Program.code, Recipient.code)
        .join(Program, Program.id == ParticipationEvent.program_id)
        .outerjoin(Recipient, Recipient.id == ParticipationEvent.recipient_id)
    )
    if program_code is not None:
        query = query.where(Program.code == program_code)
    rows = session.execute(query).all()
    changes = [
        Change(
            program_code=code,
            action=ParticipationAction(event.action),
            recipient_code=recipient,
            effective_date=event.effective_date,
            decided_by=event.decided_by,
            authority=event.authority,
            scope=OptInScope(event.scope) if event.scope else None,
            excluded_fields=tuple(event.excluded_fields or ()),
            reason=event.reason,
            recorded_at=event.recorded_at,
            id=event.id,
            recorded_by=event.recorded_by,
        )
        for event, code, recipient in rows
    ]
    return sorted(changes, key=Change.order)


def _recipient(session: Session, recipient_code: str) -> Recipient:
    recipient = session.scalar(select(Recipient).where(Recipient.code == recipient_code))
    if recipient is None:
        raise ParticipationError(f"unknown recipient {recipient_code}")
    return recipient


def _program(session: Session, program_code: str) -> Program:
    program = session.scalar(select(Program).where(Program.code == program_code))
    if program is None:
        raise ParticipationError(f"unknown program {program_code}")
    return program


def current_participation(
    session: Session, recipient_code: str, on: dt.date
) -> dict[str, ProgramStatus]:
    """Every program's status with ``recipient_code`` on ``on``, keyed by program code."""
    _recipient(session, recipient_code)
    changes = _changes(session)
    programs = session.execute(select(Program.code, Program.is_aian).order_by(Program.code)).all()
    return {
        code: resolve(code, bool(is_aian), changes, recipient_code, on)
        for code, is_aian in programs
    }


def participation_matrix(session: Session, on: dt.date) -> dict[str, dict[str, ProgramStatus]]:
    """Every program's status with every recipient on ``on``: program code -> recipient code."""
    changes = _changes(session)
    programs = session.execute(select(Program.code, Program.is_aian).order_by(Program.code)).all()
    recipients = session.scalars(select(Recipient.code).order_by(Recipient.code)).all()
    return {
        code: {r: resolve(code, bool(is_aian), changes, r, on) for r in recipients}
        for code, is_aian in programs
    }


def history(session: Session, program_code: str | None = None) -> list[Change]:
    """Every change of one program (or of all programs), oldest first."""
    if program_code is not None:
        _program(session, program_code)
    return _changes(session, program_code)


def record_change(
    session: Session,
    program_code: str,
    action: ParticipationAction | str,
    *,
    recipient_code: str | None = None,
    decided_by: str,
    authority: str | None = None,
    scope: OptInScope | str | None = None,
    excluded_fields: Iterable[str] = (),
    reason: str | None = None,
    effective_date: dt.date,
    recorded_by: str | None = None,
) -> Change:
    """Record one change after checking it; ``ParticipationError`` names what is wrong.

    ``participate`` and ``withdraw`` need a recipient; ``opt_in`` and ``opt_out`` are for AIAN
    programs only, apply to every recipient when none is given, and ``opt_in`` needs the
    authority that decided it (e.g. a tribal council resolution), who recorded it
    (``recorded_by``) and a scope; ``opt_out`` needs a reason.
    """
    action = _coded(ParticipationAction, action, "action")
    scope = _coded(OptInScope, scope, "scope") if scope is not None else None
    excluded = tuple(dict.fromkeys(excluded_fields))
    where = f"{action.value} for program {program_code}"
    if not (decided_by and decided_by.strip()):
        raise ParticipationError(f"{where}: decided_by is required (who made the decision)")
    if isinstance(effective_date, dt.datetime) or not isinstance(effective_date, dt.date):
        raise ParticipationError(f"{where}: effective_date must be a date")
    program = _program(session, program_code)
    recipient = _recipient(session, recipient_code) if recipient_code is not None else None
    if action in _PARTICIPATION:
        if recipient is None:
            raise ParticipationError(f"{where}: a recipient is required")
        if scope is not None or excluded:
            raise ParticipationError(f"{where}: scope and excluded fields belong to an opt-in")
    else:
        if not program.is_aian:
            raise ParticipationError(
                f"{where}: opt-in and opt-out apply only to AIAN programs "
                f"(45 CFR 1302.53(b)(4)); {program_code} is not AIAN"
            )
        if action is A.OPT_IN:
            if not (authority and authority.strip()):
                raise ParticipationError(f"{where}: the authority that decided it is required")
            if not (recorded_by and recorded_by.strip()):
                raise ParticipationError(f"{where}: who recorded it (recorded_by) is required")
            if scope is None:
                raise ParticipationError(f"{where}: a scope (record or aggregate) is required")
            unknown = [f for f in excluded if f not in CATALOG]
            if unknown:
                raise ParticipationError(f"{where}: unknown excluded fields {unknown}")
        else:
            if scope is not None or excluded:
                raise ParticipationError(f"{where}: scope and excluded fields belong to an opt-in")
            if not (reason and reason.strip()):
                raise ParticipationError(f"{where}: a reason is required")
    event = ParticipationEvent(
        program_id=program.id,
        recipient_id=recipient.id if recipient else None,
        action=action,
        effective_date=effective_date,
        decided_by=decided_by.strip(),
        authority=authority,
        scope=scope,
        excluded_fields=list(excluded),
        reason=reason,
        recorded_at=dt.datetime.now(dt.UTC),
        recorded_by=recorded_by.strip() if recorded_by else None,
    )
    session.add(event)
    session.flush()
    return Change(
        program_code=program_code,
        action=action,
        recipient_code=recipient_code,
        effective_date=effective_date,
        decided_by=event.decided_by,
        authority=authority,
        scope=scope,
        excluded_fields=excluded,
        reason=reason,
        recorded_at=event.recorded_at,
        id=event.id,
        recorded_by=event.recorded_by,
    )


def _coded(enum: type[E], value: E | str, name: str) -> E:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise ParticipationError(f"unknown {name} {value!s}; expected one of {allowed}") from None
