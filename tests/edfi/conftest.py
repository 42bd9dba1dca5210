"""Fixtures for the Ed-Fi destination: a contract server per module (reset for each test), a
ledger, a destination."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from pipelines.db import make_engine
from pipelines.edfi.client import ClientCredentials
from pipelines.edfi.destination import EdfiDestination
from pipelines.edfi.settings import EdfiSettings
from schemas import Base
from tests.edfi.contract_server import EdfiContractServer

SCHOOL, ORGANIZATION = 255901001, 255901
ORGANIZATIONS = {"default": {"school_id": SCHOOL, "education_organization_id": ORGANIZATION}}
CREDENTIALS = ClientCredentials("datashare", "datashare-secret")


def make_settings(
    base_url: str = "http://127.0.0.1:9/", data_standard: int = 5, **overrides: Any
) -> EdfiSettings:
    """Settings for tests: quick retries, short timeouts."""
    values: dict[str, Any] = {
        "name": "edfi-test",
        "base_url": base_url,
        "data_standard": data_standard,
        "education_organizations": ORGANIZATIONS,
        "concurrency": 4,
        "timeout_seconds": 5.0,
        "max_attempts": 6,
        "max_backoff_seconds": 0.05,
    }
    values.update(overrides)
    return EdfiSettings.model_validate(values)


@pytest.fixture(params=[5, 6], ids=["ds5", "ds6"])
def data_standard(request: pytest.FixtureRequest) -> int:
    """Data Standard 5.x (ODS/API 7) and 6.x (Ed-Fi API 8) in turn."""
    return int(request.param)


Servers = Callable[..., EdfiContractServer]


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    """Contract servers started once per module (one per Data Standard and options), handed
    out reset to new for each test."""
    running: dict[str, EdfiContractServer] = {}

    def get(data_standard: int, **options: Any) -> EdfiContractServer:
        key = repr((data_standard, sorted(options.items())))
        if key not in running:
            running[key] = EdfiContractServer(data_standard, **options).start()
        running[key].reset()
        return running[key]

    yield get
    for server in running.values():
        server.stop()


@pytest.fixture
def server(servers: Servers, data_standard: int) -> EdfiContractServer:
    """A running contract server of that Data Standard, as new."""
    return servers(data_standard)


@pytest.fixture
def ledger_engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite database with the ledger tables."""
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def make_destination(
    server: EdfiContractServer, ledger_engine: Engine, data_standard: int
) -> Iterator[Callable[..., EdfiDestination]]:
    """Builds destinations on ``server`` (settings overridable); closes them afterwards."""
    made: list[EdfiDestination] = []

    def make(engine: Engine | None = None, **overrides: Any) -> EdfiDestination:
        settings = make_settings(server.base_url, data_standard, **overrides)
        destination = EdfiDestination(settings, engine or ledger_engine, credentials=CREDENTIALS)
        made.append(destination)
        return destination

    yield make
    for destination in made:
        destination.close()
