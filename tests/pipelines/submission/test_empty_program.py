"""A program with nothing to publish, at a file drop: no folder while the destination never
held a child of it (an empty folder would be noise); once it did, one empty folder with its
manifest tells the state the program has no child now (each folder is the program's whole
snapshot), and nothing more after that."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from pipelines.demo import DEMO_DATE
from schemas import Delivery
from tests.pipelines.submission.conftest import World

FORMATS = ["hs_child_identity", "hs_enrollment"]
EMPTY = "VT-EHS-02"
OTHER = "VT-HS-01"


def drop(world: World, tmp_path: Path) -> Path:
    root = tmp_path / "drop"
    world.destination(
        "vt-local",
        type="local",
        recipient="VT-AOE",
        agreements=["vt-aoe-ecids"],
        formats=FORMATS,
        local={"root": str(root)},
    )
    return root


def empty_the_program(world: World, code: str) -> None:
    """Every child of ``code`` gone from the source (their records too: foreign keys off)."""
    database = sqlite3.connect(world.settings.database_url.removeprefix("sqlite:///"))
    try:
        (program_id,) = database.execute(
            "SELECT id FROM programs WHERE code = ?", (code,)
        ).fetchone()
        database.execute("PRAGMA foreign_keys=OFF")
        database.execute("DELETE FROM children WHERE program_id = ?", (program_id,))
        database.commit()
    finally:
        database.close()


def folder_rows(folder: Path) -> dict[str, int]:
    """Rows per file of a complete folder (its manifest's files, read back)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    return {
        f["stored_as"]: len(pd.read_csv(folder / f["stored_as"], dtype=str))
        for f in manifest["files"]
    }


def statuses(world: World, program: str) -> list[str]:
    with world.engine.connect() as connection:
        return list(
            connection.scalars(
                select(Delivery.status)
                .where(Delivery.program_code == program)
                .order_by(Delivery.id)
            )
        )


def test_a_program_that_never_had_a_child_gets_no_folder(world: World, tmp_path: Path) -> None:
    root = drop(world, tmp_path)
    empty_the_program(world, EMPTY)

    summary = world.run("vt-local")

    assert summary["status"] == "success", summary.get("stop_lines")
    assert summary["deliveries"] == {EMPTY: "unchanged", OTHER: "delivered"}
    assert sorted(p.name for p in (root / DEMO_DATE.isoformat()).iterdir()) == [OTHER]
    assert statuses(world, EMPTY) == ["unchanged"], "nothing sent, nothing awaits"
    log = world.disclosures()
    assert EMPTY not in set(log["program_code"])
    again = world.run("vt-local", run_date=DEMO_DATE + dt.timedelta(days=1))
    assert again["deliveries"] == {EMPTY: "unchanged", OTHER: "unchanged"}
    assert not (root / (DEMO_DATE + dt.timedelta(days=1)).isoformat()).exists()


def test_a_program_left_with_no_child_sends_one_empty_snapshot(
    world: World, tmp_path: Path
) -> None:
    root = drop(world, tmp_path)
    first = world.run("vt-local")
    assert first["deliveries"] == {EMPTY: "delivered", OTHER: "delivered"}
    had = folder_rows(root / DEMO_DATE.isoformat() / EMPTY)
    assert had and all(n > 0 for n in had.values())
    empty_the_program(world, EMPTY)
    night2 = DEMO_DATE + dt.timedelta(days=1)

    summary = world.run("vt-local", run_date=night2)

    assert summary["deliveries"] == {EMPTY: "delivered", OTHER: "unchanged"}
    folder = root / night2.isoformat() / EMPTY
    assert folder_rows(folder) == dict.fromkeys(had, 0), "headers only, with a manifest"
    assert not (root / night2.isoformat() / OTHER).exists()
    night3 = night2 + dt.timedelta(days=1)
    third = world.run("vt-local", run_date=night3)
    assert third["deliveries"] == {EMPTY: "unchanged", OTHER: "unchanged"}
    assert not (root / night3.isoformat()).exists(), "the state knows already"
    assert statuses(world, EMPTY) == ["logged", "logged", "unchanged"]
