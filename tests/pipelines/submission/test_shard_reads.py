"""A shard's deliver task reads its programs' staged files at once, yet each file is still
checked on its own: a harmed file stops only its program (with a clear error), and a read
ahead that fails stops only the program at whose turn it failed, the others read their own."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from pipelines import tasks
from pipelines.staged_store import DatabaseStore
from pipelines.staging import StagedFileTampered
from schemas import StagedChunk
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
