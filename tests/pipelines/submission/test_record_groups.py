"""A shard records its programs in groups, in bulk (``record.record_group``): when the group's
transaction fails, each program is recorded alone, so one program's bad record stops only
that program (its delivery stays open for the next run to reconcile) and the others are
logged. And a file drop's withdrawn child is held as ``deleted`` (written once), so a later
night does not withdraw it again."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from pipelines.db import session_scope
from pipelines.demo import DEMO_DATE
from pipelines.staging import staging_key
from pipelines.submission.batches import load_ledger
from pipelines.submission.context import RunContext
from pipelines.submission.deliver import deliver_shard
from pipelines.submission.plan import plan_run
from pipelines.submission.prepare import prepare_shard
from pipelines.submission.state import DELETED
from privacy.anchors import verify_ledgers
from schemas import DeliveredRecord, Delivery, RedactionEntry
from tests.pipelines.submission import nights as n
from tests.pipelines.submission.conftest import World, make_world

FORMATS = ["hs_child_identity", "hs_enrollment"]
BAD, GOOD = "VT-EHS-02", "VT-HS-01"


def _break_record(world: World, plan: dict, item: dict) -> None:  # type: ignore[type-arg]
    """Re-stage the program's ledger with one redaction its record cannot take: on PostgreSQL
    a reason code longer than the audit's column (the group's COPY into the audit fails), on
    SQLite (which does not enforce lengths) one without its rule (the group fails while its
    entries are built)."""
    context = RunContext.of(plan, world.settings)
    ledger = load_ledger(context, item)
    bad = {"subject": "C-none", "field": "race", "reason": "r" * 60, "rule": "test"}
    if world.engine.dialect.name == "sqlite":
        bad = {"subject": "C-none", "field": "race", "reason": "consent_missing"}
    ledger["redactions"].append(bad)
    key = staging_key(world.settings.staging_key_file)
    ref = context.staged.put(
        json.dumps(ledger).encode(),
        key,
        run_id=plan["run_id"],
        program=item["program"],
        name="ledger.json",
    )
    item["ledger"] = ref.to_dict()


def test_when_the_group_write_fails_then_each_program_is_recorded_alone(
    any_world: World, tmp_path: Path
) -> None:
    world = any_world
    root = tmp_path / "drop"
    world.destination("vt", type="local", recipient="VT-AOE", agreements=["vt-aoe-ecids"],
                      formats=FORMATS, local={"root": str(root)})  # fmt: skip
    plan = plan_run("vt", DEMO_DATE, settings=world.settings)
    assert plan["shards"] == [[BAD, GOOD]], "one shard: both programs in one record group"
    prepared, stopped = prepare_shard(plan, plan["shards"][0], world.settings)
    assert not stopped and [p["program"] for p in prepared] == [BAD, GOOD]
    _break_record(world, plan, prepared[0])

    outcomes, failed = deliver_shard(plan, prepared, world.settings)

    assert [o["program"] for o in outcomes] == [GOOD] and list(failed) == [BAD]
    assert outcomes[0]["status"] == "delivered" and outcomes[0]["logged"] > 0
    log = world.disclosures()
    assert set(log["program_code"]) == {GOOD}, "the good program is logged, the bad one not"
    assert len(log) == outcomes[0]["logged"]
    assert {p.parent.name for p in root.rglob("manifest.json")} == {BAD, GOOD}, "both sent"
    with world.engine.connect() as connection:
        audited = Counter(connection.scalars(select(RedactionEntry.program_code)))
        deliveries = {
            p: s for p, s in connection.execute(select(Delivery.program_code, Delivery.status))
        }
        held = Counter(connection.scalars(select(DeliveredRecord.program_code)))
    assert BAD not in audited, "nothing of the bad program's record is written"
    assert deliveries == {GOOD: "logged", BAD: "pending"}, "the bad delivery stays open"
    assert set(held) == {GOOD}
    staged = world.staged()
    assert staged and all(k.startswith(f"{plan['run_id']}/{BAD}/") for k in staged), (
        "the open delivery keeps its staged files; the logged one's are removed"
    )
    with session_scope(world.engine) as session:
        check = verify_ledgers(session)
    assert all(r.ok for r in check.reports.values())


def test_when_a_group_is_written_whole_then_every_program_is_logged_once(
    world: World, tmp_path: Path
) -> None:
    root = tmp_path / "drop"
    world.destination("vt", type="local", recipient="VT-AOE", agreements=["vt-aoe-ecids"],
                      formats=FORMATS, local={"root": str(root)})  # fmt: skip
    plan = plan_run("vt", DEMO_DATE, settings=world.settings)
    prepared, _ = prepare_shard(plan, plan["shards"][0], world.settings)
    outcomes, failed = deliver_shard(plan, prepared, world.settings)
    assert not failed and sorted(o["program"] for o in outcomes) == [BAD, GOOD]
    log = world.disclosures()
    per_program = Counter(log["program_code"])
    assert per_program == {o["program"]: o["logged"] for o in outcomes}
    assert not log.duplicated(["program_code", "child_local_id"]).any()
    assert list(log["seq"]) == list(range(1, len(log) + 1))
    with world.engine.connect() as connection:
        statuses = set(connection.scalars(select(Delivery.status)))
    assert statuses == {"logged"} and world.staged() == []
    again, failed = deliver_shard(plan, prepared, world.settings)  # a retried task
    assert not failed and sorted(o["program"] for o in again) == [BAD, GOOD]
    assert len(world.disclosures()) == len(log), "a retry logs nothing again"


@pytest.fixture
def small_world(tmp_path: Path):  # type: ignore[no-untyped-def]
    world = make_world(f"sqlite:///{tmp_path / 'program.db'}", tmp_path, children=60)
    n.write_agreement(world)
    yield world
    world.engine.dispose()


def test_a_child_a_withdrawals_file_withdrew_is_deleted_and_not_withdrawn_again(
    small_world: World, tmp_path: Path
) -> None:
    world = small_world
    root = tmp_path / "drop"
    world.destination("state", type="local", recipient="MO-DESE", agreements=[n.AGREEMENT],
                      formats=n.FILES, local={"root": str(root)})  # fmt: skip
    child, *_ = n.control(world, 3)
    world.run("state", run_date=n.night(1))
    n.revoke(world, child, n.night(2))
    world.run("state", run_date=n.night(2))
    world.run("state", run_date=n.night(3))  # still revoked: nothing new to withdraw
    log = world.disclosures()
    mine = log.loc[
        (log["program_code"] == child[0]) & (log["child_local_id"] == child[1])
    ].sort_values("seq")
    assert list(mine["action"]) == ["disclose", "delete"], "withdrawn once, on night 2"
    assert list(mine["run_date"]) == [n.night(1), n.night(2)]
    with world.engine.connect() as connection:
        status = connection.scalar(
            select(DeliveredRecord.status).where(
                DeliveredRecord.program_code == child[0],
                DeliveredRecord.child_local_id == child[1],
            )
        )
    assert status == DELETED, "the destination was told to delete it: nothing of it is held"
