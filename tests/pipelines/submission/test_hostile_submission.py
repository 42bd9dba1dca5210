"""Hostile input through a whole submission to a local folder: formula values imported and
delivered, ``../`` in a program code and in a destination argument, and the run's own ledger
anchor catching a cut tail."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.db import session_scope
from pipelines.demo import DEMO_DATE
from pipelines.destinations.registry import DestinationConfigError
from pipelines.imports import import_file
from pipelines.paths import UnsafePathError
from pipelines.submission.deliver import deliver_program
from pipelines.submission.finish import finish_run
from pipelines.submission.plan import plan_run
from pipelines.submission.prepare import prepare_program
from privacy.anchors import heads
from privacy.ledger import LEDGER_KEY_ENV
from privacy.participation import record_change
from schemas import Child, DisclosureEntry, ParentStatement, Program, Run
from schemas.filespec import FORMULA_TRIGGERS
from tests.pipelines.hostile import FORMULAS, HYPHEN_NAME, write_gold
from tests.pipelines.submission.conftest import World, make_world

GOLD_PROGRAM = "VT-GOLD-10000"
ESCAPE = "../../../../esc"
FORMATS = ["hs_child_identity", "hs_enrollment"]


@pytest.fixture
def small_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """A demo world of 60 children, its folders four levels down (so a ``../../../..`` escape
    would still land inside ``tmp_path``, where the test can see it)."""
    monkeypatch.delenv(LEDGER_KEY_ENV, raising=False)
    root = tmp_path / "a" / "b" / "c" / "d"
    root.mkdir(parents=True)
    made = make_world(f"sqlite:///{root / 'program.db'}", root, children=60)
    yield made
    made.engine.dispose()


def local(world: World, name: str = "vt") -> Path:
    root = world.config.parent / "drop" / name
    world.destination(
        name,
        type="local",
        recipient="VT-AOE",
        agreements=["vt-aoe-ecids"],
        formats=FORMATS,
        local={"root": str(root)},
    )
    return root


def participate(world: World, code: str) -> None:
    with session_scope(world.engine) as session:
        record_change(
            session,
            code,
            "participate",
            recipient_code="VT-AOE",
            decided_by="test",
            effective_date=DEMO_DATE - dt.timedelta(days=30),
        )


def files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_when_imported_values_look_like_formulas_then_the_delivered_csv_quotes_them(
    small_world: World, tmp_path: Path
) -> None:
    world = small_world
    names = {f"90000{i}": value for i, value in enumerate([*FORMULAS.values(), HYPHEN_NAME])}
    export = write_gold(
        tmp_path / "gold.csv",
        [{"ChildID": child, "Child F Name": name} for child, name in names.items()],
    )
    report = import_file(world.engine, "gold", export, state="VT", today=DEMO_DATE)
    assert report.rows_loaded == len(names) and report.warned_by_rule["formula_prefix"] == 5
    participate(world, GOLD_PROGRAM)
    root = local(world)
    summary = world.run("vt")
    assert summary["status"] == "success" and GOLD_PROGRAM in summary["programs"]["processed"]
    delivered = root / DEMO_DATE.isoformat() / GOLD_PROGRAM / "hs_child_identity.csv"
    rows = list(csv.DictReader(io.StringIO(delivered.read_text(encoding="utf-8"))))
    assert {r["LocalChildID"]: r["LegalFirstName"] for r in rows} == {
        child: "'" + name for child, name in names.items()
    }
    # no cell of any delivered file begins like a formula
    for path in root.rglob("*.csv"):
        for row in csv.reader(io.StringIO(path.read_text(encoding="utf-8"))):
            assert not [cell for cell in row if cell.startswith(FORMULA_TRIGGERS)], path
    # what the log's digest covers is what arrived (the quoted value)
    log = world.disclosures().set_index("child_local_id")
    assert set(names) <= set(log.index) and "first_name" in log.loc["900000", "fields"]


def test_when_the_audit_is_exported_as_csv_then_formula_cells_are_quoted(
    small_world: World,
) -> None:
    world = small_world
    local(world)
    summary = world.run("vt")
    with session_scope(world.engine) as session:  # a hostile value in the runs listing
        session.execute(
            text("UPDATE runs SET status = '=1+1' WHERE id = :id"), {"id": summary["run_id"]}
        )
    result = CliRunner(env={"COLUMNS": "250"}).invoke(
        app, ["audit", "show", "--format", "csv", "--database-url", world.settings.database_url]
    )
    assert result.exit_code == 0, result.output
    cells = [cell for row in csv.reader(io.StringIO(result.output)) for cell in row]
    assert "'=1+1" in cells and not [c for c in cells if c.startswith(FORMULA_TRIGGERS)]


def _run_catching(world: World, destination: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Every step of a run, a failing program stopped as its Airflow task would be."""
    plan = plan_run(destination, DEMO_DATE, settings=world.settings)
    delivered: list[dict[str, Any] | None] = []
    failed: dict[str, str] = {}
    for program in plan["programs"]:
        try:
            prepared = prepare_program(plan, program, world.settings)
        except UnsafePathError as error:
            failed[program] = str(error)
            delivered.append(None)
            continue
        delivered.append(deliver_program(plan, prepared, world.settings))
    return finish_run(plan, delivered, world.settings), failed


def test_when_a_program_code_climbs_out_then_nothing_is_written_outside(
    small_world: World, tmp_path: Path
) -> None:
    world = small_world
    refused = pytest.raises(IntegrityError, match="ck_programs_code_pattern")
    with refused, session_scope(world.engine) as session:  # refused at the door
        session.add(
            Program(code=ESCAPE, grant_number="x", name="x", state="VT", program_type="head_start")
        )
        session.flush()
    with world.engine.begin() as connection:  # an old database, or a hand past the check
        for when in ("insert", "update"):
            connection.execute(text(f"DROP TRIGGER ck_programs_code_pattern_{when}"))
        connection.execute(
            text(
                "INSERT INTO programs (code, grant_number, name, state, program_type, is_aian) "
                "VALUES (:code, 'x', 'x', 'VT', 'head_start', 0)"
            ),
            {"code": ESCAPE},
        )
    participate(world, ESCAPE)
    drop = local(world)
    before = files(tmp_path)
    summary, failed = _run_catching(world, "vt")
    assert list(failed) == [ESCAPE] and "cannot name a file or folder" in failed[ESCAPE]
    assert summary["programs"]["stopped"] == [ESCAPE] and summary["status"] == "partial"
    assert len(summary["programs"]["processed"]) >= 1
    allowed = (world.settings.state_dir, drop)
    new = files(tmp_path) - before
    outside = [p for p in new if not any(p.is_relative_to(a) for a in allowed)]
    assert outside == [] and not any(p.name.startswith("esc") for p in files(tmp_path))


@pytest.mark.parametrize("argument", ["../destinations/demo", "/abs/path.yaml", "demo.yaml"])
def test_when_the_destination_argument_is_a_path_then_one_line_and_nothing_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argument: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATASHARE_STATE_DIR", str(tmp_path / "state"))
    result = CliRunner(env={"COLUMNS": "80"}).invoke(
        app, ["run", argument, "--database-url", f"sqlite:///{tmp_path / 'x.db'}"]
    )
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "is not a destination name" in lines[0]
    assert "Traceback" not in result.output and list(tmp_path.iterdir()) == []


def test_when_plan_is_given_a_path_then_it_refuses_before_writing(small_world: World) -> None:
    before = files(small_world.config.parent)
    with pytest.raises(DestinationConfigError, match="not a destination name"):
        plan_run("../destinations/vt", DEMO_DATE, settings=small_world.settings)
    assert files(small_world.config.parent) == before


def test_when_a_run_finishes_then_it_anchors_and_a_cut_tail_is_caught(
    small_world: World, tmp_path: Path
) -> None:
    world = small_world
    local(world)
    summary = world.run("vt")
    with session_scope(world.engine) as session:
        now = heads(session)
        stored = session.scalar(select(Run.summary).where(Run.id == summary["run_id"]))
    anchor = summary["anchor"]
    assert anchor["disclosures"] == {"seq": now["disclosures"][0], "hash": now["disclosures"][1]}
    assert anchor["disclosures"]["seq"] == summary["children"]["logged"] > 0
    assert stored["anchor"] == anchor
    url = ["--database-url", world.settings.database_url]
    runner = CliRunner(env={"COLUMNS": "250"})
    intact = runner.invoke(app, ["audit", "verify", *url])
    assert intact.exit_code == 0, intact.output
    kept = tmp_path / "anchors.json"
    assert runner.invoke(app, ["audit", "anchors", "--export", str(kept), *url]).exit_code == 0
    with session_scope(world.engine) as session:
        last = anchor["disclosures"]["seq"]
        session.execute(delete(DisclosureEntry).where(DisclosureEntry.seq > last - 3))
    cut = runner.invoke(app, ["audit", "verify", *url])
    assert cut.exit_code == 1
    assert f"anchored seq {last} is missing; the chain ends at seq {last - 3}" in cut.output
    assert f"logged {last} disclosures; the disclosure log holds {last - 3}" in cut.output
    with session_scope(world.engine) as session:  # wipe everything, anchors included
        session.execute(text("DELETE FROM ledger_anchors"))
        session.execute(delete(DisclosureEntry))
    wiped = runner.invoke(app, ["audit", "verify", "--anchors", str(kept), *url])
    assert wiped.exit_code == 1
    assert f"disclosures: seq {last} of run {summary['run_id']}'s anchor is missing" in wiped.output


def test_when_verified_with_another_key_then_the_key_is_blamed_once(
    small_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = small_world
    monkeypatch.setenv(LEDGER_KEY_ENV, "w" * 40)
    local(world)
    # two parents dispute a field the files carry, without the statements file: the field is
    # held back, so the redaction audit has entries too (a field no format carries, such as
    # tribal_affiliation, is no redaction, and nothing else is withheld here)
    with session_scope(world.engine) as session:
        disputed = session.scalars(
            select(Child.id).join(Program).where(Program.code == "VT-HS-01").limit(2)
        ).all()
        session.add_all(
            ParentStatement(
                child_id=child,
                field="race",
                statement="The parent disputes this entry.",
                filed_date=DEMO_DATE - dt.timedelta(days=10),
            )
            for child in disputed
        )
    world.run("vt")
    monkeypatch.setenv(LEDGER_KEY_ENV, "x" * 40)
    result = CliRunner(env={"COLUMNS": "250"}).invoke(
        app, ["audit", "verify", "--database-url", world.settings.database_url]
    )
    assert result.exit_code == 1
    assert result.output.count("the key looks wrong") == 4  # two summaries, two breaks
    assert ": edited:" not in result.output and "content does not match" not in result.output
    assert "anchor of run" in result.output  # the anchor's own hash fails under that key too
