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


@app.command()
def rebaseline(
    name: str = typer.Argument(help="The staging_db destination whose agreement is recorded"),
) -> None:
    """Record a staging database's agreements and formats anew as this destination's: the
    step after a legitimate change of agreement or formats (a run refuses such a change,
    rule staging_db_agreement_changed). Settle first what the database holds under the old
    agreement (with the state); nothing but the record is written."""
    from pipelines.destinations.base import DeliveryError
    from pipelines.destinations.registry import DestinationType, build_destination
    from pipelines.destinations.staging_db import StagingDbDestination

    console = Console(soft_wrap=True)
    config = load_destination(name, load_settings().destinations_dir)
    if config.type is not DestinationType.STAGING_DB:
        raise DestinationConfigError(f"destination {name} is {config.type.value}, not staging_db")
    client = build_destination(config)
    assert isinstance(client, StagingDbDestination)
    try:
        before = client.rebaseline()
    except DeliveryError as error:
        raise DestinationConfigError(str(error)) from None
    finally:
        client.close()
    now = f"agreements {', '.join(config.agreements)}; formats {', '.join(config.formats)}"
    was = (
        "nothing recorded"
        if before is None
        else (f"agreements {before[1]}; formats {before[2]} (recorded by destination {before[0]})")
    )
    console.print(
        f"{name}: staging database {client.where()} now records {now}; it recorded {was}",
        markup=False,
    )
