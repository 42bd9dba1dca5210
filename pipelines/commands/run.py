"""``datashare run``: one submission to one destination, through Airflow, with a summary."""

from __future__ import annotations

import datetime as dt
import re
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select

from pipelines.commands.options import DEFAULT_URL, DatabaseUrl
from pipelines.db import make_engine
from pipelines.destinations.registry import DestinationConfigError, load_destination
from pipelines.paths import safe_join
from pipelines.reports import row_lines, would_settle_line
from pipelines.runner import Terminated, run_dag
from pipelines.settings import load_settings
from privacy.reasons import Reason
from schemas import Run

STEPS = {
    "plan": "planning",
    "shards": "planning",
    "prepare": "preparing",
    "deliver": "delivering",
    "finish": "finishing",
    "verdict": "finishing",
}


def _describe(code: str) -> str:
    try:
        # Reason(code) looks a member up by value; mypy checks the call against
        # the __new__ that builds the members (value, level, description)
        return Reason(code).description  # type: ignore[call-arg]
    except ValueError:
        return code.replace("_", " ")


def show_summary(console: Console, summary: dict[str, Any]) -> None:
    """Print a run summary as tables: no PII, counts and reasons only."""
    programs = summary["programs"]
    children = summary.get("children", {})
    head = Table(title=f"Run {summary['run_id']}", show_header=False)
    head.add_column(no_wrap=True)
    head.add_column(overflow="fold")  # a report path is shown whole
    head.add_row("destination", f"{summary['destination']} (agreement {summary['agreement']})")
    head.add_row(
        "run date", summary["run_date"] + ("  [yellow]dry run[/]" if summary["dry_run"] else "")
    )
    head.add_row(
        "programs",
        f"{programs['considered']} considered, {len(programs['processed'])} processed, "
        f"{len(programs['skipped'])} not sharing, {len(programs['stopped'])} stopped",
    )
    deliveries = summary.get("deliveries", {})
    unchanged = sorted(p for p, status in deliveries.items() if status == "unchanged")
    if summary["dry_run"]:
        _dry_run_rows(head, summary)
    elif summary.get("output") == "aggregate":
        head.add_row(
            "children",
            f"{children.get('considered', 0)} considered; counts only: no child's own record "
            "is sent",
        )
    else:
        head.add_row(
            "children",
            f"{children.get('considered', 0)} considered, "
            f"{children.get('disclosed', 0)} permitted, "
            f"{children.get('logged', 0)} sent and logged this run, "
            f"{children.get('rejected', 0)} refused by the destination",
        )
    if unchanged:
        head.add_row(
            "unchanged", f"{', '.join(unchanged)}: same data as already delivered, not resent"
        )
    head.add_row(
        "bad input rows",
        f"{sum(summary['quarantined_by_rule'].values())} set aside (quarantined), not sent",
    )
    if not summary["dry_run"]:
        for label, line in row_lines(summary).items():  # rows delivered; deleted, when any
            head.add_row(label, line)
    head.add_row("validation", summary["validation"])
    head.add_row("status", summary["status"])
    head.add_row("report", summary.get("report", ""))
    console.print(head)
    for title, counts in (
        ("Children withheld, by reason", summary["withheld_by_reason"]),
        ("Fields removed from disclosed children, by reason", summary["fields_removed_by_reason"]),
        ("Input rows quarantined, by rule", summary["quarantined_by_rule"]),
    ):
        if counts:
            table = Table("reason", "count", title=title)
            for reason, n in sorted(counts.items(), key=lambda item: -item[1]):
                table.add_row(_describe(reason) if ":" not in reason else reason, str(n))
            console.print(table)
    if programs["skipped"]:
        table = Table("program", "why it shares nothing with this recipient",
                      title="Programs not sharing")  # fmt: skip
        for program, reason in sorted(programs["skipped"].items()):
            table.add_row(program, _describe(reason))
        console.print(table)
    aggregates_only = programs.get("records_withheld", {})
    for program, note in sorted(programs.get("skip_notes", {}).items()):
        # an AIAN program sharing aggregate outputs only does share: say what it withholds
        what = "aggregate outputs only" if program in aggregates_only else "not sharing"
        console.print(f"{program} ({what}): {note}", markup=False, highlight=False)
    show_reconciled(console, summary)
    show_stops(console, summary)


def show_reconciled(console: Console, summary: dict[str, Any]) -> None:
    """One line per program whose earlier, unlogged delivery this run settled first: logged
    (arrived, or presumed arrived because the destination no longer shows it) or sent afresh;
    a dry run says what the real run would settle (it settles nothing itself). First, the
    crashed runs this run marked abandoned (a dry run: would mark; it marks none)."""
    settled = summary.get("reconciled") or {}
    if summary.get("dry_run") and (crashed := summary.get("would_abandon")):
        console.print(
            f"Crashed runs: would mark abandoned {', '.join(crashed)} (a real run does; "
            "nothing marked now)",
            highlight=False,
        )
    elif crashed := summary.get("abandoned_runs"):
        console.print(
            f"Crashed runs marked abandoned: {', '.join(crashed)} (what they staged is removed)",
            highlight=False,
        )
    if summary.get("dry_run") and (would := summary.get("would_settle")):
        console.print(f"Open deliveries: {would_settle_line(would)}", highlight=False)
    elif settled:
        console.print(f"Earlier deliveries settled ({len(settled)}):", highlight=False)
    for program, outcome in sorted(settled.items()):
        console.print(f"  {program}: {outcome}", markup=False, highlight=False, soft_wrap=True)


def _dry_run_rows(head: Table, summary: dict[str, Any]) -> None:
    """A dry run's lines: nothing was sent, and what a real run would have done."""
    children = summary.get("children", {})
    would = summary.get("would_deliver") or {}
    head.add_row("sent", "[yellow]nothing: this was a dry run (nothing sent, nothing logged)[/]")
    head.add_row(
        "children",
        f"{children.get('considered', 0)} considered, {children.get('disclosed', 0)} permitted",
    )
    if not would:  # a dry run recorded before these counts were kept
        return
    head.add_row(
        "would send",
        f"{would.get('children_sent', 0)} children (new or changed since the last delivery)"
        + (f", would withdraw {n}" if (n := would.get("children_withdrawn", 0)) else ""),
    )
    for label, line in row_lines(summary).items():
        if label != "rows delivered":  # said above: nothing was sent
            head.add_row(label, line)


def show_stops(console: Console, summary: dict[str, Any]) -> None:
    """One line per stopped program: where it stopped, the reason code and what happened."""
    lines = summary.get("stop_lines") or [
        f"{p}: stopped before delivery (see the Airflow log)"
        for p in summary.get("programs", {}).get("stopped", [])
    ]
    if lines:
        console.print(f"[red]Stopped ({len(lines)}):[/]", highlight=False)
        for line in lines:
            console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)


STOPPED = re.compile(r"\bAirflowFailException: (\w+: .+)$")


def stop_reasons(log: Path) -> list[str]:
    """Why tasks stopped for good, from Airflow's log: the messages of the terminal errors
    (a missing key, a failed privacy gate, ...), each once. They are written to name keys,
    files, fields and rules, never a child's data."""
    reasons: dict[str, None] = {}
    if log.is_file():
        for line in log.read_text(errors="replace").splitlines():
            if match := STOPPED.search(line):
                reasons[match.group(1).strip()] = None
    return list(reasons)


def where_to_look(console: Console, summary: dict[str, Any], log: Path) -> None:
    """The commands that say more about this run, and Airflow's log (for the technical
    details of a stop)."""
    run_id = summary.get("run_id", "")
    console.print("Where to look next:", highlight=False)
    hints = (
        (
            f"datashare audit show --run {run_id}",
            "which children and fields were held back, and why",
        ),
        ("datashare audit show", "every run, with its counts"),
        ("datashare disclosures CHILD-ID --program CODE", "what was shared about one child"),
    )
    width = max(len(command) for command, _ in hints)
    for command, what in hints:
        console.print(
            f"  {command:<{width}}  {what}", markup=False, highlight=False, soft_wrap=True
        )
    console.print(f"  Airflow's log (technical details): {log}", markup=False, highlight=False,
                  soft_wrap=True)  # fmt: skip


def show_stop_reasons(console: Console, log: Path) -> None:
    """Print why tasks stopped (see :func:`stop_reasons`), unwrapped."""
    for reason in stop_reasons(log):
        console.print(f"[red]Stopped:[/] {escape(reason)}", soft_wrap=True)


def run(
    destination: Annotated[
        str, typer.Argument(help="A file of config/destinations, without .yaml.")
    ],
    date: Annotated[str | None, typer.Option(help="Run date YYYY-MM-DD (default: today).")] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Write the exact payloads to --output; send and log nothing."
        ),
    ] = False,
    output: Annotated[Path | None, typer.Option(help="Folder for the dry run's payloads.")] = None,
    database_url: DatabaseUrl = DEFAULT_URL,
) -> None:
    """Run one submission to DESTINATION through Airflow and print what left and what did not."""
    console = Console(file=sys.stdout)  # the screen, also while Airflow's output goes to its log
    settings = load_settings(database_url)
    try:
        config = load_destination(destination, settings.destinations_dir)
        run_date = dt.date.fromisoformat(date) if date else dt.date.today()
    except (DestinationConfigError, ValueError) as error:
        console.print(f"[red]{escape(str(error))}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if not config.enabled and not dry_run:
        console.print(
            f"Destination {destination} is disabled (enabled: false in "
            f"{settings.destinations_dir / destination}.yaml): set enabled: true to send, "
            "or try it with --dry-run.",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    if dry_run and output is None:
        output = safe_join("out", "dry-run", f"{destination}-{run_date.isoformat()}")
    started = dt.datetime.now(dt.UTC)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"Starting Airflow for {destination} on {run_date}...", total=None)
        done = 0

        def on_task(name: str, index: int, finished: bool) -> None:
            nonlocal done
            done += finished
            where = f" shard #{index + 1}" if index >= 0 else ""
            progress.update(task, description=f"{STEPS.get(name, name)}{where} ({done} tasks done)")

        try:
            result = run_dag(
                settings,
                destination,
                run_date,
                dry_run=dry_run,
                output=str(output.resolve()) if output else "",
                on_task=on_task,
            )
        except Terminated:  # as Ctrl-C ends it (130): no summary, the run left as it stands
            progress.stop()
            print(
                f"datashare run {destination}: the night was stopped by SIGTERM; "
                "no task started after it",
                file=sys.stderr,
            )
            raise typer.Exit(128 + signal.SIGTERM) from None
    engine = make_engine(settings.database_url)
    with engine.connect() as connection:
        row = connection.execute(
            select(Run.summary, Run.status)
            .where(
                Run.destination == destination, Run.run_date == run_date, Run.started_at >= started
            )
            .order_by(Run.started_at.desc())
        ).first()
    if row is not None and row.status == "refused":
        console.print(f"[red]Run {row.summary.get('run_id', '')} refused.[/]")
        show_stops(console, row.summary)
        console.print(f"Airflow's log: {result.log}")
        raise typer.Exit(1)
    if row is None or "programs" not in (row.summary or {}):
        show_stop_reasons(console, result.log)
        console.print(f"[red]The run did not complete.[/] Airflow's log: {result.log}")
        raise typer.Exit(1)
    show_summary(console, row.summary)
    show_stop_reasons(console, result.log)
    if dry_run:
        console.print(
            f"Dry run: nothing was sent or logged. The whole batch as prepared (every permitted "
            f"child, changed or not) is in {output}; these files hold children's records: "
            "delete them when you are done.",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    where_to_look(console, row.summary, result.log)
    if result.returncode != 0 or row.status != "success":
        raise typer.Exit(1)
