"""The ``datashare`` command: the one entry point for people."""

from __future__ import annotations

import typer

from pipelines.commands import db

app = typer.Typer(
    help="Share Head Start child data with state education data systems, safely.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(db.app, name="db")
