"""``datashare disclosures``: everything disclosed about one child, for a parent's request."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from pipelines.commands.options import DEFAULT_URL, DatabaseUrl
from pipelines.db import make_engine, session_scope
from pipelines.reports import OutputFormat, disclosure_rows, emit
from privacy.ledger import programs_for_child

COLUMNS = (
    "date",
    "action",
    "recipient",
    "recipient_name",
    "legal_basis",
    "purpose",
    "fields",
    "agreement",
    "run",
)
JSON_COLUMNS = (*COLUMNS, "run_date", "seq")


def disclosures(
    child: Annotated[str, typer.Argument(help="The child's program-local id.")],
    program: Annotated[
        str | None,
        typer.Option("--program", help="Program code (needed when the id is in several)."),
    ] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = (
        OutputFormat.TABLE
    ),
    database_url: DatabaseUrl = DEFAULT_URL,
) -> None:
    """List every disclosure of a child's records: when, to whom, why, which fields (1303.23)."""
    console = Console()
    engine = make_engine(database_url)
    try:
        with session_scope(engine) as session:
            if program is None:
                programs = programs_for_child(session, child)
                if len(programs) > 1:
                    console.print(
                        f"[red]Child id {child} appears in programs {', '.join(programs)}: "
                        "give --program.[/]",
                        highlight=False,
                    )
                    raise typer.Exit(2)
                program = programs[0] if programs else None
            rows = disclosure_rows(session, program, child) if program else []
    finally:
        engine.dispose()
    if not rows and fmt is OutputFormat.TABLE:
        where = f"{program}/{child}" if program else child
        console.print(f"No disclosure of child {where} is logged.", highlight=False)
        return
    columns = JSON_COLUMNS if fmt is OutputFormat.JSON else COLUMNS
    title = f"Disclosures of child {program}/{child} ({len(rows)})"
    emit(rows, columns, fmt, console=console, title=title)
