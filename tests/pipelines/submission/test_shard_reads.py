"""A shard's deliver task reads its programs' staged files at once, yet each file is still
checked on its own: a harmed file stops only its program (with a clear error), and a read
ahead that fails stops only the program at whose turn it failed, the others read their own."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from pipelines import tasks
from pipelines.staged_store import DatabaseStore
from pipelines.staging import StagedFileTampered
from schemas import Delivery, StagedChunk
from tests.pipelines.submission.conftest import World
from tests.pipelines.submission.test_remote_submission import FORMATS, IDENTITY, arrived
from tests.pipelines.submission.test_shard_submission import env_world  # noqa: F401

PROGRAMS = ["VT-EHS-02", "VT-HS-01"]


def _prepared(world: World, root: Path) -> tuple[dict, list[dict]]:  # type: ignore[type-arg]
    world.destination("vt", type="local", recipient="VT-AOE", agreements=["vt-aoe-ecids"],
                      formats=FORMATS, local={"root": str(root)})  # fmt: skip
    from pipelines.demo import DEMO_DATE

    plan = tasks.plan_run("vt", DEMO_DATE.isoformat(), {})
    assert plan["shards"] == [PROGRAMS], "a small night is one shard"
    prepared = tasks.prepare_shard(plan, PROGRAMS)["prepared"]
    assert [p["program"] for p in prepared] == PROGRAMS
    return plan, prepared


def _deliver(plan: dict, prepared: list[dict], world: World):  # type: ignore[no-untyped-def, type-arg]
    from pipelines.submission.deliver import deliver_shard

    return deliver_shard(plan, prepared, world.settings)


@pytest.mark.parametrize("harm", ["flip a byte", "cut the chunk short"])
def test_a_harmed_staged_file_stops_only_its_program(
    env_world: World,  # noqa: F811
    tmp_path: Path,
    harm: str,
) -> None:
    world = env_world
    root = tmp_path / "drop"
    plan, prepared = _prepared(world, root)
    location = prepared[0]["artifacts"][0]["ref"]["path"].removeprefix("db:")
    with world.engine.begin() as connection:
        data = connection.scalar(select(StagedChunk.data).where(StagedChunk.key == location))
        harmed = data[:-1] + bytes([data[-1] ^ 1]) if harm == "flip a byte" else data[:-7]
        connection.execute(
            update(StagedChunk).where(StagedChunk.key == location).values(data=harmed)
        )
    outcomes, failed = _deliver(plan, prepared, world)
    assert list(failed) == [PROGRAMS[0]]
    assert isinstance(failed[PROGRAMS[0]], StagedFileTampered)
    assert str(failed[PROGRAMS[0]]) == f"staged file db:{location} does not match its SHA-256"
    assert [o["program"] for o in outcomes] == [PROGRAMS[1]]
    assert {p.parent.name for p in root.rglob(IDENTITY)} == {PROGRAMS[1]}
    log = world.disclosures()
    assert set(log["program_code"]) == {PROGRAMS[1]}
    assert len(log) == len(arrived(root, IDENTITY))


def test_a_failed_read_ahead_stops_only_the_program_at_whose_turn_it_failed(
    env_world: World,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = env_world
    root = tmp_path / "drop"
    plan, prepared = _prepared(world, root)

    def unreachable(self: DatabaseStore, refs: object) -> dict[str, bytes]:
        raise ConnectionError("database went away")

    monkeypatch.setattr(DatabaseStore, "read_many", unreachable)
    outcomes, failed = _deliver(plan, prepared, world)
    assert {p: type(e) for p, e in failed.items()} == {PROGRAMS[0]: ConnectionError}
    assert [o["program"] for o in outcomes] == [PROGRAMS[1]], "the next read its own files"
    assert set(world.disclosures()["program_code"]) == {PROGRAMS[1]}


def sent_once_all_are_handed_over(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make a shard's sender wait until every program is handed over; the programs handed."""
    from pipelines.submission import deliver

    held = threading.Event()
    handed: list[str] = []
    send = deliver._Sender.send

    def send_when_all_wait(self, ready):  # type: ignore[no-untyped-def]
        if not handed:  # the sender waits until all are handed over
            self._pool.submit(held.wait, 30)
        handed.append(ready.sending.program_code)
        future = send(self, ready)
        if len(handed) == len(PROGRAMS):
            held.set()
        return future

    monkeypatch.setattr(deliver._Sender, "send", send_when_all_wait)
    return handed


def test_the_pending_rows_of_programs_waiting_to_be_sent_are_inserted_by_one_statement(
    env_world: World,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both programs handed over before the first is sent: one ``INSERT`` for both pending
    rows, each still marked before its upload and logged once its files arrived."""
    world = env_world
    root = tmp_path / "drop"
    plan, prepared = _prepared(world, root)
    handed = sent_once_all_are_handed_over(monkeypatch)
    inserts: list[str] = []

    def seen(conn, cursor, statement, *_):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO DELIVERIES"):
            inserts.append(statement)

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        outcomes, failed = _deliver(plan, prepared, world)
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    assert failed == {}
    assert handed == PROGRAMS
    assert len(inserts) == 1, "one statement for both pending rows"
    assert sorted(o["program"] for o in outcomes) == PROGRAMS
    with world.engine.connect() as connection:
        rows = connection.execute(
            select(Delivery.program_code, Delivery.status, Delivery.upload_began_at)
        ).all()
    assert sorted(r.program_code for r in rows) == PROGRAMS
    assert all(r.status == "logged" and r.upload_began_at is not None for r in rows)
    log = world.disclosures()
    assert set(log["program_code"]) == set(PROGRAMS)
    assert len(log) == len(arrived(root, IDENTITY))


def test_when_the_shared_insert_fails_each_program_inserts_its_own_pending_row(
    env_world: World,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The one statement for the waiting programs' rows fails (a row that appeared meanwhile,
    a dropped connection): no program fails for it, each inserts its own row at its turn."""
    from pipelines.submission import deliver

    world = env_world
    root = tmp_path / "drop"
    plan, prepared = _prepared(world, root)
    handed = sent_once_all_are_handed_over(monkeypatch)
    new_rows = deliver._new_delivery_rows
    calls: list[int] = []

    def failing_when_shared(context, readies):  # type: ignore[no-untyped-def]
        calls.append(len(readies))
        if len(readies) > 1:
            raise OperationalError("INSERT INTO deliveries", {}, Exception("connection lost"))
        return new_rows(context, readies)

    monkeypatch.setattr(deliver, "_new_delivery_rows", failing_when_shared)
    outcomes, failed = _deliver(plan, prepared, world)
    assert failed == {}
    assert handed == PROGRAMS and calls == [2, 1, 1]
    assert sorted(o["program"] for o in outcomes) == PROGRAMS
    log = world.disclosures()
    assert set(log["program_code"]) == set(PROGRAMS)
    assert len(log) == len(arrived(root, IDENTITY))
