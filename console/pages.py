"""Rendering: HTML pages from Jinja templates, and the same rows as CSV or JSON exports.

Every page gets the logged-in person and a CSRF token for its forms; the token is also set as
a ``SameSite=Strict`` cookie scoped to the console. Responses are never cached.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from console.auth import CSRF_COOKIE, Person, Role, csrf_token_for

TEMPLATES = Path(__file__).with_name("templates")
_ENV = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
EXPORTS = ("csv", "json")


def base_path(request: Request) -> str:
    """Where the console is mounted (``/datashare`` in the api-server, empty in tests)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def page(
    request: Request, who: Person, template: str, status: int = 200, **context: Any
) -> Response:
    """Render ``template`` for ``who``; sets the CSRF cookie its forms need."""
    token = csrf_token_for(request, who.name)
    html = _ENV.get_template(template).render(
        base=base_path(request),
        who=who,
        Role=Role,
        csrf=token,
        today=dt.date.today(),
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=NO_STORE)
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            path=base_path(request) or "/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return response


def plain(request: Request, template: str, status: int, **context: Any) -> HTMLResponse:
    """A page for someone without a role (errors): no forms, no token."""
    html = _ENV.get_template(template).render(base=base_path(request), who=None, **context)
    return HTMLResponse(html, status_code=status, headers=NO_STORE)


def export(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str, name: str) -> Response:
    """``rows`` (only ``columns``) as a CSV download or a JSON array."""
    picked = [{c: r.get(c) for c in columns} for r in rows]
    if fmt == "json":
        return JSONResponse(json.loads(json.dumps(picked, default=str)), headers=NO_STORE)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(picked)
    headers = {**NO_STORE, "Content-Disposition": f'attachment; filename="{name}.csv"'}
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


def wants_json(request: Request) -> bool:
    """Whether the caller expects data rather than a page: an export, or a client that does
    not accept HTML (browsers do; API clients and scripts get JSON errors)."""
    if request.query_params.get("format") in EXPORTS:
        return True
    return "text/html" not in request.headers.get("accept", "")
