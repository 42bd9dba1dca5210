"""What Airflow loads (entry point ``airflow.plugins``): the console app, mounted in the
api-server at ``/datashare``, and its entry in Airflow's menu.

The menu entry is an *external view* with a ``url_route``: Airflow shows the console's
server-rendered pages inside its own UI (its menu stays around them), without a JavaScript
bundle to build. Importing this module builds the app but opens no database connection.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from console.app import create_app

URL_PREFIX = "/datashare"


class DatashareConsolePlugin(AirflowPlugin):
    """The data managers' console."""

    name = "datashare_console"
    fastapi_apps = [  # noqa: RUF012 - Airflow reads these as class attributes
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "Datashare console"}
    ]
    external_views = [  # noqa: RUF012
        {
            "name": "Datashare",
            "href": f"{URL_PREFIX}/runs",
            "destination": "nav",
            "url_route": "datashare",
        }
    ]
