"""An AIAN program that narrows its opt-in from child records to aggregate outputs only, under a
record agreement, after a staging database received its children's records.

From then on every child of the program is withheld for a program-level reason
(``aian_aggregate_only``): no child record of it is sent. The records the destination already
holds must not be lost from view: without ``delete_out_of_scope`` the run counts them in
``still_held`` (counts only, no child named); under ``delete_out_of_scope`` they are withdrawn
like a stopped program's (deleted, one ``delete`` disclosure-log entry per child, reason
``program_out_of_scope``). Every destination type, aggregates flowing the same night, a dry
run, date boundaries and a property: ``test_aian_scope_withdrawal.py``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from pipelines.demo import DEMO_DATE
from privacy.participation import record_change
from schemas.codes import OptInScope, ParticipationAction
from tests.pipelines.submission.conftest import PROJECT, World
from tests.pipelines.submission.kinds import small_world

PROGRAM = "NM-AIAN-07"  # opted in to aggregate outputs in the demo (pipelines/demo/world.py)
AGREEMENT = "nm-ececd-records"
NEXT = DEMO_DATE + dt.timedelta(days=1)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = small_world(tmp_path)
    yield made
    made.engine.dispose()


def record_agreement(world: World, delete_out_of_scope: bool) -> None:
    """Vermont's record-level ECIDS agreement, written out for NM-ECECD."""
    data = yaml.safe_load((PROJECT / "config/agreements/vt-aoe-ecids.yaml").read_text())
    data |= {"id": AGREEMENT, "recipient": "NM-ECECD", "delete_out_of_scope": delete_out_of_scope}
    path = world.config / "agreements" / f"{AGREEMENT}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def opt_in(world: World, scope: OptInScope, on: dt.date) -> None:
    with Session(world.engine) as session, session.begin():
        record_change(
            session,
            PROGRAM,
            ParticipationAction.OPT_IN,
            decided_by="tribal council",
            authority="Tribal Council Resolution 2026-31",
            recorded_by="program clerk",
            scope=scope,
            reason="scope decided by the council",
            effective_date=on,
        )


def staged_children(url: str) -> set[tuple[str, str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    'SELECT "ProgramID", "LocalChildID" FROM hs_child_identity '
                    'WHERE "ProgramID" = :p'
                ),
                {"p": PROGRAM},
            ).all()
    finally:
        engine.dispose()
    return {(p, c) for p, c in rows}


def two_nights(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, delete_out_of_scope: bool
) -> tuple[str, set[tuple[str, str]], dict]:  # type: ignore[type-arg]
    record_agreement(world, delete_out_of_scope)
    url = f"sqlite:///{tmp_path / 'staging.db'}"
    monkeypatch.setenv("TEST_STAGING_URL", url)
    world.destination(
        "nm",
        type="staging_db",
        recipient="NM-ECECD",
        agreements=[AGREEMENT],
        formats=["hs_child_identity", "hs_enrollment"],
        retries=0,
        timeout_seconds=10,
        staging_db={"url_env": "TEST_STAGING_URL"},
    )
    opt_in(world, OptInScope.RECORD, DEMO_DATE - dt.timedelta(days=30))
    first = world.run("nm", run_date=DEMO_DATE)
    assert first["status"] == "success", first["programs"]
    sent = staged_children(url)
    assert sent, "record scope: the program's children went"
    opt_in(world, OptInScope.AGGREGATE, NEXT)
    second = world.run("nm", run_date=NEXT)
    assert second["status"] == "success", second["programs"]
    return url, sent, second


def test_records_held_from_before_the_narrowing_are_counted_in_still_held(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, sent, second = two_nights(world, tmp_path, monkeypatch, delete_out_of_scope=False)
    assert staged_children(url) == sent, "not withdrawn: the agreement does not ask it"
    assert second["programs"]["still_held"].get(PROGRAM) == len(sent)
    log = world.disclosures()
    ours = log.loc[log["program_code"] == PROGRAM]
    assert set(ours["run_date"]) == {DEMO_DATE}, "nothing more of the program disclosed"


def test_under_delete_out_of_scope_the_records_held_are_withdrawn_and_logged(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, sent, _ = two_nights(world, tmp_path, monkeypatch, delete_out_of_scope=True)
    assert staged_children(url) == set()
    log = world.disclosures()
    deleted = log.loc[(log["program_code"] == PROGRAM) & (log["action"] == "delete")]
    assert set(zip(deleted["program_code"], deleted["child_local_id"], strict=True)) == sent
