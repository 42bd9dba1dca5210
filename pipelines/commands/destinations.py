"""``datashare destinations``: check every destination file; list what each schedules."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from pipelines.destinations.registry import (
    DestinationConfig,
    DestinationConfigError,
    list_destinations,
    load_destination,
)
from pipelines.settings import load_settings

app = typer.Typer(help="Check the destination files in config/destinations.", no_args_is_help=True)


def check_destinations(folder: Path) -> tuple[list[DestinationConfig], list[str]]:
    """Every destination of ``folder`` validated on its own: the good ones, and one
    ``file:line: key: problem`` line per problem of the others."""
    good: list[DestinationConfig] = []
    problems: list[str] = []
    for name in list_destinations(folder):
        try:
            good.append(load_destination(name, folder))
        except DestinationConfigError as error:
            problems.extend(str(error).splitlines())
    return good, problems


@app.command()
def check() -> None:
    """Validate every destination file (as the DAGs and the runs read them); exit 1 on any
    problem, with its file and line."""
    console = Console(soft_wrap=True)
    settings = load_settings()
    good, problems = check_destinations(settings.destinations_dir)
    for config in good:
        state = f"every {config.schedule}" if config.enabled else "disabled (dry-run only)"
        console.print(
            f"ok  {config.name}: {config.type.value} to {config.recipient}, {state}, pool "
            f"{config.pool} of {config.pool_size}, task retries {config.tasks.retries}, "
            f"timeout {config.tasks.execution_timeout_minutes} min",
            markup=False,
        )
    for line in problems:
        console.print(line, style="red", markup=False)
    if problems:
        raise typer.Exit(1)
