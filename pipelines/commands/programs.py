"""``datashare programs``: which programs share with which recipients, and AIAN opt-ins.

Every change is recorded with who decided it, when it takes effect and why; nothing is ever
edited or deleted (45 CFR 1302.53(b): participation is per program; an AIAN program shares
only after its own dated, revocable opt-in).
"""

from __future__ import annotations

import datetime as dt
import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from pipelines.commands.options import DEFAULT_URL, DatabaseUrl
from pipelines.db import make_engine, session_scope
from pipelines.review import describe_change
from privacy.errors import ParticipationError
from privacy.participation import (
    Change,
    ParticipationState,
    ProgramStatus,
    history,
    participation_matrix,
    record_change,
)
from schemas import Program
from schemas.codes import OptInScope, ParticipationAction

app = typer.Typer(
    help="See and change which programs share with which recipients (and AIAN opt-ins).",
    no_args_is_help=True,
)

ProgramArg = Annotated[str, typer.Argument(help="Program code, e.g. VT-HS-01.")]
RecipientArg = Annotated[str, typer.Argument(help="Recipient code, e.g. VT-AOE.")]
By = Annotated[str, typer.Option("--by", help="Who made the decision (person or body).")]
When = Annotated[
    dt.datetime | None,
    typer.Option("--date", formats=["%Y-%m-%d"], help="Effective date (default: today)."),
]
Why = Annotated[str | None, typer.Option("--reason", help="Why the change was made.")]
ForRecipient = Annotated[
    str | None, typer.Option("--recipient", help="Only this recipient (default: all).")
]


@contextmanager
def _registry(database_url: str) -> Iterator[Session]:
    """A session; a refused change prints its reason and exits with status 1."""
    engine = make_engine(database_url)
    try:
        with session_scope(engine) as session:
            yield session
    except ParticipationError as error:
        Console(stderr=True).print(f"[red]Refused:[/] {error}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()


def _record(database_url: str, program: str, action: ParticipationAction, **kwargs) -> None:  # type: ignore[no-untyped-def]
    when = kwargs.pop("effective_date")
    effective = when.date() if when else dt.date.today()
    with _registry(database_url) as session:
        change = record_change(session, program, action, effective_date=effective, **kwargs)
    Console().print(f"Recorded: {describe_change(change)}", highlight=False)


def _status_line(recipient: str, status: ProgramStatus) -> str:
    line = f"{recipient}: {status.state.value} since {status.since} (by {status.decided_by})"
    if status.is_aian and status.state is ParticipationState.PARTICIPATING:
        opt_in = status.opt_in
        if opt_in is None and status.opt_in_missing:
            line += (
                "; [bold]opt-in on file lacks "
                f"{', '.join(status.opt_in_missing)}: not the program's decision, shares "
                "nothing[/] (aian_opt_in_incomplete)"
            )
        elif opt_in is None:
            line += "; [bold]no opt-in: shares nothing[/]"
        else:
            line += (
                f"; opt-in {opt_in.scope.value} by {opt_in.authority} from {opt_in.effective_date}"
            )
            if opt_in.excluded_fields:
                line += f", excludes {', '.join(sorted(opt_in.excluded_fields))}"
    return line


@app.command("list")
def list_programs(
    show_history: Annotated[
        bool, typer.Option("--history", help="Also list every change with who, when and why.")
    ] = False,
    on: When = None,
    database_url: DatabaseUrl = DEFAULT_URL,
) -> None:
    """List programs and their current participation with each recipient."""
    day = on.date() if on else dt.date.today()
    with _registry(database_url) as session:
        programs = session.scalars(select(Program).order_by(Program.code)).all()
        matrix = participation_matrix(session, day)
        changes = history(session) if show_history else []
    console = Console()
    table = Table(title=f"Program participation on {day}")
    for column in ("Program", "State", "Type", "AIAN", "Recipients"):
        table.add_column(column)
    for program in programs:
        lines = [
            _status_line(recipient, status)
            for recipient, status in matrix.get(program.code, {}).items()
            if status.state is not ParticipationState.NOT_REGISTERED
        ]
        table.add_row(
            program.code,
            program.state,
            str(program.program_type.value),
            "yes" if program.is_aian else "no",
            "\n".join(lines) or "not registered with any recipient",
        )
    console.print(table)
    if show_history:
        console.print(_history_table(changes))


def _history_table(changes: list[Change]) -> Table:
    table = Table(title="Participation changes")
    columns = ("Effective", "Program", "Action", "Recipient", "Decided by", "Authority",
               "Scope", "Excluded", "Reason", "Recorded", "Recorded by")  # fmt: skip
    for column in columns:
        table.add_column(column)
    for c in changes:
        missing = c.missing()
        lacks = f" [bold](incomplete: lacks {', '.join(missing)})[/]" if missing else ""
        table.add_row(
            str(c.effective_date or ""),
            c.program_code,
            c.action.value + lacks,
            c.recipient_code or "all",
            c.decided_by or "",
            c.authority or "",
            c.scope.value if c.scope else "",
            ", ".join(c.excluded_fields),
            c.reason or "",
            c.recorded_at.strftime("%Y-%m-%d %H:%M") if c.recorded_at else "",
            c.recorded_by or "",
        )
    return table


@app.command()
def participate(
    program: ProgramArg,
    recipient: RecipientArg,
    by: By,
    on: When = None,
    reason: Why = None,
    database_url: DatabaseUrl = DEFAULT_URL,
) -> None:
    """Register a program as sharing with a recipient."""
    _record(database_url, program, ParticipationAction.PARTICIPATE, recipient_code=recipient,
            decided_by=by, effective_date=on, reason=reason)  # fmt: skip


@app.command()
def withdraw(
    program: ProgramArg,
    recipient: RecipientArg,
    by: By,
    on: When = None,
    reason: Why = None,
    database_url: DatabaseUrl = DEFAULT_URL,
) -> None:
    """Stop a program sharing with a recipient (from the effective date on)."""
    _record(database_url, program, ParticipationAction.WITHDRAW, recipient_code=recipient,
            decided_by=by, effective_date=on, reason=reason)  # fmt: skip


@app.command("opt-in")
def opt_in(
    program: ProgramArg,
    authority: Annotated[
        str, typer.Option("--authority", help='What decided it, e.g. "Tribal Council Res. 14".')
    ],
    scope: Annotated[OptInScope, typer.Option("--scope", help="Child records or aggregates.")],
    by: By,
    recipient: ForRecipient = None,
    exclude_field: Annotated[
        list[str] | None,
        typer.Option("--exclude-field", help="A field that never leaves (repeatable)."),
    ] = None,
    on: When = None,
    reason: Why = None,
    recorded_by: Annotated[
        str | None,
        typer.Option("--recorded-by", help="Who enters it (default: your login name)."),
    ] = None,
    database_url: DatabaseUrl = DEFAULT_URL,
) -> None:
    """Record an AIAN program's opt-in (45 CFR 1302.53(b)(4))."""
    _record(database_url, program, ParticipationAction.OPT_IN, recipient_code=recipient,
            decided_by=by, authority=authority, scope=scope,
            excluded_fields=exclude_field or (), effective_date=on, reason=reason,
            recorded_by=recorded_by or _login())  # fmt: skip


def _login() -> str | None:
    """The login name of whoever runs the command, when the system knows it."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None


@app.command("opt-out")
def opt_out(
    program: ProgramArg,
    by: By,
    reason: Annotated[str, typer.Option("--reason", help="Why the program opts out.")],
    recipient: ForRecipient = None,
    on: When = None,
    database_url: DatabaseUrl = DEFAULT_URL,
) -> None:
    """Record an AIAN program's opt-out: nothing of it leaves from the effective date on."""
    _record(database_url, program, ParticipationAction.OPT_OUT, recipient_code=recipient,
            decided_by=by, effective_date=on, reason=reason)  # fmt: skip
