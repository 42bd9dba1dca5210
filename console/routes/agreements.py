"""Agreements in plain words (what ``datashare policy explain`` says), the fields that leave
and how each is transformed, the next annual review, and warnings within 60 days."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from console.app import Db, State
from console.auth import Viewer
from console.pages import export, page
from pipelines.commands.policy import RecipientRow, explanation
from pipelines.review import WARNING_DAYS, agreement_warnings, field_rows
from schemas import Recipient

router = APIRouter()

COLUMNS = ("id", "recipient", "legal_basis", "effective", "expires", "last_reviewed",
           "review_due", "warnings")  # fmt: skip
FIELD_COLUMNS = ("field", "category", "transform", "how")
Format = Annotated[str | None, Query(pattern="^(csv|json)$")]


def _recipients(db: Db) -> dict[str, RecipientRow]:
    rows = db.execute(select(Recipient.code, Recipient.name, Recipient.category))
    return {code: RecipientRow(name, str(category)) for code, name, category in rows}


@router.get("/agreements")
def agreements(request: Request, who: Viewer, console: State, format: Format = None) -> Response:
    """Every valid agreement with its review date and warnings; problems of the others."""
    today = dt.date.today()
    found, problems = console.agreements()
    rows: list[dict[str, Any]] = [
        {
            "id": a.id,
            "recipient": a.recipient,
            "legal_basis": a.legal_basis.value,
            "effective": a.effective.isoformat(),
            "expires": a.expires.isoformat() if a.expires else "",
            "last_reviewed": a.last_reviewed.isoformat(),
            "review_due": a.review_due.isoformat(),
            "warnings": "; ".join(agreement_warnings(a, today)),
        }
        for a in sorted(found.values(), key=lambda a: a.id)
    ]
    if format:
        return export(rows, COLUMNS, format, "agreements")
    return page(request, who, "agreements.html", rows=rows, problems=[str(p) for p in problems],
                days=WARNING_DAYS)  # fmt: skip


@router.get("/agreements/{agreement_id}")
def agreement(
    request: Request, who: Viewer, db: Db, console: State, agreement_id: str,
    format: Format = None,
) -> Response:  # fmt: skip
    """One agreement in plain words, with the fields that leave and how."""
    found, _ = console.agreements()
    chosen = found.get(agreement_id)
    if chosen is None:
        raise HTTPException(404, f"No valid agreement {agreement_id}")
    fields = field_rows(chosen)
    if format:
        return export(fields, FIELD_COLUMNS, format, f"agreement-{agreement_id}-fields")
    today = dt.date.today()
    lines = explanation(chosen, _recipients(db).get(chosen.recipient), today=today)
    return page(request, who, "agreement.html", agreement=chosen, lines=lines, fields=fields,
                warnings=agreement_warnings(chosen, today))  # fmt: skip
