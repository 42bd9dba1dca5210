"""What Airflow loads (entry point ``airflow.plugins``): the console app, mounted in the
api-server at ``/datashare``, and its entry in Airflow's menu.

The menu entry is an *external view* with a ``url_route``: Airflow shows the console's
server-rendered pages inside its own UI (its menu stays around them), without a JavaScript
bundle to build.

Every Airflow process loads its plugins, ``airflow dags test`` and each task included, yet only
the api-server serves the console. So importing this module imports nothing but Airflow's
plugin base: the app Airflow mounts is :class:`LazyConsoleApp`, a plain ASGI callable that
imports and builds the FastAPI app (FastAPI, Jinja, the routes, the settings) on its first
request. Nothing here opens a database connection.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/datashare"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyConsoleApp:
    """An ASGI app that builds the console's FastAPI app once, on its first request."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        """Whether the FastAPI app was built (a request came)."""
        return self._app is not None

    def build(self) -> Any:
        """The console's FastAPI app, made on the first call (thread-safe)."""
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from console.app import create_app

                    self._app = create_app()
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request with the real app (built off the event loop the first time)."""
        app = self._app
        if app is None:
            from anyio import to_thread

            app = await to_thread.run_sync(self.build)
        await app(scope, receive, send)


class DatashareConsolePlugin(AirflowPlugin):
    """The data managers' console."""

    name = "datashare_console"
    fastapi_apps = [  # noqa: RUF012 - Airflow reads these as class attributes
        {"app": LazyConsoleApp(), "url_prefix": URL_PREFIX, "name": "Datashare console"}
    ]
    external_views = [  # noqa: RUF012
        {
            "name": "Datashare",
            "href": f"{URL_PREFIX}/runs",
            "destination": "nav",
            "url_route": "datashare",
        }
    ]
