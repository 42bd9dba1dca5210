"""``datashare db``: create and upgrade the database."""

from __future__ import annotations

import typer
from rich.console import Console

from pipelines.commands.options import DEFAULT_URL, DatabaseUrl
from pipelines.db import make_engine

app = typer.Typer(help="Create or upgrade the program's database.", no_args_is_help=True)


@app.command()
def upgrade(database_url: DatabaseUrl = DEFAULT_URL) -> None:
    """Create the database, or upgrade it to the newest schema."""
    engine = make_engine(database_url)
    from schemas.migrate import upgrade as upgrade_schema  # Alembic only when used

    upgrade_schema(engine)
    Console().print(f"Database at [bold]{engine.url.render_as_string()}[/] is up to date.")
