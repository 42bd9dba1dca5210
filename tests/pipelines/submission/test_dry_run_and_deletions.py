"""What a run summary says it moved.

A dry run sends, deletes and logs nothing, and says what a real run would deliver now: the
children it would send and the rows per file, table or resource (equal to what the real run
then takes). Deletions at a staging database or an Ed-Fi API are counted apart
(``rows_deleted``), never as rows delivered; a dry run says what it would delete.
"""

from __future__ import annotations

import datetime as dt
import io
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import func, select

from pipelines.commands.run import show_summary
from pipelines.demo import DEMO_DATE
from schemas import Delivery
from tests.edfi.contract_server import EdfiContractServer
from tests.pipelines.submission import nights as n
from tests.pipelines.submission.conftest import World, make_world
from tests.pipelines.submission.kinds import KINDS, small_world


def printed(summary: dict) -> str:
    out = io.StringIO()
    show_summary(Console(file=out, width=200), summary)
    return out.getvalue()


def deliveries(world: World) -> int:
    with world.engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(Delivery)) or 0)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_dry_run_sends_nothing_and_says_what_a_real_run_would_deliver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    world = small_world(tmp_path)
    try:
        with KINDS[kind](world, tmp_path, monkeypatch) as dest:
            dry = world.run("dest", run_date=DEMO_DATE, dry_run=True, output=str(tmp_path / "dry"))
            assert dry["rows_delivered"] == {}
            assert dest.held() == 0, "the dry run sent nothing"
            assert world.disclosures().empty and deliveries(world) == 0, "and logged nothing"
            would = dry["would_deliver"]
            assert would["children_sent"] == dry["children"]["disclosed"] > 0
            text = printed(dry)
            assert "rows delivered" not in text
            assert "nothing: this was a dry run (nothing sent, nothing logged)" in text
            for name, rows in would["rows"].items():
                assert f"{name}: {rows:,}" in text
            real = world.run("dest", run_date=DEMO_DATE)
            assert real["status"] == "success"
            assert would["rows"] == real["rows_delivered"], "what it said is what a run takes"
            assert "would_deliver" not in real
            again = world.run("dest", run_date=DEMO_DATE, dry_run=True, output=str(tmp_path / "d2"))
            assert again["would_deliver"]["rows"] == {}, "up to date: a run would send nothing"
            assert again["would_deliver"]["children_sent"] == 0
            assert "none (the destination is up to date)" in printed(again)
    finally:
        world.engine.dispose()


def _staging(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable]:
    path = tmp_path / "staging.db"
    monkeypatch.setenv("TEST_STAGING_URL", f"sqlite:///{path}")
    world.destination(
        "state",
        type="staging_db",
        recipient="MO-DESE",
        agreements=[n.AGREEMENT],
        formats=n.FILES[:3],
        retries=0,
        staging_db={"url_env": "TEST_STAGING_URL"},
    )

    def held() -> dict[str, int]:
        with sqlite3.connect(path) as connection:
            tables = [
                t
                for (t,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
                if t != "datashare_batches"
            ]
            return {
                f"{t}.csv": connection.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                for t in tables
            }

    yield held


def _edfi(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable]:
    with EdfiContractServer(5) as server:
        world.edfi_destination(
            "state", server.base_url, monkeypatch, agreement=n.AGREEMENT, concurrency=2
        )
        yield lambda: {name: len(items) for name, items in server.store.items()}


@pytest.mark.parametrize("kind", ["staging_db", "edfi"])
def test_deletions_are_counted_apart_from_rows_delivered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    world = make_world(f"sqlite:///{tmp_path / 'program.db'}", tmp_path, children=60)
    n.write_agreement(world)  # deletes on revocation
    destination = (_staging if kind == "staging_db" else _edfi)(world, tmp_path, monkeypatch)
    try:
        held = next(destination)
        revoked, _kept = n.control(world, 2)
        first = world.run("state", run_date=n.night(1))
        assert first["status"] == "success" and first["rows_deleted"] == {}
        before = held()
        n.revoke(world, revoked, n.night(2))
        dry = world.run("state", run_date=n.night(2), dry_run=True, output=str(tmp_path / "dry"))
        assert held() == before, "the dry run deleted nothing"
        assert dry["would_deliver"]["children_withdrawn"] == 1
        second = world.run("state", run_date=n.night(2))
        after = held()
        gone = {name: before[name] - after.get(name, 0) for name in before}
        gone = {name: count for name, count in gone.items() if count}
        assert gone, "the revoked child's rows were deleted"
        assert second["rows_deleted"] == gone
        assert dry["would_deliver"]["rows_deleted"] == gone, "the dry run said so beforehand"
        assert second["rows_delivered"] == {}, "a deletion is not a delivery"
        text = printed(second)
        assert "rows deleted" in text
        assert all(f"{name}: {count:,}" in text for name, count in gone.items())
    finally:
        destination.close()
        world.engine.dispose()


def test_a_summary_recorded_before_rows_deleted_still_prints() -> None:
    old = {
        "run_id": "r1",
        "destination": "demo",
        "run_date": "2026-10-01",
        "dry_run": False,
        "agreement": "vt-aoe-ecids",
        "programs": {"considered": 1, "processed": ["VT-HS-01"], "stopped": [], "skipped": {}},
        "children": {"considered": 3, "disclosed": 2, "logged": 2, "rejected": 0},
        "withheld_by_reason": {},
        "fields_removed_by_reason": {},
        "quarantined_by_rule": {},
        "rows_delivered": {"hs_enrollment.csv": 2},
        "validation": "passed",
        "status": "success",
    }
    text = printed(old)
    assert "hs_enrollment.csv: 2" in text and "rows deleted" not in text
    dry = old | {"dry_run": True, "rows_delivered": {}}
    assert "nothing: this was a dry run" in printed(dry)


def test_an_old_copy_a_changed_natural_key_left_behind_counts_as_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(f"sqlite:///{tmp_path / 'program.db'}", tmp_path, children=60)
    n.write_agreement(world)
    destination = _edfi(world, tmp_path, monkeypatch)
    try:
        held = next(destination)
        child, _ = n.control(world, 2)
        n.set_entry_date(world, child, dt.date(2026, 8, 24))
        assert world.run("state", run_date=n.night(1))["status"] == "success"
        before = held()
        n.set_entry_date(world, child, dt.date(2026, 9, 8))  # part of the association's key
        second = world.run("state", run_date=n.night(2))
        assert held() == before, "one association replaced by one"
        replaced = second["rows_deleted"]
        assert replaced and set(replaced) <= set(second["rows_delivered"])
        assert all(replaced[r] == second["rows_delivered"][r] for r in replaced), replaced
    finally:
        destination.close()
        world.engine.dispose()
