"""The ``datashare`` command: the one entry point for people.

Errors people can act on (a database without tables, an unreachable database, a policy, key or
configuration problem) end in one plain line and a non-zero exit, not a traceback; their
messages never hold a child's data.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console
from sqlalchemy.exc import OperationalError

from pipelines.collector import paused

HELP = "Share Head Start child data with state education data systems, safely."

# name -> (module of pipelines.commands, attribute, a group of commands or one command), in
# the order of `datashare --help`. A command's module is imported only when it is used.
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "db": ("db", "app", True),
    "demo": ("demo", "app", True),
    "import": ("imports", "app", True),
    "policy": ("policy", "app", True),
    "programs": ("programs", "app", True),
    "keys": ("keys", "app", True),
    "run": ("run", "run", False),
    "audit": ("audit", "app", True),
    "disclosures": ("disclosures", "disclosures", False),
    "destinations": ("destinations", "app", True),
    "airflow": ("airflow_cmd", "app", True),
    "doctor": ("doctor", "doctor", False),
}


def build_app(names: list[str] | None = None) -> typer.Typer:
    """The ``datashare`` command with the named commands (default: all of them)."""
    built = typer.Typer(
        help=HELP,
        no_args_is_help=True,
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
    )

    @built.callback()
    def _group() -> None:
        """Share Head Start child data with state education data systems, safely."""

    for name in names if names is not None else list(COMMANDS):
        module, attribute, group = COMMANDS[name]
        target = getattr(importlib.import_module(f"pipelines.commands.{module}"), attribute)
        if group:
            built.add_typer(target, name=name)
        else:
            built.command(name)(target)
    return built


_whole: list[typer.Typer] = []


def __getattr__(name: str) -> typer.Typer:
    """``pipelines.cli.app``: the whole command, built when first asked for."""
    if name == "app":
        if not _whole:
            _whole.append(build_app())
        return _whole[0]
    raise AttributeError(name)


def _app_for(argv: list[str]) -> typer.Typer:
    """Only the command being run (its imports alone: `datashare run` starts without loading
    pandas and every other command), or everything for help and unknown names."""
    first = argv[1] if len(argv) > 1 else ""
    return build_app([first]) if first in COMMANDS else build_app()


def main() -> None:
    """Run the command line; turn known failures into one clear line."""
    console = Console(stderr=True)
    try:
        # the command's imports: long-lived objects, no garbage to collect; frozen, or the
        # first collection after the pause walks every one of them
        with paused(freeze=True):
            app = _app_for(sys.argv)
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
    except Exception as error:
        if not isinstance(error, _plain_errors()):
            raise
        console.print(f"[red]{type(error).__name__}:[/] {error}")
        sys.exit(2)


def _plain_errors() -> tuple[type[Exception], ...]:
    """The failures told in one line, imported only when something failed (the submission's
    errors come with pandas)."""
    from pipelines.destinations.registry import DestinationConfigError
    from pipelines.submission.context import SubmissionError
    from privacy.errors import PrivacyError

    return (PrivacyError, SubmissionError, DestinationConfigError)
