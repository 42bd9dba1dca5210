"""A shard of programs through the task functions the DAG calls: a program that fails stops
only itself, and a transient fault retries the shard without sending again what an earlier
attempt delivered."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select, update

from pipelines import tasks
from pipelines.demo import DEMO_DATE
from pipelines.destinations.base import TransientDeliveryError
from pipelines.mapping import RenderError
from pipelines.submission.prepare import _prepare_together
from pipelines.submission.stops import stops_of
from schemas import Child, Delivery, Program
from schemas.filespec import FORMATS_DIR
from tests.pipelines.submission.conftest import World
from tests.pipelines.submission.test_remote_submission import (
    FORMATS,
    IDENTITY,
    arrived,
    assert_log_matches,
)
from tests.sftp_server import PASSWORD, USERNAME, SftpTestServer


@pytest.fixture
def env_world(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """The world as the task functions see it: through the environment."""
    monkeypatch.setenv("DATASHARE_DATABASE_URL", world.settings.database_url)
    monkeypatch.setenv("DATASHARE_CONFIG_DIR", str(world.settings.config_dir))
    monkeypatch.setenv("DATASHARE_STATE_DIR", str(world.settings.state_dir))
    return world


def test_when_one_program_of_a_shard_fails_the_input_gate_then_only_it_stops(
    env_world: World, tmp_path: Path
) -> None:
    world = env_world
    root = tmp_path / "drop"
    world.destination("vt", type="local", recipient="VT-AOE", agreements=["vt-aoe-ecids"],
                      formats=FORMATS, local={"root": str(root)})  # fmt: skip
    with world.engine.begin() as connection:  # every child of one program fails the gate
        program = select(Program.id).where(Program.code == "VT-EHS-02").scalar_subquery()
        connection.execute(
            update(Child).where(Child.program_id == program).values(birth_date=dt.date(2030, 1, 1))
        )
    plan = tasks.plan_run("vt", DEMO_DATE.isoformat(), {})
    assert plan["shards"] == [["VT-EHS-02", "VT-HS-01"]], "a small night is one shard"
    prepared = tasks.prepare_shard(plan, plan["shards"][0])
    assert prepared["stopped"] == ["VT-EHS-02"]
    assert [p["program"] for p in prepared["prepared"]] == ["VT-HS-01"]
    delivered = tasks.deliver_shard(plan, prepared)
    summary = tasks.finish_run(plan, [delivered])
    assert summary["status"] == "partial"
    assert summary["programs"]["processed"] == ["VT-HS-01"]
    assert summary["programs"]["stopped"] == ["VT-EHS-02"]
    [line] = summary["stop_lines"]
    assert line.startswith("VT-EHS-02: stopped at prepare (gate_failed): BatchStopped: program")
    assert {p.parent.name for p in root.rglob(IDENTITY)} == {"VT-HS-01"}
    assert_log_matches(world, arrived(root, IDENTITY))


def test_when_a_transient_fault_retries_the_shard_then_nothing_is_sent_twice(
    env_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = env_world
    root = tmp_path / "sftp-root"
    (root / "incoming").mkdir(parents=True)
    # the first connection that has written 4,000 bytes is dropped; later ones work
    with SftpTestServer(root, drop_after_bytes=4_000) as server:
        known = tmp_path / "known_hosts"
        known.write_text(server.known_hosts_line())
        monkeypatch.setenv("TEST_SFTP_PASSWORD", PASSWORD)
        world.destination(
            "vt-sftp", type="sftp", recipient="VT-AOE", agreements=["vt-aoe-ecids"],
            formats=FORMATS, retries=0, timeout_seconds=10,
            sftp={"host": "127.0.0.1", "port": server.port, "username": USERNAME,
                  "password_env": "TEST_SFTP_PASSWORD", "known_hosts": str(known),
                  "remote_root": "/incoming"},
        )  # fmt: skip
        plan = tasks.plan_run("vt-sftp", DEMO_DATE.isoformat(), {})
        [shard] = plan["shards"]
        prepared = tasks.prepare_shard(plan, shard)
        with pytest.raises(TransientDeliveryError, match="retrying sends only"):
            tasks.deliver_shard(plan, prepared, final_attempt=False)
        assert server.faults == 1
        engine = world.engine
        [failed] = stops_of(engine, plan["run_id"])
        [done] = set(shard) - {failed}
        assert stops_of(engine, plan["run_id"])[failed]["reason"] == "destination_unavailable"
        first = {p: p.stat().st_mtime_ns for p in root.rglob("*") if done in p.parts}
        assert first, "the other program was delivered in the first attempt"
        assert server.connections_made == 2, "one session, and a new one after the drop"
        written = server.bytes_written
        retried = tasks.deliver_shard(plan, prepared, final_attempt=False)  # Airflow's retry
        assert server.connections_made == 3, "one session for the retried shard"
        assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if done in p.parts} == first
        assert {o["program"] for o in retried["outcomes"]} == set(shard)
        assert server.bytes_written > written, "only the failed program was sent again"
    summary = tasks.finish_run(plan, [retried])
    assert summary["status"] == "success", summary["stop_lines"]
    assert_log_matches(world, arrived(root, IDENTITY))
    with engine.connect() as connection:
        rows = connection.execute(select(Delivery.program_code, Delivery.status)).all()
    assert sorted(rows) == sorted((p, "logged") for p in shard), "one delivery per program"


def test_when_an_error_names_no_program_then_each_is_prepared_alone_and_only_its_own_stops(
    env_world: World, tmp_path: Path
) -> None:
    """A state layout that maps only Head Start's program type: rendering the shard's
    enrollment file fails on the Early Head Start program's rows with an error that names a
    spec column, not a program. The shard then prepares program by program: only VT-EHS-02
    stops, VT-HS-01 is delivered and logged."""
    world = env_world
    spec = yaml.safe_load((FORMATS_DIR / "hs_enrollment.yaml").read_text())
    program_type = next(c for c in spec["columns"] if c["name"] == "ProgramType")
    del program_type["code_set"]  # so the layout may leave codes out
    program_type["codes"] = {"head_start": "HS"}
    layout = tmp_path / "hs_enrollment_hs_only.yaml"
    layout.write_text(yaml.safe_dump(spec, sort_keys=False))
    root = tmp_path / "drop"
    formats = ["hs_child_identity", str(layout)]
    world.destination("vt", type="local", recipient="VT-AOE", agreements=["vt-aoe-ecids"],
                      formats=formats, local={"root": str(root)})  # fmt: skip
    plan = tasks.plan_run("vt", DEMO_DATE.isoformat(), {})
    [shard] = plan["shards"]
    assert shard == ["VT-EHS-02", "VT-HS-01"], "a small night is one shard"
    with pytest.raises(RenderError, match="column ProgramType") as together:
        _prepare_together(plan, shard, None)  # the shard's one pass: no program named
    assert "VT-" not in str(together.value)

    prepared = tasks.prepare_shard(plan, shard)

    assert prepared["stopped"] == ["VT-EHS-02"]
    assert [p["program"] for p in prepared["prepared"]] == ["VT-HS-01"]
    stop = stops_of(world.engine, plan["run_id"])
    assert set(stop) == {"VT-EHS-02"} and stop["VT-EHS-02"]["step"] == "prepare"
    assert stop["VT-EHS-02"]["reason"] == "config_error"
    assert "column ProgramType" in stop["VT-EHS-02"]["detail"]
    assert "early_head_start" not in stop["VT-EHS-02"]["detail"], "the rule, never the value"
    summary = tasks.finish_run(plan, [tasks.deliver_shard(plan, prepared)])
    assert summary["status"] == "partial"
    assert summary["programs"]["processed"] == ["VT-HS-01"]
    assert summary["programs"]["stopped"] == ["VT-EHS-02"]
    assert {p.parent.name for p in root.rglob(IDENTITY)} == {"VT-HS-01"}
    assert set(world.disclosures()["program_code"]) == {"VT-HS-01"}
    assert_log_matches(world, arrived(root, IDENTITY))
