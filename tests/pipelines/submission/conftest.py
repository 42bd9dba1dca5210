"""A seeded demo world with its own config and state folders, for submission tests."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sqlalchemy import Engine, select

from pipelines.db import make_engine
from pipelines.demo import DEMO_DATE
from pipelines.settings import Settings
from pipelines.staging import create_key_file
from pipelines.submission.deliver import deliver_program
from pipelines.submission.finish import finish_run
from pipelines.submission.plan import plan_run
from pipelines.submission.prepare import prepare_program
from privacy.keys import ensure_demo_key
from schemas import Child, DisclosureEntry, Program, Recipient, StagedChunk
from tests.templates import seeded_postgres, seeded_sqlite

PROJECT = Path(__file__).resolve().parents[3]
CHILDREN = 360


@dataclass
class World:
    """A demo database, config folder (agreements + destinations) and state folder."""

    settings: Settings
    engine: Engine
    config: Path

    def destination(self, name: str, **content: Any) -> None:
        """Write ``config/destinations/<name>.yaml``."""
        path = self.config / "destinations" / f"{name}.yaml"
        path.write_text(yaml.safe_dump(content, sort_keys=False))

    def edfi_destination(
        self,
        name: str,
        base_url: str,
        monkeypatch: pytest.MonkeyPatch,
        *,
        agreement: str = "mo-dese-consent",
        concurrency: int = 4,
        **options: Any,
    ) -> None:
        """An Ed-Fi destination ``name`` to Missouri at the contract server ``base_url``
        (data standard 5, the test credentials set in the environment)."""
        monkeypatch.setenv("TEST_EDFI_KEY", "datashare")
        monkeypatch.setenv("TEST_EDFI_SECRET", "datashare-secret")
        self.destination(
            name,
            type="edfi",
            recipient="MO-DESE",
            agreements=[agreement],
            timeout_seconds=10,
            **options,
            edfi={
                "base_url": base_url,
                "data_standard": 5,
                "concurrency": concurrency,
                "max_backoff_seconds": 0.05,
                "credentials": {
                    "client_id_env": "TEST_EDFI_KEY",
                    "client_secret_env": "TEST_EDFI_SECRET",
                },
                "education_organizations": {
                    "default": {"school_id": 255901001, "education_organization_id": 255901}
                },
            },
        )

    def run(
        self,
        destination: str,
        *,
        run_date: dt.date = DEMO_DATE,
        dry_run: bool = False,
        output: str = "",
        between: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """One whole submission through the pipeline steps (what the DAG's tasks call); as in
        the DAG, ``finish`` closes the run even when a step raised (then re-raised here)."""
        plan = plan_run(
            destination, run_date, dry_run=dry_run, output=output, settings=self.settings
        )
        delivered = []
        try:
            # as the DAG does: the programs of the plan's shards (none when it stopped them)
            for program in [p for shard in plan["shards"] for p in shard]:
                prepared = prepare_program(plan, program, self.settings)
                if between:
                    between(prepared)
                delivered.append(deliver_program(plan, prepared, self.settings))
        except Exception:
            finish_run(plan, delivered, self.settings)
            raise
        return finish_run(plan, delivered, self.settings)

    def children(self) -> pd.DataFrame:
        """Every child with its program code (the source, for comparisons)."""
        with self.engine.connect() as connection:
            rows = (
                connection.execute(select(Program.code.label("program_code"), Child).join(Program))
                .mappings()
                .all()
            )
        return pd.DataFrame([dict(r) for r in rows])

    def staged(self) -> list[str]:
        """The keys of the encrypted staged artifacts still held in the program database."""
        with self.engine.connect() as connection:
            return list(connection.scalars(select(StagedChunk.key).distinct()))

    def disclosures(self) -> pd.DataFrame:
        """The disclosure log."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(DisclosureEntry).order_by(DisclosureEntry.seq)).all()
        return pd.DataFrame([dict(r._mapping) for r in rows])


def make_world(url: str, root: Path, children: int = CHILDREN) -> World:
    """A copy of the demo world (seeded once per process) at ``url`` (a SQLite file or a
    PostgreSQL database, replaced), with config and state folders under ``root``."""
    config = root / "config"
    shutil.copytree(PROJECT / "config" / "agreements", config / "agreements")
    (config / "destinations").mkdir(parents=True)
    if url.startswith("sqlite:///"):
        seeded_sqlite(Path(url.removeprefix("sqlite:///")), children=children, seed_value=7)
    else:
        seeded_postgres(url, children=children, seed_value=7)
    engine = make_engine(url)
    settings = Settings(database_url=url, config_dir=config, state_dir=root / "state")
    with engine.connect() as connection:
        for code in connection.scalars(select(Recipient.code)):
            ensure_demo_key(settings.keys_file, code)
    create_key_file(settings.staging_key_file)
    return World(settings, engine, config)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A demo world on SQLite."""
    made = make_world(f"sqlite:///{tmp_path / 'program.db'}", tmp_path)
    yield made
    made.engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """A demo world on SQLite, then on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'program.db'}"
    else:
        url = request.getfixturevalue("pg_url")  # made anew from the seeded template
    made = make_world(url, tmp_path)
    yield made
    made.engine.dispose()
