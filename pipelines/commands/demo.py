"""``datashare demo``: the synthetic demo world (seven programs, eight recipients, children)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipelines.commands.options import DEFAULT_URL, DatabaseUrl
from pipelines.db import make_engine
from pipelines.demo import DEFAULT_CHILDREN, DEFAULT_SEED, SeedSummary, seed, summarize

app = typer.Typer(help="Seed and inspect the synthetic demo world.", no_args_is_help=True)

RATES = (("disability", "disability (IEP / IFSP)"), ("dual_language_learner", "dual language"),
         ("homeless", "homelessness"), ("foster_care", "foster care"),
         ("state_student_id", "with a state student id"))  # fmt: skip


SEED_HELP = (
    "Upgrade the database, then REPLACE the demo world with a freshly seeded one.\n\n"
    "Existing demo rows (the seven demo programs with all their children, guardians, "
    "enrollments, attendance, consents, notices, statements and participation events) are "
    "deleted first, so seeding again never duplicates; the eight demo recipients are updated in "
    "place; the disclosure log and redaction audit are never touched. Synthetic data only."
)


@app.command("seed", help=SEED_HELP)
def seed_command(
    children: Annotated[
        int, typer.Option("--children", "-n", min=0, help="How many children to create.")
    ] = DEFAULT_CHILDREN,
    seed_value: Annotated[
        int, typer.Option("--seed", "-s", help="Random seed: the same seed gives the same rows.")
    ] = DEFAULT_SEED,
    database_url: DatabaseUrl = DEFAULT_URL,
) -> None:
    """Upgrade the database, then replace the demo world with a freshly seeded one."""
    engine = make_engine(database_url)
    from schemas.migrate import upgrade as upgrade_schema  # Alembic only when used

    upgrade_schema(engine)
    start = time.perf_counter()
    summary = seed(engine, children, seed_value)
    elapsed = time.perf_counter() - start
    where = engine.url.render_as_string()
    engine.dispose()
    console = Console()
    show(summary, console)
    console.print(
        f"Seeded {summary.children:,} demo children (seed {seed_value}) in {elapsed:.1f} s "
        f"into [bold]{where}[/]."
    )


@app.command("summary")
def summary_command(database_url: DatabaseUrl = DEFAULT_URL) -> None:
    """Show counts of the demo world in the database (no personal data)."""
    engine = make_engine(database_url)
    summary = summarize(engine)
    engine.dispose()
    show(summary, Console())


def show(summary: SeedSummary, console: Console) -> None:
    """Print the summary as tables: programs, consent and notice scenarios, rates."""
    programs = Table(title="Demo programs")
    for column in ("program", "state", "type", "AIAN", "sites", "children"):
        programs.add_column(column, justify="right" if column in ("sites", "children") else "left")
    for p in summary.programs:
        programs.add_row(p.code, p.state, p.program_type, "yes" if p.is_aian else "",
                         str(p.sites), f"{p.children:,}")  # fmt: skip
    programs.add_row("total", "", "", "", "", f"{summary.children:,}", style="bold")
    console.print(programs)

    records = Table(title="Records")
    records.add_column("table")
    records.add_column("rows", justify="right")
    for name, value in (
        ("recipients", summary.recipients), ("participation events", summary.participation_events),
        ("guardians", summary.guardians), ("enrollments", summary.enrollments),
        ("attendance months", summary.attendance_rows), ("consents", summary.consents),
        ("enrollment notices", summary.notices), ("parent statements", summary.statements),
    ):  # fmt: skip
        records.add_row(name, f"{value:,}")
    console.print(records)

    scenarios = Table(title="Consent and notice scenarios")
    scenarios.add_column("scenario")
    scenarios.add_column("children", justify="right")
    for name, value in summary.consent_scenarios.items():
        scenarios.add_row(f"consent: {name}", f"{value:,}")
    for name, value in summary.notice_scenarios.items():
        scenarios.add_row(f"notice: {name}", f"{value:,}")
    console.print(scenarios)

    rates = Table(title="Service flags")
    rates.add_column("flag")
    rates.add_column("children", justify="right")
    rates.add_column("rate", justify="right")
    for flag, label in RATES:
        rates.add_row(label, f"{summary.flags.get(flag, 0):,}", f"{summary.rate(flag):.1%}")
    console.print(rates)
