"""A child's disclosures (45 CFR 1303.23, 1303.24(b)): find the child, show every disclosure
and deletion, print it for the parent. Every look is recorded (who, when).

Finding by local id uses the program code and local id in the URL (program-local codes, not
names); finding by name is a POST, so a name never appears in a URL or an access log.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from console.app import Db
from console.auth import DataManager, checked_form
from console.pages import base_path, export, page
from pipelines.access import access_rows, record_access
from pipelines.reports import disclosure_rows
from pipelines.review import child_names, find_children
from schemas import Program

router = APIRouter()

COLUMNS = ("date", "action", "recipient", "recipient_name", "legal_basis", "purpose", "fields",
           "agreement", "run", "run_date", "seq")  # fmt: skip


def _programs(db: Db) -> list[str]:
    return list(db.scalars(select(Program.code).order_by(Program.code)))


@router.get("/children")
def find(
    request: Request,
    who: DataManager,
    db: Db,
    program: str | None = None,
    child: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """The finder: program and local id (a GET form: ids only), or name (a POST form)."""
    if program and child:
        return RedirectResponse(f"{base_path(request)}/children/{program}/{child}", 303)
    return page(request, who, "find.html", programs=_programs(db), found=None, program=program)


@router.post("/children/search")
async def search(request: Request, who: DataManager, db: Db) -> Response:
    """Children of a program whose names start with the words given (POST: no name in URLs)."""
    form = await checked_form(request, who)
    program = str(form.get("program") or "")
    found = find_children(db, program, str(form.get("name") or ""))
    return page(request, who, "find.html", programs=_programs(db), found=found, program=program)


@router.get("/children/{program}/{child}")
def disclosures(
    request: Request,
    who: DataManager,
    db: Db,
    program: str,
    child: str,
    format: Annotated[str | None, Query(pattern="^(csv|json)$")] = None,
) -> Response:
    """Every disclosure and deletion of one child's records; the look itself is recorded."""
    rows = disclosure_rows(db, program, child)
    record_access(db, who.name, program, child, len(rows))
    if format:
        return export(rows, COLUMNS, format, f"disclosures-{program}-{child}")
    name = child_names(db, program, [child]).get(child)
    looks = access_rows(db, program, child)
    return page(request, who, "child.html", program=program, child=child, name=name, rows=rows,
                looks=looks)  # fmt: skip
