"""Submissions to a real SFTP server on loopback and a real PostgreSQL staging database, with
faults: the server killed mid-upload, the database refusing connections, a crash between
delivery and logging. Each rerun completes with nothing lost, nothing duplicated, and a
disclosure log that matches what arrived."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, select, text

from pipelines.destinations.base import TransientDeliveryError
from schemas import Delivery
from tests.pipelines.submission.conftest import PROJECT, World
from tests.sftp_server import PASSWORD, USERNAME, SftpTestServer

FORMATS = ["hs_child_identity", "hs_enrollment"]
IDENTITY = "hs_child_identity.csv"


def sftp_destination(world: World, server: SftpTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    known = world.config.parent / "known_hosts"
    known.write_text(server.known_hosts_line())
    monkeypatch.setenv("TEST_SFTP_PASSWORD", PASSWORD)
    world.destination(
        "vt-sftp",
        type="sftp",
        recipient="VT-AOE",
        agreements=["vt-aoe-ecids"],
        formats=FORMATS,
        retries=1,
        retry_backoff_seconds=0.05,
        timeout_seconds=10,
        sftp={
            "host": "127.0.0.1",
            "port": server.port,
            "username": USERNAME,
            "password_env": "TEST_SFTP_PASSWORD",
            "known_hosts": str(known),
            "remote_root": "/incoming",
        },
    )


def arrived(root: Path, name: str) -> pd.DataFrame:
    files = sorted(root.rglob(name))
    return pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False) for p in files])


def assert_log_matches(world: World, identity: pd.DataFrame) -> None:
    log = world.disclosures()
    assert not log.duplicated(["program_code", "child_local_id"]).any()
    assert sorted(zip(log["program_code"], log["child_local_id"], strict=True)) == sorted(
        zip(identity["ProgramID"], identity["LocalChildID"], strict=True)
    )


def test_when_sftp_server_killed_mid_upload_then_rerun_completes_without_duplicates(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "sftp-root"
    (root / "incoming").mkdir(parents=True)
    with SftpTestServer(root, kill_after_bytes=4_000) as server:
        sftp_destination(world, server, monkeypatch)
        with pytest.raises(TransientDeliveryError):
            world.run("vt-sftp")
        assert server.faults == 1
        assert world.disclosures().empty, "nothing is logged for a batch that did not arrive"
        assert not list(root.rglob("manifest.json")), "an interrupted batch is not complete"
        server.start()
        summary = world.run("vt-sftp")
    assert summary["status"] == "success"
    identity = arrived(root, IDENTITY)
    assert len(identity) == summary["children"]["disclosed"]
    assert_log_matches(world, identity)
    manifests = [json.loads(p.read_text()) for p in root.rglob("manifest.json")]
    assert {m["program_code"] for m in manifests} == {"VT-HS-01", "VT-EHS-02"}
    assert not list(root.rglob("*.part"))


def staging_destination(world: World, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("TEST_STAGING_URL", url)
    world.destination(
        "vt-staging",
        type="staging_db",
        recipient="VT-AOE",
        agreements=["vt-aoe-ecids"],
        formats=FORMATS,
        retries=1,
        retry_backoff_seconds=0.05,
        timeout_seconds=5,
        staging_db={"url_env": "TEST_STAGING_URL"},
    )


@pytest.mark.postgres
def test_when_staging_db_refuses_then_rerun_loads_every_row_once_field_by_field(
    world: World, staging_pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    staging_destination(world, monkeypatch, "postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    refused = world.run("vt-staging")  # stopped at plan: the take-over cannot read it
    assert refused["status"] == "failed" and refused["programs"]["processed"] == []
    assert refused["stop_lines"] and all(
        "destination_unavailable" in line and "host 127.0.0.1:1" in line
        for line in refused["stop_lines"]
    ), refused["stop_lines"]
    assert world.disclosures().empty
    staging_destination(world, monkeypatch, staging_pg_url)
    summary = world.run("vt-staging")
    assert summary["status"] == "success"
    engine = create_engine(staging_pg_url)
    with engine.connect() as connection:
        rows = pd.DataFrame(
            connection.execute(text("SELECT * FROM hs_child_identity")).mappings().all()
        )
        enrolled = connection.execute(text("SELECT count(*) FROM hs_enrollment")).scalar_one()
    engine.dispose()
    assert len(rows) == enrolled == summary["children"]["logged"]
    source = world.children().set_index(["program_code", "local_id"])
    for row in rows.itertuples(index=False):
        child = source.loc[(row.ProgramID, row.LocalChildID)]
        assert (row.LegalFirstName, row.LegalLastName, row.BirthDate) == (
            child.first_name,
            child.last_name,
            child.birth_date,
        )
    assert_log_matches(world, rows)
    again = world.run("vt-staging")
    assert again["children"]["logged"] == 0 and len(world.disclosures()) == len(rows)


CRASH = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {project!r})
    import pipelines.submission.deliver as deliver
    from tests.pipelines.submission.conftest import World
    from pipelines.settings import Settings
    from pipelines.db import make_engine
    from pathlib import Path

    def crash(*args, **kwargs):
        os._exit(3)  # the process dies after the destination accepted, before logging

    deliver.record_delivery = crash
    settings = Settings({url!r}, Path({config!r}), Path({state!r}))
    World(settings, make_engine({url!r}), Path({config!r})).run("vt")
    """
)


def test_when_crash_between_delivery_and_logging_then_next_run_logs_exactly_once(
    world: World,
) -> None:
    root = world.config.parent / "drop"
    world.destination(
        "vt",
        type="local",
        recipient="VT-AOE",
        agreements=["vt-aoe-ecids"],
        formats=FORMATS,
        local={"root": str(root)},
    )
    script = CRASH.format(
        project=str(PROJECT),
        url=world.settings.database_url,
        config=str(world.settings.config_dir),
        state=str(world.settings.state_dir),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATASHARE_")}
    crashed = subprocess.run([sys.executable, "-c", script], env=env, cwd=PROJECT, check=False)
    assert crashed.returncode == 3
    assert len(arrived(root, IDENTITY)) > 0, "the first program's files arrived"
    assert world.disclosures().empty, "but nothing was logged"
    with world.engine.connect() as connection:
        stuck = connection.execute(select(Delivery.run_id, Delivery.status)).all()
    assert [status for _, status in stuck] == ["pending"]
    assert any(k.endswith("ledger.json") for k in world.staged()), "kept for reconciliation"
    summary = world.run("vt")
    assert summary["reconciled"], "the next run reconciles the unlogged delivery"
    identity = arrived(root, IDENTITY)
    assert_log_matches(world, identity)
    log = world.disclosures()
    assert stuck[0][0] in set(log["run_id"]), "logged under the run that sent it"
    with world.engine.connect() as connection:
        statuses = set(connection.scalars(select(Delivery.status)))
    assert "logged" in statuses and statuses <= {"logged", "unchanged"}, "nothing stuck"
    assert world.staged() == [], "and removed once logged"
