"""Programs: participation per recipient with its full history; register, withdraw, and an AIAN
program's opt-in and opt-out, each through a confirmation page in plain words.

A change is recorded by the same ``record_change`` the CLI uses, with the logged-in user as
``decided_by`` (never a typed name) and a required reason. The confirmation page says what
will start or stop leaving, judged by the participation resolution and program outcome a run
uses (``pipelines.review.change_effects``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from console.app import Db, State
from console.auth import Admin, Viewer, checked_form
from console.pages import base_path, export, page
from pipelines.review import change_effects, describe_change, proposed_change
from privacy.errors import ParticipationError
from privacy.fields import CATALOG
from privacy.participation import (
    ParticipationState,
    history,
    participation_matrix,
    record_change,
)
from schemas import Program, Recipient
from schemas.codes import OptInScope, ParticipationAction

router = APIRouter()

STATUS_COLUMNS = ("program", "recipient", "state", "since", "decided_by", "shares",
                  "opt_in_scope", "opt_in_authority", "opt_in_excluded")  # fmt: skip
HISTORY_COLUMNS = ("effective_date", "program", "action", "recipient", "decided_by", "authority",
                   "scope", "excluded_fields", "reason", "recorded_at")  # fmt: skip
Format = Annotated[str | None, Query(pattern="^(csv|json)$")]


def _status_rows(matrix: dict[str, dict[str, Any]], only: str | None = None) -> list[dict]:
    rows = []
    for code, by_recipient in matrix.items():
        if only and code != only:
            continue
        for recipient, status in by_recipient.items():
            if status.state is ParticipationState.NOT_REGISTERED:
                continue
            opt_in = status.opt_in
            rows.append({
                "program": code,
                "recipient": recipient,
                "state": status.state.value,
                "since": status.since.isoformat() if status.since else "",
                "decided_by": status.decided_by or "",
                "aian": status.is_aian,
                "shares": status.shares,
                "opt_in_scope": opt_in.scope.value if opt_in else "",
                "opt_in_authority": (opt_in.authority or "") if opt_in else "",
                "opt_in_excluded": ", ".join(sorted(opt_in.excluded_fields)) if opt_in else "",
                "opt_in_since": opt_in.effective_date.isoformat() if opt_in else "",
            })  # fmt: skip
    return rows


def _history_rows(db: Db, program: str | None) -> list[dict[str, Any]]:
    return [
        {
            "effective_date": c.effective_date.isoformat() if c.effective_date else "",
            "program": c.program_code,
            "action": c.action.value,
            "recipient": c.recipient_code or "all recipients",
            "decided_by": c.decided_by,
            "authority": c.authority or "",
            "scope": c.scope.value if c.scope else "",
            "excluded_fields": ", ".join(c.excluded_fields),
            "reason": c.reason or "",
            "recorded_at": c.recorded_at.isoformat(timespec="seconds") if c.recorded_at else "",
        }
        for c in reversed(history(db, program))
    ]


@router.get("/programs")
def programs(
    request: Request, who: Viewer, db: Db, on: dt.date | None = None, format: Format = None
) -> Response:
    """Every program's participation with each recipient on a date (today by default)."""
    day = on or dt.date.today()
    rows = _status_rows(participation_matrix(db, day))
    if format:
        return export(rows, STATUS_COLUMNS, format, f"participation-{day}")
    listed = db.scalars(select(Program).order_by(Program.code)).all()
    return page(request, who, "programs.html", programs=listed, rows=rows, day=day)


@router.get("/programs/{code}")
def program(
    request: Request, who: Viewer, db: Db, code: str, on: dt.date | None = None,
    format: Format = None,
) -> Response:  # fmt: skip
    """One program: its participation, its full history, and (for admins) the change forms."""
    found = db.scalar(select(Program).where(Program.code == code))
    if found is None:
        raise HTTPException(404, f"No program {code}")
    day = on or dt.date.today()
    changes = _history_rows(db, code)
    if format:
        return export(changes, HISTORY_COLUMNS, format, f"participation-history-{code}")
    rows = _status_rows(participation_matrix(db, day), only=code)
    recipients = db.scalars(select(Recipient.code).order_by(Recipient.code)).all()
    return page(request, who, "program.html", program=found, rows=rows, changes=changes, day=day,
                recipients=recipients, fields=sorted(CATALOG))  # fmt: skip


def _intended(form: FormData, code: str, decided_by: str) -> dict[str, Any]:
    """The change a form asks for, as ``record_change`` arguments."""
    try:
        action = ParticipationAction(str(form.get("action") or ""))
    except ValueError:
        raise ParticipationError("choose what to record") from None
    try:
        effective = dt.date.fromisoformat(str(form.get("effective") or dt.date.today()))
    except ValueError:
        raise ParticipationError("the effective date must be a date (YYYY-MM-DD)") from None
    reason = str(form.get("reason") or "").strip()
    if not reason:
        raise ParticipationError("say why (the reason is kept with the change)")
    scope = str(form.get("scope") or "") or None
    authority = str(form.get("authority") or "").strip() or None
    return {
        "program_code": code,
        "action": action,
        "recipient_code": str(form.get("recipient") or "") or None,
        "decided_by": decided_by,
        "recorded_by": decided_by,
        "authority": authority if action is ParticipationAction.OPT_IN else None,
        "scope": OptInScope(scope) if scope and action is ParticipationAction.OPT_IN else None,
        "excluded_fields": tuple(str(f) for f in form.getlist("excluded"))
        if action is ParticipationAction.OPT_IN
        else (),
        "reason": reason,
        "effective_date": effective,
    }


@router.post("/programs/{code}/change")
async def change(request: Request, who: Admin, db: Db, console: State, code: str) -> Response:
    """Step ``review``: check the change and say what it does; step ``confirm``: record it."""
    form = await checked_form(request, who)
    wanted = _intended(form, code, who.name)
    if form.get("step") == "confirm":
        recorded = record_change(db, **wanted)
        url = f"{base_path(request)}/programs/{code}?recorded={recorded.id}"
        return RedirectResponse(url, status_code=303)
    with Session(console.engine) as trial:  # the same checks as recording, nothing kept
        try:
            checked = record_change(trial, **wanted)
        finally:
            trial.rollback()
    agreements, _ = console.agreements()
    proposed = proposed_change(
        code, wanted["action"], recipient=wanted["recipient_code"], decided_by=who.name,
        effective=wanted["effective_date"], authority=wanted["authority"],
        scope=wanted["scope"], excluded=wanted["excluded_fields"], reason=wanted["reason"],
    )  # fmt: skip
    effects = change_effects(db, code, proposed, agreements.values(), wanted["effective_date"])
    return page(request, who, "confirm.html", code=code, change=checked, wanted=wanted,
                described=describe_change(checked), effects=effects)  # fmt: skip
