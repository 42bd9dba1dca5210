"""Ledger integrity on demand: ``privacy.ledger.verify`` on the disclosure log and the
redaction audit (the same function as ``datashare audit verify``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from console.app import Db
from console.auth import Viewer, checked_form
from console.pages import NO_STORE, page, wants_json
from privacy import ledger

router = APIRouter()
LEDGERS = ("disclosures", "redactions")


@router.get("/ledgers")
def ledgers(request: Request, who: Viewer) -> Response:
    """The page with the button; verifying walks whole chains, so it runs only when asked."""
    return page(request, who, "ledgers.html", reports=None)


@router.post("/ledgers/verify")
async def verify(request: Request, who: Viewer, db: Db) -> Response:
    """Walk both chains and show where each is broken, if anywhere."""
    await checked_form(request, who)
    reports = [ledger.verify(db, name) for name in LEDGERS]  # type: ignore[arg-type]
    if wants_json(request):
        data = [
            {
                "ledger": r.ledger,
                "ok": r.ok,
                "summary": r.summary(),
                "entries": r.entries,
                "head": f"{r.head_seq}:{r.head_hash}",
                "breaks": [str(b) for b in r.breaks],
                "more_breaks": r.more_breaks,
            }
            for r in reports
        ]
        return JSONResponse(data, headers=NO_STORE)
    return page(request, who, "ledgers.html", reports=reports)
