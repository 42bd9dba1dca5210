"""``datashare doctor``: what the deployment needs, checked, with the fix for each problem."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from pipelines.commands.options import DEFAULT_URL, DatabaseUrl
from pipelines.doctor import diagnose
from pipelines.settings import load_settings


def doctor(
    database_url: DatabaseUrl = DEFAULT_URL,
    airflow: Annotated[
        bool, typer.Option(help="Check Airflow too (executor, providers, secrets, pools).")
    ] = True,
) -> None:
    """Check configuration, database, state folder, keys and Airflow; print the fix for each
    problem and exit 1 when there is any."""
    console = Console(soft_wrap=True)
    findings = diagnose(load_settings(database_url), airflow=airflow)
    for f in findings:
        mark = "[green]ok  [/]" if f.ok else "[red]FAIL[/]"
        console.print(f"{mark} {f.check}: ", end="")
        console.print(f.detail, markup=False, highlight=False)
        if not f.ok:
            console.print(f"     fix: {f.fix}", markup=False, highlight=False)
    bad = [f for f in findings if not f.ok]
    console.print(f"{len(findings) - len(bad)} ok, {len(bad)} to fix" if bad else "all ok")
    if bad:
        raise typer.Exit(1)
