"""``datashare audit``: what each run withheld and why, and whether the ledgers are intact."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy import Engine

from pipelines import verify_jobs as jobs
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
from privacy import anchors as anchoring
from privacy.errors import LedgerError

app = typer.Typer(
    help="Show the redaction audit of runs; verify the ledgers' hash chains.",
    no_args_is_help=True,
)

RUN_COLUMNS = (
    "run", "destination", "run_date", "dry_run", "status", "started_at", "counts", "rows"
)  # fmt: skip
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
JSON_RUN_COLUMNS = (*RUN_COLUMNS[:-2], "finished_at", "summary")

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
    anchors_file: Annotated[
        Path | None,
        typer.Option(
            "--anchors", help="An anchors file exported earlier: every anchor must still hold."
        ),
    ] = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Walk every entry, not only those after the newest verified-through checkpoint.",
        ),
    ] = False,
    checkpoint: Annotated[
        bool,
        typer.Option(
            "--checkpoint/--no-checkpoint",
            help="Record a verified-through checkpoint at each head found intact.",
        ),
    ] = True,
    wait_limit: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds to wait for a verify already running before giving up (exit 3).",
        ),
    ] = 3600.0,
    database_url: DatabaseUrl = DEFAULT_URL,
) -> None:
    """Check the ledgers' hash chains against the newest run anchor (or the heads given), the
    anchors themselves and the delivery ledger; non-zero if anything is broken.

    By default only the entries after each ledger's newest verified-through checkpoint are
    walked (the checkpoint itself, and every anchor before it, are checked); --full walks
    every entry and also finds an entry edited before the checkpoint.

    Recording checkpoints, it runs as a verify job the console shows, one at a time: it waits
    for a verify the console (or another command) is running, at most --wait-limit seconds
    (then it exits 3 having verified and written nothing). --no-checkpoint writes nothing,
    so it runs at once, beside any job."""
    console = Console()
    given = {"disclosures": _anchor(disclosures_head), "redactions": _anchor(redactions_head)}
    engine = make_engine(database_url)
    kept = True
    try:
        exported = anchoring.read_anchor_file(anchors_file) if anchors_file else []
        if checkpoint:
            check, kept = jobs.verify_as_job(
                engine,
                _who(),
                full=full,
                given=given,
                exported=exported,
                waiting=lambda job: _say_waiting(console, job),
                wait_limit=wait_limit,
            )
        else:
            with session_scope(engine) as session:
                check = anchoring.verify_ledgers(
                    session, given=given, exported=exported, full=full, record=False
                )
    except LedgerError as error:
        console.print(f"[red]{error}[/]", highlight=False)
        raise typer.Exit(2) from error
    except jobs.StillRunning as busy:
        running = f"job #{busy.job['id']}" if busy.job else "another verify job"
        console.print(
            f"[yellow]gave up after {busy.waited:.0f} s: {running} is still running; nothing "
            "was verified or written. Try again later, raise --wait-limit, or run with "
            "--no-checkpoint (verifies beside it, records no checkpoint).[/]",
            highlight=False,
        )
        raise typer.Exit(3) from busy
    finally:
        engine.dispose()
    if check.anchor is None:
        console.print("no run anchor stored yet: the tail is checked only against --*-head")
    else:
        console.print(
            f"anchor: run {check.anchor.run_id} at {check.anchor.anchored_at.isoformat()}",
            highlight=False,
        )
    _print_scope(console, check)
    for report in check.reports.values():
        style = "green" if report.ok else "bold red"
        console.print(f"[{style}]{report.summary()}[/]", highlight=False)
        for item in report.breaks:
            console.print(f"  {item}", highlight=False, markup=False)
        if report.more_breaks:
            console.print(f"  ... and {report.more_breaks} more", highlight=False)
        if report.ok:
            console.print(f"  head {report.head_seq}:{report.head_hash}", highlight=False)
    for title, problems in (
        ("anchors", check.anchor_problems),
        ("delivery ledger and runs", check.delivery_problems),
    ):
        style = "green" if not problems else "bold red"
        state = "consistent" if not problems else f"{len(problems)} problem(s)"
        console.print(f"[{style}]{title}: {state}[/]", highlight=False)
        for problem in problems:
            console.print(f"  {problem}", highlight=False, markup=False)
    if not kept:
        console.print(
            "no checkpoint recorded: this verify's job was marked stalled while it ran "
            "(its heartbeat stopped), and another verify may have started",
            highlight=False,
        )
    for name, made in check.recorded.items() if kept else ():
        console.print(f"checkpoint recorded: {name} verified through seq {made.seq}")
    if not check.ok:
        raise typer.Exit(1)


def _who() -> str:
    """Who asked, as a verify job records it."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        user = "someone"
    return f"{user} (datashare audit verify)"


def _say_waiting(console: Console, job: dict[str, Any]) -> None:
    """Say which verify job this command waits for (no PII: an id, a name, times)."""
    mode = "full" if job["mode"] == "full" else "routine"
    console.print(
        f"a {mode} verify (job #{job['id']}, asked by {job['requested_by']} at "
        f"{job['started_at']}, {job['owner'] or 'owner not recorded'}) is running: waiting "
        "for it to end, so that two verifies never walk the ledgers or write checkpoints "
        "at once (the console shows its progress)",
        highlight=False,
    )


def _print_scope(console: Console, check: anchoring.LedgerCheck) -> None:
    """Say what was verified: every entry, or which checkpoint a routine verify started from."""
    if check.full:
        console.print("full verify: every entry of both ledgers walked", highlight=False)
        return
    console.print(
        "routine verify: only the entries after each ledger's verified-through checkpoint are "
        "walked; the checkpoint and the anchors before it are checked (--full walks every entry)",
        highlight=False,
    )
    for name in check.reports:
        start = check.started_from.get(name)
        if start is None:
            console.print(f"  {name}: no usable checkpoint, every entry walked", highlight=False)
            continue
        console.print(f"  {name}: from checkpoint {start.describe()}", highlight=False)
        if not start.keyed:
            console.print(
                f"  {name}: unkeyed, so anyone who can write the database could have written "
                "this checkpoint: only --full is a check there",
                highlight=False,
            )


@app.command("anchors")
def list_anchors(
    export: Annotated[
        Path | None,
        typer.Option("--export", help="Write every anchor to this file (JSON) for safekeeping."),
    ] = None,
    fmt: Format = OutputFormat.TABLE,
    database_url: DatabaseUrl = DEFAULT_URL,
) -> None:
    """List the ledger anchors runs stored; --export writes them to a file a state can keep."""
    console = Console()
    engine = make_engine(database_url)
    try:
        with session_scope(engine) as session:
            if export is not None:
                count = anchoring.export_anchors(session, export)
                console.print(f"{count} anchor(s) written to {export}", highlight=False)
                return
            rows = [
                {
                    "run": a.run_id,
                    "anchored_at": a.anchored_at.isoformat(),
                    "disclosures": f"{a.heads['disclosures'][0]}:{a.heads['disclosures'][1]}",
                    "redactions": f"{a.heads['redactions'][0]}:{a.heads['redactions'][1]}",
                    "keyed": a.keyed,
                }
                for a in anchoring.anchors(session)
            ]
    except OSError as error:
        console.print(f"[red]cannot write {export} ({type(error).__name__})[/]", highlight=False)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    columns = ("run", "anchored_at", "disclosures", "redactions", "keyed")
    emit(rows, columns, fmt, console=console, title="Ledger anchors, oldest first")
