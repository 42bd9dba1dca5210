"""The ``datashare`` command: the one entry point for people.

Errors people can act on (a database without tables, an unreachable database, a policy, key or
configuration problem) end in one plain line and a non-zero exit, not a traceback; their
messages never hold a child's data.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from sqlalchemy.exc import OperationalError

from pipelines.commands import (
    airflow_cmd,
    audit,
    db,
    demo,
    destinations,
    disclosures,
    doctor,
    imports,
    keys,
    policy,
    programs,
    run,
)
from pipelines.destinations.registry import DestinationConfigError
from pipelines.submission.context import SubmissionError
from privacy.errors import PrivacyError

app = typer.Typer(
    help="Share Head Start child data with state education data systems, safely.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(demo.app, name="demo")
app.add_typer(imports.app, name="import")
app.add_typer(policy.app, name="policy")
app.add_typer(programs.app, name="programs")
app.add_typer(keys.app, name="keys")
app.command("run")(run.run)
app.add_typer(audit.app, name="audit")
app.command("disclosures")(disclosures.disclosures)
app.add_typer(destinations.app, name="destinations")
app.add_typer(airflow_cmd.app, name="airflow")
app.command("doctor")(doctor.doctor)


def main() -> None:
    """Run the command line; turn known failures into one clear line."""
    console = Console(stderr=True)
    try:
        app()
    except OperationalError as error:
        text = str(error.orig)
        if "no such table" in text or "does not exist" in text:
            console.print(
                "[red]The database has no datashare tables yet.[/] Run: datashare db upgrade"
            )
        else:
            console.print(f"[red]Cannot use the database:[/] {type(error.orig).__name__}")
        sys.exit(2)
    except (PrivacyError, SubmissionError, DestinationConfigError) as error:
        console.print(f"[red]{type(error).__name__}:[/] {error}")
        sys.exit(2)
