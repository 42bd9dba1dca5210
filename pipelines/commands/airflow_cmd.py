"""``datashare airflow``: prepare an Airflow deployment for the destinations."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from pipelines.airflow_setup import deployment_environ, ensure_secrets, private_metadata, sync_pools
from pipelines.commands.destinations import check_destinations
from pipelines.settings import load_settings

app = typer.Typer(
    help="Prepare Airflow for the destinations (pools, secrets).", no_args_is_help=True
)


@app.command()
def sync() -> None:
    """Create the Fernet key and JWT secret file once (0600), and create or update one pool
    per destination from its pool size. Safe to repeat."""
    console = Console(soft_wrap=True)
    settings = load_settings()
    home = Path(deployment_environ(settings)["AIRFLOW_HOME"])
    path = ensure_secrets(home)
    env = deployment_environ(settings)
    private_metadata(env)
    configs, problems = check_destinations(settings.destinations_dir)
    sync_pools(env, configs, None)
    for config in configs:
        console.print(f"pool {config.pool}: {config.pool_size} slots", markup=False)
    console.print(
        f"Secrets: {path} (mode 0600). Every Airflow process loads it: set -a; . {path}; set +a",
        markup=False,
    )
    for line in problems:
        console.print(f"not synced: {line}", style="red", markup=False)
    if problems:
        raise typer.Exit(1)
