"""``datashare`` loads only the command it runs: ``datashare run`` starts without pandas,
numpy, Great Expectations or Airflow (the night loads what its tasks need, once Airflow's
environment is set), while ``pipelines.cli.app`` and ``datashare --help`` still hold every
command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tests.conftest import PROJECT

HEAVY = ("pandas", "numpy", "great_expectations", "airflow", "pipelines.mapping")


def loaded_after_start(command: str) -> list[str]:
    """The heavy modules a fresh interpreter holds after building ``datashare COMMAND``."""
    code = (
        "import json, sys\n"
        "from pipelines.cli import _app_for\n"
        f"_app_for(['datashare', {command!r}])\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_datashare_run_starts_without_pandas_ge_or_airflow() -> None:
    assert loaded_after_start("run") == []


def test_a_help_or_unknown_command_builds_every_command() -> None:
    from pipelines.cli import COMMANDS, _app_for

    for argv in (["datashare"], ["datashare", "--help"], ["datashare", "nope"]):
        names = {info.name for info in _app_for(argv).registered_groups} | {
            info.name for info in _app_for(argv).registered_commands
        }
        assert names == set(COMMANDS)


@pytest.mark.parametrize("command", ["run", "keys", "destinations", "doctor"])
def test_the_whole_app_and_the_one_command_app_show_the_same_help(command: str) -> None:
    from pipelines.cli import _app_for, app

    runner = CliRunner()
    whole = runner.invoke(app, [command, "--help"], terminal_width=100)
    alone = runner.invoke(_app_for(["datashare", command]), [command, "--help"], terminal_width=100)
    assert whole.exit_code == alone.exit_code == 0
    assert whole.output == alone.output and "Usage: " in whole.output


COMMAND_HEAP = """
import gc, json, sys
import pipelines.cli as cli
seen = {}
def command():
    run = sys.modules["pipelines.commands.run"]
    young = {id(o) for o in gc.get_objects()}  # the collector's generations: not the frozen
    seen.update(enabled=gc.isenabled(), frozen=id(run.__dict__) not in young,
                tracked=gc.is_tracked(run.__dict__))
built = cli._app_for
cli._app_for = lambda argv: (built(argv), command)[1]
sys.argv = ["datashare", "run"]
cli.main()
print(json.dumps(seen))
"""


def test_the_commands_imports_are_frozen_before_it_runs() -> None:
    """What ``datashare`` imports for the command it runs is frozen before the command runs
    (with the collector paused meanwhile and on again after): the first collection does not
    walk it."""
    out = subprocess.run(
        [sys.executable, "-c", COMMAND_HEAP], cwd=PROJECT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "enabled": True,
        "frozen": True,
        "tracked": True,
    }
