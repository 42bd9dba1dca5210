"""The console's FastAPI app: settings and engine once per process, routes, error pages.

``create_app()`` reads the same settings as the CLI (``DATASHARE_DATABASE_URL``,
``DATASHARE_CONFIG_DIR``); the api-server mounts the app at ``/datashare``. A request without a
valid Airflow login gets 401 (JSON) or, from a browser, a redirect to Airflow's login page; a
role that may not see or do a thing gets 403; a change without its CSRF token gets 403.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from console.auth import CsrfRefused, Forbidden, NotLoggedIn
from console.pages import NO_STORE, base_path, plain, wants_json
from pipelines.db import make_engine, session_scope
from pipelines.settings import Settings, load_settings
from privacy.agreements import Agreement, check_agreements
from privacy.errors import ParticipationError

STATIC = Path(__file__).with_name("static")


class ConsoleState:
    """Settings and one engine for the process, made on first use."""

    def __init__(self, settings: Settings | None) -> None:
        self._settings = settings
        self._engine: Engine | None = None
        self._agreements: tuple[tuple[Any, ...], Any] | None = None
        self.jobs: dict[int, threading.Thread] = {}  # background verify jobs of this process

    @property
    def settings(self) -> Settings:
        """The settings given, else the environment's (as the CLI reads them)."""
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def agreements(self) -> tuple[dict[str, Agreement], list[Any]]:
        """The valid agreements and the problems of the others, read again only when a file
        in the folder changes (parsing YAML on every page would cost a page's budget)."""
        folder = self.settings.agreements_dir
        files = sorted(folder.glob("*.y*ml")) if folder.is_dir() else []
        signature = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files)
        if self._agreements is None or self._agreements[0] != signature:
            self._agreements = (signature, check_agreements(folder))
        return self._agreements[1]

    @property
    def engine(self) -> Engine:
        """The program database's engine."""
        if self._engine is None:
            self._engine = make_engine(self.settings.database_url)
        return self._engine


def state(request: Request) -> ConsoleState:
    """The app's console state."""
    return request.app.state.console  # type: ignore[no-any-return]


def session(request: Request) -> Iterator[Session]:
    """A session that commits when the route returns, rolls back on error."""
    with session_scope(state(request).engine) as db:
        yield db


Db = Annotated[Session, Depends(session)]
State = Annotated[ConsoleState, Depends(state)]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The console app (``settings`` for tests; the environment's by default)."""
    from console.routes import agreements, children, ledgers, programs, runs

    app = FastAPI(
        title="Head Start datashare console",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.console = ConsoleState(settings)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (runs, children, programs, agreements, ledgers):
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{base_path(request)}/runs", status_code=303)

    @app.exception_handler(NotLoggedIn)
    async def not_logged_in(request: Request, _: NotLoggedIn) -> Response:
        if wants_json(request):
            return JSONResponse({"detail": "Not authenticated"}, 401, headers=NO_STORE)
        from airflow.api_fastapi.app import get_auth_manager

        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = get_auth_manager().get_url_login(next_url=here)
        return RedirectResponse(login, status_code=303, headers=NO_STORE)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, error: Forbidden) -> Response:
        message = f"This page {error}; you are logged in as {error.person.name}" + (
            f" ({error.person.role.label})." if error.person.role else " with no console role."
        )
        if wants_json(request):
            return JSONResponse({"detail": message}, 403, headers=NO_STORE)
        return plain(request, "error.html", 403, title="Not allowed", message=message)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, error: CsrfRefused) -> Response:
        message = f"Change refused: {error}. Reload the page and try again."
        if wants_json(request) or request.headers.get("x-csrf-token") is not None:
            return JSONResponse({"detail": message}, 403, headers=NO_STORE)
        return plain(request, "error.html", 403, title="Change refused", message=message)

    @app.exception_handler(ParticipationError)
    async def refused(request: Request, error: ParticipationError) -> Response:
        message = f"Refused: {error}"
        if wants_json(request):
            return JSONResponse({"detail": message}, 400, headers=NO_STORE)
        return plain(request, "error.html", 400, title="Refused", message=message)

    return app
