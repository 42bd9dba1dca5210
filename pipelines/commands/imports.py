"""``datashare import``: load a tool's CSV export of child records through a mapping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipelines.commands.options import DEFAULT_URL, DatabaseUrl
from pipelines.db import make_engine
from pipelines.imports import (
    ImportReport,
    ImportsError,
    MappingError,
    SourceError,
    StoreError,
    find_mapping,
    import_file,
    load_mapping,
    mappings_dir,
)
from pipelines.imports.importer import DEFAULT_BATCH_SIZE
from schemas.codes import ProgramType

app = typer.Typer(help="Load child records from a tool's CSV export.", no_args_is_help=True)

SHOWN_ERRORS = 50

ExportFile = Annotated[Path, typer.Argument(help="The CSV export to load.", dir_okay=False)]
State = Annotated[
    str | None,
    typer.Option("--state", help="Two-letter state of the programs (overrides the mapping)."),
]
Type = Annotated[
    ProgramType | None,
    typer.Option("--program-type", help="Program type of the programs (overrides the mapping)."),
]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Rows per transaction.")]
ReportPath = Annotated[
    Path | None, typer.Option("--report", help="Also write the report as JSON to this file.")
]


@app.command("run")
def run(
    mapping: Annotated[str, typer.Argument(help="A mapping name (e.g. gold) or mapping file.")],
    file: ExportFile,
    state: State = None,
    program_type: Type = None,
    batch_size: BatchSize = DEFAULT_BATCH_SIZE,
    report_path: ReportPath = None,
    database_url: DatabaseUrl = DEFAULT_URL,
) -> None:
    """Load FILE through MAPPING: upsert children, quarantine bad rows, print a summary."""
    console = Console(soft_wrap=True)
    try:
        loaded = load_mapping(find_mapping(mapping))
        engine = make_engine(database_url)
        try:
            from schemas.migrate import upgrade as upgrade_schema  # Alembic only when used

            upgrade_schema(engine)
            report = import_file(
                engine,
                loaded,
                file,
                state=state.upper() if state else None,
                program_type=program_type,
                batch_size=batch_size,
            )
        finally:
            engine.dispose()
    except (SourceError, StoreError) as error:
        console.print(f"[bold red]Import failed:[/] {escape(str(error))}")
        raise typer.Exit(1) from None
    except (MappingError, ImportsError) as error:
        console.print(f"[bold red]Cannot import:[/] {escape(str(error))}")
        raise typer.Exit(2) from None
    _print(console, report)
    if report_path is not None:
        report_path.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    if report.rows_loaded == 0:
        console.print("[bold red]Nothing was loaded.[/]")
        raise typer.Exit(1)


@app.command("gold")
def gold(
    file: ExportFile,
    state: State = None,
    program_type: Type = None,
    batch_size: BatchSize = DEFAULT_BATCH_SIZE,
    report_path: ReportPath = None,
    database_url: DatabaseUrl = DEFAULT_URL,
) -> None:
    """Load a Teaching Strategies GOLD child export (the gold mapping)."""
    run("gold", file, state, program_type, batch_size, report_path, database_url)


@app.command("mappings")
def mappings() -> None:
    """List the mappings in the mappings folder."""
    console = Console()
    folder = mappings_dir()
    table = Table("mapping", "description", title=f"Mappings in {folder}")
    for path in sorted(folder.glob("*.yaml")):
        try:
            table.add_row(path.stem, load_mapping(path).description)
        except MappingError as error:
            table.add_row(path.stem, f"[red]invalid:[/] {escape(str(error))}")
    console.print(table)


def _print(console: Console, report: ImportReport) -> None:
    title = f"Import of {report.source} (mapping {report.mapping})"
    table = Table("", "rows", title=escape(title), title_justify="left")
    table.add_row("read", str(report.rows_read))
    table.add_row("loaded", str(report.rows_loaded))
    table.add_row("  new", str(report.rows_new))
    table.add_row("  updated", str(report.rows_updated))
    table.add_row("  unchanged", str(report.rows_unchanged))
    table.add_row("quarantined", str(report.rows_quarantined))
    table.add_row("  already in quarantine", str(report.quarantine_known))
    console.print(table)
    records = Table("record", "created", "updated", title="Records", title_justify="left")
    records.add_row("programs", str(report.programs_created), "-")
    records.add_row("sites", str(report.sites_created), str(report.sites_updated))
    records.add_row("children", str(report.children_created), str(report.children_updated))
    records.add_row("enrollments", str(report.enrollments_created), str(report.enrollments_updated))
    console.print(records)
    if report.quarantined_by_rule:
        rules = Table("rule", "rows", title="Quarantined by rule", title_justify="left")
        for rule, count in report.quarantined_by_rule.most_common():
            rules.add_row(rule, str(count))
        console.print(rules)
    if report.duplicate_rows:
        console.print(
            f"[bold red]{report.duplicate_rows} rows give a child id that repeats in this file "
            "with different values[/]: every copy is quarantined (rule duplicate_in_file), "
            "since which one is right cannot be known"
        )
    if report.warnings:
        console.print("[bold]Warnings[/] (loaded; file:line field (column): rule: detail)")
        for warning in report.warnings[:SHOWN_ERRORS]:
            console.print(str(warning), markup=False, highlight=False)
        hidden = len(report.warnings) - SHOWN_ERRORS + report.warnings_omitted
        if hidden > 0:
            console.print(f"... and {hidden} more (see --report)")
    if report.errors:
        console.print("[bold]Errors[/] (file:line field (column): rule: detail)")
        for error in report.errors[:SHOWN_ERRORS]:
            console.print(str(error), markup=False, highlight=False)
        hidden = len(report.errors) - SHOWN_ERRORS + report.errors_omitted
        if hidden > 0:
            console.print(f"... and {hidden} more (see --report)")
