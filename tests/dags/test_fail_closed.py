"""Promises proved end to end, through ``datashare run`` and real Airflow (``airflow dags
test``): a missing key fails closed (nothing arrives, nothing is logged, the screen names the
key and where it looked, the task is not retried, and no personal data reaches a log), and a
dry run sends and logs nothing."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from pipelines.db import make_engine
from pipelines.demo import DEMO_DATE
from pipelines.settings import Settings
from pipelines.staging import create_key_file
from privacy.keys import ensure_demo_key
from schemas import Child, Delivery, DisclosureEntry, Program, Recipient
from tests.airflow_fixtures import migrated_airflow
from tests.conftest import PROJECT
from tests.pii import PiiScan, run_texts
from tests.templates import seeded_sqlite

pytestmark = pytest.mark.airflow
DAG = "datashare_demo"


class Root:
    """A seeded program database, config, demo keys and a migrated Airflow under one folder."""

    def __init__(self, root: Path, *, pseudonymize: bool = False) -> None:
        self.root = root
        config = root / "config"
        shutil.copytree(PROJECT / "config" / "agreements", config / "agreements")
        if pseudonymize:  # the agreement then needs the recipient's key
            agreement = config / "agreements" / "vt-aoe-ecids.yaml"
            text = agreement.read_text()
            assert "  child_local_id: keep\n" in text
            text = text.replace("child_local_id: keep", "child_local_id: pseudonymize")
            agreement.write_text(text)
        (config / "destinations").mkdir()
        shutil.copy(PROJECT / "config" / "destinations" / "demo.yaml", config / "destinations")
        self.url = seeded_sqlite(root / "program.db", children=300, seed_value=11)
        self.settings = Settings(self.url, config, root / "state")
        migrated_airflow(self.settings.state_dir)
        engine = make_engine(self.url)
        with engine.connect() as connection:
            for code in connection.scalars(select(Recipient.code)):
                ensure_demo_key(self.settings.keys_file, code)
        engine.dispose()
        create_key_file(self.settings.staging_key_file)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DATASHARE_", "AIRFLOW"))},
            "DATASHARE_DATABASE_URL": self.url,
            "DATASHARE_CONFIG_DIR": str(config),
            "DATASHARE_STATE_DIR": str(self.settings.state_dir),
            "COLUMNS": "300",
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(Path(sys.executable).with_name("datashare")), "run", "demo", *args]
        command += ["--date", DEMO_DATE.isoformat()]
        return subprocess.run(
            command, cwd=self.root, env=self.env, capture_output=True, text=True, check=False
        )

    def counts(self) -> tuple[int, int]:
        """(disclosure log entries, deliveries)."""
        engine = make_engine(self.url)
        with engine.connect() as connection:
            logged = connection.scalar(select(func.count()).select_from(DisclosureEntry))
            delivered = connection.scalar(select(func.count()).select_from(Delivery))
        engine.dispose()
        return int(logged or 0), int(delivered or 0)

    def arrived(self) -> list[Path]:
        return sorted(p for p in (self.root / "out").rglob("*") if p.is_file())

    def tries(self) -> dict[tuple[str, int], tuple[str, int]]:
        """(task, map index) -> (state, try number) of every task of the run, with how many
        earlier tries Airflow kept."""
        with sqlite3.connect(self.settings.state_dir / "airflow" / "airflow.db") as db:
            rows = db.execute(
                "SELECT task_id, map_index, state, try_number FROM task_instance WHERE dag_id=?",
                (DAG,),
            ).fetchall()
            earlier = db.execute(
                "SELECT count(*) FROM task_instance_history WHERE dag_id=?", (DAG,)
            ).fetchone()[0]
        assert earlier == 0, "no task was tried twice"
        return {(task, index): (state, tries) for task, index, state, tries in rows}

    def scan(self, result: subprocess.CompletedProcess[str]) -> list[str]:
        engine = make_engine(self.url)
        scan = PiiScan.of_database(engine, except_dates=[DEMO_DATE])
        engine.dispose()
        return scan.findings(run_texts(self.settings.state_dir, result.stdout, result.stderr))


def assert_failed_closed(root: Root, result: subprocess.CompletedProcess[str], error: str) -> str:
    """Nothing arrived or was logged, the preparing tasks failed once each with ``error`` as a
    terminal failure, nothing leaked; returns what the person running it saw.

    ``airflow dags test`` runs each task once whatever its retries, so the proof that Airflow
    would not retry is the kind of failure: ``AirflowFailException``, which is what the
    screen's "Stopped: <error>" line is read from."""
    screen = result.stdout + result.stderr
    assert result.returncode != 0, screen[-3000:]
    assert f"Stopped: {error}: " in screen, screen[-3000:]
    assert root.arrived() == [], "nothing arrives"
    assert root.counts() == (0, 0), "nothing is logged or recorded as delivered"
    prepared = {k: v for k, v in root.tries().items() if k[0] == "shard.prepare"}
    assert prepared and set(prepared.values()) == {("failed", 1)}, prepared
    assert root.scan(result) == [], "no personal data in any output, log or XCom"
    return " ".join(screen.split())


def test_when_the_recipient_key_is_missing_then_nothing_leaves_and_the_screen_says_where(
    tmp_path: Path,
) -> None:
    root = Root(tmp_path, pseudonymize=True)
    keys = json.loads(root.settings.keys_file.read_text())
    del keys["VT-AOE"]
    root.settings.keys_file.write_text(json.dumps(keys))
    result = root.run()
    screen = assert_failed_closed(root, result, "MissingKeyError")
    assert "DATASHARE_KEY_VT_AOE" in screen, screen[-3000:]
    assert str(root.settings.keys_file) in screen, "and where it looked"


def test_when_the_staging_key_is_missing_then_nothing_leaves_and_the_screen_says_where(
    tmp_path: Path,
) -> None:
    root = Root(tmp_path)
    root.settings.staging_key_file.unlink()
    result = root.run()
    screen = assert_failed_closed(root, result, "StagingKeyError")
    assert "DATASHARE_STAGING_KEY" in screen, screen[-3000:]
    assert str(root.settings.staging_key_file) in screen, "and where it looked"


def test_a_dry_run_through_airflow_writes_payloads_and_sends_and_logs_nothing(
    tmp_path: Path,
) -> None:
    root = Root(tmp_path)
    review = tmp_path / "review"
    result = root.run("--dry-run", "--output", str(review))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert root.arrived() == [], "nothing sent"
    assert root.counts() == (0, 0), "nothing logged"
    identity = pd.concat(
        pd.read_csv(p, dtype=str, keep_default_na=False)
        for p in review.rglob("hs_child_identity.csv")
    )
    engine = make_engine(root.url)
    names = select(Program.code, Child.local_id, Child.first_name, Child.last_name)
    with engine.connect() as connection:
        source = {
            (r.code, r.local_id): (r.first_name, r.last_name)
            for r in connection.execute(names.join(Program))
        }
    engine.dispose()
    assert len(identity) > 0
    for row in identity.itertuples(index=False):
        assert source[(row.ProgramID, row.LocalChildID)] == (row.LegalFirstName, row.LegalLastName)
    assert root.scan(result) == []
