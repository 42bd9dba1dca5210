"""Options every command shares."""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.db import DATABASE_URL_ENV, DEFAULT_DATABASE_URL

DatabaseUrl = Annotated[
    str,
    typer.Option(
        "--database-url",
        envvar=DATABASE_URL_ENV,
        help="SQLAlchemy URL of the program's database.",
        show_default=True,
    ),
]
DEFAULT_URL = DEFAULT_DATABASE_URL
