"""An AIAN program narrowed its opt-in to aggregate outputs only, under a record agreement
with ``delete_out_of_scope``: the run that withdraws the records the destination holds of it
is killed (SIGKILL) after the destination carried out the withdrawal and before anything was
logged. The next run logs each deletion exactly once, under the run that made it and with
that run's date (as every crash-recovered disclosure is), and has nothing left to withdraw.

Before, a file drop's withdrawals file and Ed-Fi's deletions were not recognised while
reconciling: the delivery state still held the children, so the next run withdrew them again
(another withdrawals file naming them) and logged the deletions under itself, a night late.

Also: the ``still_held`` line of a narrowed program whose records are not withdrawn says what
is still sent (its aggregate tables, where the destination takes them), not "nothing more"."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.db import session_scope
from pipelines.demo import DEMO_DATE
from privacy.anchors import verify_ledgers
from schemas.codes import OptInScope
from tests.pipelines.submission.conftest import World
from tests.pipelines.submission.test_aian_scope_narrows import opt_in, record_agreement
from tests.pipelines.submission.test_aian_scope_withdrawal import (
    AGGREGATE,
    AGREEMENT,
    OTHER,
    PROGRAM,
    RECORDS,
    WITHDRAWALS,
    Edfi,
    Kind,
    Local,
    StagingSqlite,
    entries,
    keys,
    new_world,
    read,
)
from tests.pipelines.submission.test_crash_after_accept import crash_after_accept

DAY = dt.timedelta(days=1)
BEFORE, NEXT = DEMO_DATE - DAY, DEMO_DATE + DAY


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = new_world(tmp_path)
    yield made
    made.engine.dispose()


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(Local, id="local"),
        pytest.param(Edfi, id="edfi"),
        pytest.param(StagingSqlite, id="staging_sqlite"),
    ],
)
def test_a_withdrawal_killed_before_logging_is_logged_once_under_the_run_that_made_it(
    world: World, tmp_path: Path, request: pytest.FixtureRequest, kind: type[Kind]
) -> None:
    destination = kind(world, tmp_path, request)
    try:
        first = world.run("nm", run_date=BEFORE)
        assert first["status"] == "success", first["stop_lines"]
        sent = destination.records()
        assert sent, "record scope: the program's children went"
        opt_in(world, OptInScope.AGGREGATE, DEMO_DATE)

        crash = crash_after_accept(world, "nm", tmp_path)  # killed on DEMO_DATE

        assert crash.program == PROGRAM
        assert destination.records() == set(), "the withdrawal was carried out"
        assert entries(world, crash.run_id).empty, "and nothing of it logged"
        if isinstance(destination, Local):
            assert destination.named(DEMO_DATE) == sent

        later = world.run("nm", run_date=NEXT)

        assert later["status"] == "success", later["stop_lines"]
        outcome = later["reconciled"][PROGRAM]
        assert crash.run_id in outcome and f"{len(sent)} deletions" in outcome, outcome
        log = world.disclosures()
        ours = log.loc[log["program_code"] == PROGRAM]
        deletes = ours.loc[ours["action"] == "delete"]
        assert len(deletes) == len(sent) and keys(deletes) == sent, "each child once"
        assert set(deletes["run_id"]) == {crash.run_id}, "under the run that deleted"
        assert set(deletes["run_date"]) == {DEMO_DATE}, "with its date, not a night late"
        assert all("program_out_of_scope" in why for why in deletes["purpose"])
        assert entries(world, later["run_id"]).empty, "tonight logs nothing of the program"
        assert later["programs"]["withdrawing"] == {}, "nothing left to withdraw"
        assert destination.records() == set()
        assert destination.records(OTHER), "the other program is untouched"
        if isinstance(destination, Local):
            assert destination.named(NEXT) == set(), "no second withdrawals file"
        with session_scope(world.engine) as session:
            check = verify_ledgers(session)
        assert all(r.ok for r in check.reports.values()) and not check.delivery_problems
    finally:
        destination.close()


# --- the still_held line says what is still sent ------------------------------------------------


@pytest.mark.parametrize(
    ("formats", "says"),
    [
        pytest.param(
            [*RECORDS, AGGREGATE, WITHDRAWALS],
            "no child record of it is sent any more (its aggregate tables still go",
            id="tables-go",
        ),
        pytest.param([*RECORDS, WITHDRAWALS], "nothing more is sent", id="nothing-goes"),
    ],
)
def test_the_still_held_line_of_a_narrowed_program_is_true(
    tmp_path: Path, formats: list[str], says: str
) -> None:
    world = new_world(tmp_path)
    try:
        record_agreement(world, delete_out_of_scope=False)  # held records are not withdrawn
        root = tmp_path / "drop"
        world.destination(
            "nm", type="local", recipient="NM-ECECD", agreements=[AGREEMENT], formats=formats,
            local={"root": str(root)},
        )  # fmt: skip
        world.run("nm", run_date=BEFORE)
        opt_in(world, OptInScope.AGGREGATE, DEMO_DATE)

        summary = world.run("nm", run_date=DEMO_DATE)

        assert summary["status"] == "success", summary["stop_lines"]
        assert summary["programs"]["still_held"].get(PROGRAM)
        note = summary["programs"]["skip_notes"][PROGRAM]
        assert says in note, note
        folder = root / str(DEMO_DATE) / PROGRAM
        rows = {p.name: len(read(p)) for p in folder.glob("*.csv")}
        assert not any(n for name, n in rows.items() if name != "hs_program_aggregate.csv"), (
            "no child's row went"
        )
        if AGGREGATE in formats:
            assert "nothing more is sent" not in note
            assert rows["hs_program_aggregate.csv"] > 0, "its aggregate table did go"
        else:
            assert "aggregate tables still go" not in note
    finally:
        world.engine.dispose()
