"""The ``datashare`` command: the one entry point for people."""

from __future__ import annotations

import typer

from pipelines.commands import audit, db, demo, disclosures, imports, keys, policy, programs, run

app = typer.Typer(
    help="Share Head Start child data with state education data systems, safely.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(db.app, name="db")
app.add_typer(audit.app, name="audit")
app.command("disclosures")(disclosures.disclosures)
app.add_typer(imports.app, name="import")
app.add_typer(policy.app, name="policy")
app.add_typer(programs.app, name="programs")
app.add_typer(demo.app, name="demo")
app.add_typer(keys.app, name="keys")
app.command("run")(run.run)
