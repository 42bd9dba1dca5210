"""``datashare audit``: what each run withheld and why, and whether the ledgers are intact."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import Engine

from pipelines.commands.options import DEFAULT_URL, DatabaseUrl
from pipelines.db import make_engine, session_scope
from pipelines.reports import (
    OutputFormat,
    emit,
    redaction_detail,
    redaction_groups,
    run_exists,
    run_rows,
)
from privacy import ledger
from privacy.errors import LedgerError

app = typer.Typer(
    help="Show the redaction audit of runs; verify the ledgers' hash chains.",
    no_args_is_help=True,
)

RUN_COLUMNS = ("run", "destination", "run_date", "dry_run", "status", "started_at", "counts")
GROUP_COLUMNS = (
    "reason",
    "description",
    "program",
    "agreement",
    "children_withheld",
    "fields_removed",
    "fields",
)
DETAIL_COLUMNS = ("seq", "program", "subject", "agreement", "reason", "field", "rule")
JSON_RUN_COLUMNS = (*RUN_COLUMNS[:-1], "finished_at", "summary")

Format = Annotated[OutputFormat, typer.Option("--format", help="Output format.")]


@app.command()
def show(
    run: Annotated[str | None, typer.Option("--run", help="A run id: show its audit.")] = None,
    program: Annotated[
        str | None, typer.Option("--program", help="Only this program (lists entries).")
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Only this reason code (lists entries).")
    ] = None,
    fmt: Format = OutputFormat.TABLE,
    database_url: DatabaseUrl = DEFAULT_URL,
) -> None:
    """List runs; with --run, what it withheld or removed and why (filters list each entry)."""
    console = Console()
    if run is None and (program or reason):
        console.print("[red]--program and --reason need --run[/]")
        raise typer.Exit(2)
    engine = make_engine(database_url)
    try:
        _show(engine, run, program, reason, fmt, console)
    finally:
        engine.dispose()


def _show(
    engine: Engine,
    run: str | None,
    program: str | None,
    reason: str | None,
    fmt: OutputFormat,
    console: Console,
) -> None:
    with session_scope(engine) as session:
        if run is None:
            columns = JSON_RUN_COLUMNS if fmt is OutputFormat.JSON else RUN_COLUMNS
            emit(run_rows(session), columns, fmt, console=console, title="Runs")
            return
        if not run_exists(session, run):
            console.print(f"[red]No run {run} is recorded.[/]")
            raise typer.Exit(1)
        if program is None and reason is None:
            rows = redaction_groups(session, run)
            title = f"Run {run}: withheld children and removed fields, by reason"
            emit(rows, GROUP_COLUMNS, fmt, console=console, title=title)
            return
        rows = redaction_detail(session, run, program=program, reason=reason)
        filters = ", ".join(f"{k} {v}" for k, v in (("program", program), ("reason", reason)) if v)
        title = f"Run {run}, {filters}: {len(rows)} entries"
        emit(rows, DETAIL_COLUMNS, fmt, console=console, title=title)


def _anchor(value: str | None) -> tuple[int, str] | None:
    if value is None:
        return None
    seq, _, digest = value.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise typer.BadParameter("expected SEQ:HASH (the head printed by an earlier verify)")
    return int(seq), digest.lower()


@app.command("verify")
def verify_chains(
    disclosures_head: Annotated[
        str | None,
        typer.Option(help="SEQ:HASH recorded earlier; the disclosure log must still reach it."),
    ] = None,
    redactions_head: Annotated[
        str | None,
        typer.Option(help="SEQ:HASH recorded earlier; the redaction audit must still reach it."),
    ] = None,
    database_url: DatabaseUrl = DEFAULT_URL,
) -> None:
    """Check the hash chains of the disclosure log and the redaction audit; non-zero if broken."""
    console = Console()
    anchors = {"disclosures": _anchor(disclosures_head), "redactions": _anchor(redactions_head)}
    broken = False
    engine = make_engine(database_url)
    try:
        with session_scope(engine) as session:
            for name in ("disclosures", "redactions"):
                report = ledger.verify(session, name, anchor=anchors[name])  # type: ignore[arg-type]
                style = "green" if report.ok else "bold red"
                console.print(f"[{style}]{report.summary()}[/]", highlight=False)
                for item in report.breaks:
                    console.print(f"  {item}", highlight=False, markup=False)
                if report.more_breaks:
                    console.print(f"  ... and {report.more_breaks} more", highlight=False)
                if report.ok:
                    console.print(f"  head {report.head_seq}:{report.head_hash}", highlight=False)
                elif not report.keyed and report.breaks[0].seq == 1:
                    hint = f"  (if the chain was written with {ledger.LEDGER_KEY_ENV}, set it)"
                    console.print(hint, highlight=False)
                broken = broken or not report.ok
    except LedgerError as error:
        console.print(f"[red]{error}[/]", highlight=False)
        raise typer.Exit(2) from error
    finally:
        engine.dispose()
    if broken:
        raise typer.Exit(1)
