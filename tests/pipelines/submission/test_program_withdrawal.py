"""A whole program stops sharing under an agreement with ``delete_out_of_scope``: every child
the destination holds of it is withdrawn (``program_out_of_scope``), nothing else leaves.

For every destination type (a local folder, a real SFTP server on loopback, a staging database
on SQLite and on PostgreSQL, Ed-Fi through the local contract server): night 1 sends, night 2
the program has withdrawn from the recipient, so the destination holds nothing of it and the
disclosure log has one ``delete`` entry per child held; night 3 changes nothing; night 4 the
program shares again and is sent afresh. Table-driven at date boundaries (a withdrawal or
AIAN opt-out dated the day before, on or the day after the run date, an incomplete opt-in, an
agreement's expiry day, which is inclusive). Adversarial: another program of the same shard is
untouched, a stopped program holding nothing does nothing, a dry run deletes nothing.

The expectations are written from the rules (docs/domain.md, the module doc of
``pipelines/submission/withdrawals.py``), not read from the code under test.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from pipelines.commands.policy import explanation
from pipelines.demo import DEMO_DATE
from pipelines.submission.deliver import deliver_shard
from pipelines.submission.finish import finish_run
from pipelines.submission.plan import plan_run
from pipelines.submission.prepare import prepare_shard
from privacy.agreements import load_agreement
from privacy.participation import record_change
from privacy.reasons import Reason, citation, describe
from schemas import DeliveredRecord, ParticipationEvent, Program, RedactionEntry
from schemas.codes import OptInScope, ParticipationAction
from tests.pipelines.submission import nights as n
from tests.pipelines.submission.conftest import PROJECT, World, make_world
from tests.pipelines.submission.kinds import FORMATS
from tests.pipelines.submission.test_state_copy import Destination, Edfi, Local, Sftp, Staging

IN_PLAY = 3
WITHDRAWALS = "hs_withdrawals.csv"


class StagingSqlite(Staging):
    """The staging database on SQLite."""

    def __init__(self, world: World, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        Destination.__init__(self, world, tmp_path, request)
        self.url = f"sqlite:///{tmp_path / 'staging.db'}"
        n.staging_destination(world, self.url, request.getfixturevalue("monkeypatch"))

    def close(self) -> None:
        """The test's own SQLite file: nothing another test reads, nothing to empty."""


KINDS = [
    pytest.param(Local, id="local"),
    pytest.param(Sftp, id="sftp"),
    pytest.param(StagingSqlite, id="staging_sqlite"),
    pytest.param(Staging, id="staging_postgresql", marks=pytest.mark.postgres),
    pytest.param(Edfi, id="edfi"),
]


def participation(
    world: World, program: str, action: ParticipationAction, on: dt.date, recipient: str
) -> None:
    """Record a participation change of ``program`` with ``recipient`` effective ``on``."""
    with Session(world.engine) as session, session.begin():
        record_change(
            session,
            program,
            action,
            recipient_code=recipient,
            decided_by="director",
            effective_date=on,
            reason="test",
        )


def entries(world: World, run_id: str, program: str | None = None) -> pd.DataFrame:
    """The disclosure log entries of ``run_id`` (of ``program`` when given)."""
    log = world.disclosures()
    if log.empty:
        return log
    log = log.loc[log["run_id"] == run_id]
    return log.loc[log["program_code"] == program] if program else log


def state_rows(world: World, destination: str, program: str) -> dict[str, str]:
    """child -> status of the program's delivery_state rows (its own artifacts left out)."""
    with world.engine.connect() as connection:
        rows = connection.execute(
            select(DeliveredRecord.child_local_id, DeliveredRecord.status).where(
                DeliveredRecord.destination == destination,
                DeliveredRecord.program_code == program,
                DeliveredRecord.child_local_id != "",
            )
        ).all()
    return dict(rows)


@pytest.fixture
def controlled(tmp_path: Path) -> Iterator[World]:
    """The nights world: MO-HS-03 controlled, an agreement deleting what no longer qualifies."""
    world = make_world(f"sqlite:///{tmp_path / 'program.db'}", tmp_path, children=60)
    n.write_agreement(world)
    yield world
    world.engine.dispose()


@pytest.mark.parametrize("kind", KINDS)
def test_a_program_that_stops_sharing_is_withdrawn_from_every_destination_type_and_resent_later(
    controlled: World, tmp_path: Path, request: pytest.FixtureRequest, kind: type[Destination]
) -> None:
    world = controlled
    in_play = set(n.control(world, IN_PLAY))
    destination = kind(world, tmp_path, request)
    try:
        first = world.run("state", run_date=n.night(1))
        assert first["status"] == "success"
        held, _ = destination.held()
        assert set(held) == in_play

        participation(world, n.PROGRAM, ParticipationAction.WITHDRAW, n.night(2), "MO-DESE")
        second = world.run("state", run_date=n.night(2))
        assert second["status"] == "success", second["stop_lines"]
        assert second["programs"]["withdrawing"] == {n.PROGRAM: IN_PLAY}
        assert second["programs"]["skipped"][n.PROGRAM] == "program_withdrawn"
        assert second["programs"]["still_held"] == {}
        assert second["deliveries"][n.PROGRAM] == "withdrawn"
        held, named = destination.held()
        assert held == {}, "the destination holds nothing of the program"
        if destination.files:
            assert named == in_play, "each child is named in the withdrawals file"
            folder = n.latest_folder(destination.root)  # type: ignore[attr-defined]
            assert folder is not None and folder.parent.name == str(n.night(2))
            files = {p.name for p in folder.glob("*.csv")}
            assert files == {WITHDRAWALS}, "nothing but the withdrawals file goes"
            reasons = set(n.read_csv(folder / WITHDRAWALS)["Reason"])
            assert reasons == {"PGM"}
        log = entries(world, second["run_id"], n.PROGRAM)
        assert set(log["action"]) == {"delete"}, "no record of any child leaves"
        assert sorted(zip(log["program_code"], log["child_local_id"], strict=True)) == sorted(
            in_play
        )
        assert all("program_out_of_scope" in p for p in log["purpose"])
        assert set(state_rows(world, "state", n.PROGRAM).values()) == {"deleted"}

        third = world.run("state", run_date=n.night(3))
        assert third["status"] == "success"
        assert n.PROGRAM not in third["programs"]["processed"], "nothing left to withdraw"
        assert third["programs"]["withdrawing"] == {} and third["programs"]["still_held"] == {}
        assert entries(world, third["run_id"]).empty
        assert destination.held()[0] == {}

        participation(world, n.PROGRAM, ParticipationAction.PARTICIPATE, n.night(4), "MO-DESE")
        fourth = world.run("state", run_date=n.night(4))
        assert fourth["status"] == "success"
        held, _ = destination.held()
        assert set(held) == in_play, "a program that shares again is sent afresh"
        log = entries(world, fourth["run_id"], n.PROGRAM)
        assert list(log["action"]) == ["disclose"] * IN_PLAY
        assert set(state_rows(world, "state", n.PROGRAM).values()) == {"held"}
    finally:
        destination.close()


# --- date boundaries ---------------------------------------------------------------------------

RUN = DEMO_DATE + dt.timedelta(days=3)
DAY = dt.timedelta(days=1)
RECORDS = "nm-ececd-records"


def _local(world: World, tmp_path: Path, name: str, recipient: str, agreement: str) -> Path:
    root = tmp_path / f"drop-{name}"
    world.destination(
        name,
        type="local",
        recipient=recipient,
        agreements=[agreement],
        formats=[*FORMATS, "hs_withdrawals"],
        local={"root": str(root)},
    )
    return root


def _expire(world: World, agreement: str, last_day: dt.date) -> None:
    path = world.config / "agreements" / f"{agreement}.yaml"
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, "expires": last_day}, sort_keys=False))


def _nm_records_agreement(world: World) -> None:
    """A record-level agreement with New Mexico (Vermont's, re-addressed), deleting what no
    longer qualifies; NM-AIAN-07 opts in to record-level sharing before the first night."""
    data = yaml.safe_load((PROJECT / "config/agreements/vt-aoe-ecids.yaml").read_text())
    data |= {"id": RECORDS, "recipient": "NM-ECECD", "delete_out_of_scope": True}
    (world.config / "agreements" / f"{RECORDS}.yaml").write_text(yaml.safe_dump(data))
    with Session(world.engine) as session, session.begin():
        record_change(
            session,
            "NM-AIAN-07",
            ParticipationAction.OPT_IN,
            decided_by="tribal council",
            authority="Resolution 2026-30",
            recorded_by="data manager",
            scope=OptInScope.RECORD,
            effective_date=DEMO_DATE - dt.timedelta(days=30),
        )


def _opt_out(world: World, on: dt.date) -> None:
    with Session(world.engine) as session, session.begin():
        record_change(
            session,
            "NM-AIAN-07",
            ParticipationAction.OPT_OUT,
            decided_by="tribal council",
            effective_date=on,
            reason="the council ended the opt-in",
        )


def _incomplete_opt_in(world: World, on: dt.date) -> None:
    """An opt-in written without its authority or recorder (as an import did before the
    registry checked them): not the program's decision, so the program stops sharing."""
    with world.engine.begin() as connection:
        program = connection.scalar(select(Program.id).where(Program.code == "NM-AIAN-07"))
        connection.exec_driver_sql("PRAGMA ignore_check_constraints = ON")
        try:
            connection.execute(
                insert(ParticipationEvent).values(
                    program_id=program,
                    recipient_id=None,
                    action=ParticipationAction.OPT_IN,
                    effective_date=on,
                    decided_by="import",
                    scope=OptInScope.RECORD,
                    excluded_fields=[],
                    recorded_at=dt.datetime.now(dt.UTC),
                )
            )
        finally:
            connection.exec_driver_sql("PRAGMA ignore_check_constraints = OFF")


BOUNDARIES = [
    # (what happens, its date relative to the run date, withdrawn that night?)
    pytest.param("withdraw", -1, True, id="withdrawal-day-before"),
    pytest.param("withdraw", 0, True, id="withdrawal-on-run-date"),
    pytest.param("withdraw", 1, False, id="withdrawal-day-after"),
    pytest.param("expire", -1, True, id="agreement-expired-day-before"),
    pytest.param("expire", 0, False, id="agreement-expires-on-run-date-inclusive"),
    pytest.param("opt_out", -1, True, id="aian-opt-out-day-before"),
    pytest.param("opt_out", 0, True, id="aian-opt-out-on-run-date"),
    pytest.param("opt_out", 1, False, id="aian-opt-out-day-after"),
    pytest.param("incomplete", 0, True, id="aian-opt-in-incomplete-on-run-date"),
    pytest.param("incomplete", 1, False, id="aian-opt-in-incomplete-day-after"),
]


@pytest.mark.parametrize(("event", "offset", "withdrawn"), BOUNDARIES)
def test_date_boundaries_of_a_program_that_stops_sharing(
    tmp_path: Path, event: str, offset: int, withdrawn: bool
) -> None:
    world = make_world(f"sqlite:///{tmp_path / 'program.db'}", tmp_path, children=120)
    try:
        on = RUN + offset * DAY
        if event in ("withdraw", "expire"):
            n.write_agreement(world)
            n.control(world, IN_PLAY)
            program, recipient, agreement = n.PROGRAM, "MO-DESE", n.AGREEMENT
        else:
            _nm_records_agreement(world)
            program, recipient, agreement = "NM-AIAN-07", "NM-ECECD", RECORDS
        root = _local(world, tmp_path, "state", recipient, agreement)
        if event == "expire":
            _expire(world, agreement, on)
        first = world.run("state", run_date=DEMO_DATE)
        assert first["status"] == "success", first["stop_lines"]
        before = n.held_by_files(root)[0] if program == n.PROGRAM else None
        sent = set(state_rows(world, "state", program))
        assert sent, "the program's children were sent on the first night"
        if event == "withdraw":
            participation(world, program, ParticipationAction.WITHDRAW, on, recipient)
        elif event == "opt_out":
            _opt_out(world, on)
        elif event == "incomplete":
            _incomplete_opt_in(world, on)

        summary = world.run("state", run_date=RUN)
        assert summary["status"] == "success", summary["stop_lines"]
        log = entries(world, summary["run_id"], program)
        folders = sorted(p.parent.parent.name for p in root.glob(f"*/{program}/manifest.json"))
        if withdrawn:
            assert summary["programs"]["withdrawing"][program] == len(sent)
            assert summary["deliveries"][program] == "withdrawn"
            assert sorted(log["child_local_id"]) == sorted(sent)
            assert set(log["action"]) == {"delete"}
            assert set(state_rows(world, "state", program).values()) == {"deleted"}
            latest = root / str(RUN) / program
            assert {p.name for p in latest.glob("*.csv")} == {WITHDRAWALS}
            listed = set(n.read_csv(latest / WITHDRAWALS)["LocalChildID"])
            assert listed == {c for c in sent}
        else:
            assert program not in summary["programs"]["withdrawing"]
            assert summary["deliveries"][program] == "unchanged"
            assert log.empty, "nothing sent, nothing withdrawn"
            assert folders == [str(DEMO_DATE)]
            assert set(state_rows(world, "state", program).values()) == {"held"}
            if before is not None:
                assert n.held_by_files(root)[0].keys() == before.keys()
    finally:
        world.engine.dispose()


# --- adversarial -------------------------------------------------------------------------------


@pytest.fixture
def vermont(tmp_path: Path) -> Iterator[World]:
    """The small demo world with Vermont's agreement asking for deletion (delete_out_of_scope)
    and a local folder destination ``vt`` carrying the withdrawals file."""
    world = make_world(f"sqlite:///{tmp_path / 'program.db'}", tmp_path, children=120)
    path = world.config / "agreements" / "vt-aoe-ecids.yaml"
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, "delete_out_of_scope": True}, sort_keys=False))
    _local(world, tmp_path, "vt", "VT-AOE", "vt-aoe-ecids")
    yield world
    world.engine.dispose()


NEXT = DEMO_DATE + DAY


def test_one_program_stops_while_another_of_the_same_shard_goes_on_untouched(
    vermont: World, tmp_path: Path
) -> None:
    world = vermont
    root = tmp_path / "drop-vt"
    world.run("vt", run_date=DEMO_DATE)
    kept_before = state_rows(world, "vt", "VT-HS-01")
    stopped_before = state_rows(world, "vt", "VT-EHS-02")
    files_before = {
        p.relative_to(root): p.read_bytes()
        for p in (root / str(DEMO_DATE)).rglob("*")
        if p.is_file()
    }
    participation(world, "VT-EHS-02", ParticipationAction.WITHDRAW, NEXT, "VT-AOE")

    plan = plan_run("vt", NEXT, settings=world.settings)
    assert plan["withdrawing"] == {"VT-EHS-02": len(stopped_before)}
    assert plan["shards"] == [["VT-EHS-02", "VT-HS-01"]], "both programs in one shard"
    prepared, stopped = prepare_shard(plan, plan["shards"][0], world.settings)
    assert stopped == {}
    by_program = {p["program"]: p for p in prepared}
    assert by_program["VT-EHS-02"]["artifacts"] == [], "nothing of a stopped program is staged"
    outcomes, failed = deliver_shard(plan, prepared, world.settings)
    assert failed == {}
    delivered: list[dict[str, Any] | None] = list(outcomes)
    summary = finish_run(plan, delivered, world.settings)
    assert summary["status"] == "success"
    assert summary["deliveries"] == {"VT-EHS-02": "withdrawn", "VT-HS-01": "unchanged"}
    assert summary["programs"]["considered"] == 2, "a withdrawn program is counted once"

    assert state_rows(world, "vt", "VT-HS-01") == kept_before, "the other program is untouched"
    assert set(state_rows(world, "vt", "VT-EHS-02").values()) == {"deleted"}
    log = entries(world, plan["run_id"])
    assert set(log["program_code"]) == {"VT-EHS-02"}
    assert set(log["action"]) == {"delete"} and len(log) == len(stopped_before)
    files_after = {
        p.relative_to(root): p.read_bytes()
        for p in (root / str(DEMO_DATE)).rglob("*")
        if p.is_file()
    }
    assert files_after == files_before, "earlier folders are left as they were"
    assert not (root / str(NEXT) / "VT-HS-01").exists(), "nothing new for the other program"
    assert {p.name for p in (root / str(NEXT) / "VT-EHS-02").glob("*.csv")} == {WITHDRAWALS}

    with Session(world.engine) as session:
        rules = session.scalars(
            select(RedactionEntry.rule).where(
                RedactionEntry.run_id == plan["run_id"], RedactionEntry.program_code == "VT-EHS-02"
            )
        ).all()
    (rule,) = rules
    assert f"holds {len(stopped_before)} children's records" in rule
    assert "withdrawn tonight (program_out_of_scope)" in rule
    assert not any(child in rule for child in stopped_before), "counts only: no child is named"


def test_the_reason_and_the_agreement_explain_a_program_withdrawal_in_plain_words(
    vermont: World,
) -> None:
    reason = Reason("program_out_of_scope")
    assert reason.level.value == "program"
    assert "no longer shares" in describe(reason.value)
    assert citation(reason.value).startswith("45 CFR 1302.53")
    agreement = load_agreement(vermont.config / "agreements" / "vt-aoe-ecids.yaml")
    text = "\n".join(explanation(agreement, None, today=DEMO_DATE))
    assert "A program that stops sharing" in text and "program_out_of_scope" in text
    plain = load_agreement(PROJECT / "config" / "agreements" / "vt-aoe-ecids.yaml")
    assert "A program that stops sharing" not in "\n".join(
        explanation(plain, None, today=DEMO_DATE)
    ), "only an agreement with delete_out_of_scope asks for it"


def test_a_program_that_moved_to_another_state_is_withdrawn(vermont: World, tmp_path: Path) -> None:
    world = vermont
    world.run("vt", run_date=DEMO_DATE)
    held = state_rows(world, "vt", "VT-EHS-02")
    with Session(world.engine) as session, session.begin():
        session.execute(update(Program).where(Program.code == "VT-EHS-02").values(state="NH"))
    summary = world.run("vt", run_date=NEXT)
    assert summary["status"] == "success"
    assert summary["programs"]["skipped"] == {"VT-EHS-02": "program_not_in_jurisdiction"}
    assert summary["programs"]["withdrawing"] == {"VT-EHS-02": len(held)}
    assert set(state_rows(world, "vt", "VT-EHS-02").values()) == {"deleted"}
    log = entries(world, summary["run_id"], "VT-EHS-02")
    assert set(log["action"]) == {"delete"} and len(log) == len(held)
    later = world.run("vt", run_date=NEXT + DAY)
    assert "VT-EHS-02" not in later["programs"]["skipped"], "once nothing is held, not listed"


def test_a_stopped_program_holding_nothing_does_nothing(vermont: World, tmp_path: Path) -> None:
    world = vermont
    participation(world, "VT-EHS-02", ParticipationAction.WITHDRAW, DEMO_DATE, "VT-AOE")
    summary = world.run("vt", run_date=DEMO_DATE)
    assert summary["status"] == "success"
    assert summary["programs"]["skipped"] == {"VT-EHS-02": "program_withdrawn"}
    assert summary["programs"]["withdrawing"] == {} and summary["programs"]["still_held"] == {}
    assert summary["programs"]["processed"] == ["VT-HS-01"]
    assert "VT-EHS-02" not in set(world.disclosures()["program_code"])
    assert not list((tmp_path / "drop-vt").glob("*/VT-EHS-02"))
    assert state_rows(world, "vt", "VT-EHS-02") == {}


def test_a_dry_run_deletes_nothing(vermont: World, tmp_path: Path) -> None:
    world = vermont
    root = tmp_path / "drop-vt"
    world.run("vt", run_date=DEMO_DATE)
    held = state_rows(world, "vt", "VT-EHS-02")
    logged = len(world.disclosures())
    participation(world, "VT-EHS-02", ParticipationAction.WITHDRAW, NEXT, "VT-AOE")

    dry = world.run("vt", run_date=NEXT, dry_run=True, output=str(tmp_path / "dry"))
    assert dry["status"] == "success"
    assert dry["deliveries"]["VT-EHS-02"] == "dry_run"
    assert len(world.disclosures()) == logged, "a dry run logs nothing"
    assert state_rows(world, "vt", "VT-EHS-02") == held, "and deletes nothing"
    assert not (root / str(NEXT)).exists()
    assert not list((tmp_path / "dry").glob("**/VT-EHS-02/*.csv"))

    real = world.run("vt", run_date=NEXT)
    assert real["deliveries"]["VT-EHS-02"] == "withdrawn"
    assert len(entries(world, real["run_id"], "VT-EHS-02")) == len(held)


def test_without_delete_out_of_scope_a_stopped_program_is_only_counted(tmp_path: Path) -> None:
    world = make_world(f"sqlite:///{tmp_path / 'program.db'}", tmp_path, children=120)
    try:
        root = _local(world, tmp_path, "vt", "VT-AOE", "vt-aoe-ecids")
        world.run("vt", run_date=DEMO_DATE)
        held = state_rows(world, "vt", "VT-EHS-02")
        participation(world, "VT-EHS-02", ParticipationAction.WITHDRAW, NEXT, "VT-AOE")
        summary = world.run("vt", run_date=NEXT)
        assert summary["programs"]["withdrawing"] == {}
        assert summary["programs"]["still_held"] == {"VT-EHS-02": len(held)}
        assert "VT-EHS-02" not in summary["deliveries"]
        assert entries(world, summary["run_id"]).empty
        assert state_rows(world, "vt", "VT-EHS-02") == held
        assert not (root / str(NEXT)).exists()
    finally:
        world.engine.dispose()


def test_aggregate_tables_held_under_a_lapsed_agreement_are_counted(tmp_path: Path) -> None:
    world = make_world(f"sqlite:///{tmp_path / 'program.db'}", tmp_path, children=120)
    try:
        world.destination(
            "nm",
            type="local",
            recipient="NM-ECECD",
            agreements=["nm-ececd-aggregate"],
            formats=["hs_program_aggregate"],
            local={"root": str(tmp_path / "drop-nm")},
        )
        first = world.run("nm", run_date=DEMO_DATE)
        assert first["status"] == "success"
        sharing = set(first["programs"]["processed"])
        assert sharing, "aggregate tables were sent"
        summary = world.run("nm", run_date=dt.date(2027, 10, 1))  # expired 2027-09-30
        assert summary["programs"]["aggregates_held"] == dict.fromkeys(sharing, 1)
        for program in sharing:
            assert "1 aggregate table(s)" in summary["programs"]["skip_notes"][program]
    finally:
        world.engine.dispose()
