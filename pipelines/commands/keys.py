"""``datashare keys``: the demo's local keys, and which key each recipient would use."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from pipelines.commands.options import DEFAULT_URL, DatabaseUrl
from pipelines.db import make_engine
from pipelines.settings import load_settings
from pipelines.staging import create_key_file
from privacy.errors import PrivacyError
from privacy.keys import ChainKeyProvider, EnvKeyProvider, FileKeyProvider, ensure_demo_key
from schemas import Recipient

app = typer.Typer(help="Pseudonymization and staging keys (never printed).", no_args_is_help=True)


def _recipients(database_url: str) -> list[str]:
    engine = make_engine(load_settings(database_url).database_url)
    with engine.connect() as connection:
        return list(connection.scalars(select(Recipient.code).order_by(Recipient.code)))


@app.command("init-demo")
def init_demo(database_url: DatabaseUrl = DEFAULT_URL) -> None:
    """Create local demo keys (one per recipient, and the staging key) where missing.

    For the demo only: production keys come from the environment or a secrets backend.
    """
    settings = load_settings(database_url)
    for code in _recipients(database_url):
        ensure_demo_key(settings.keys_file, code)
    create_key_file(settings.staging_key_file)
    Console().print(
        f"Demo keys are in {settings.keys_file} and {settings.staging_key_file} (mode 0600)."
    )


@app.command("list")
def list_keys(database_url: DatabaseUrl = DEFAULT_URL) -> None:
    """Show, per recipient, the id of the pseudonymization key that would be used."""
    settings = load_settings(database_url)
    keys = ChainKeyProvider([EnvKeyProvider(), FileKeyProvider(settings.keys_file)])
    table = Table("recipient", "key id")
    for code in _recipients(database_url):
        try:
            table.add_row(code, keys.key(code).key_id)
        except PrivacyError as error:
            table.add_row(code, f"[red]missing[/] ({error})")
    Console().print(table)
