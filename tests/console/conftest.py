"""Console fixtures: one seeded world with runs, Airflow's own auth manager and its tokens."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.console.world import console_world
from tests.pipelines.submission.conftest import World

# Every Airflow process (and this test process) signs and checks tokens with one secret.
os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", "datashare-console-tests-" + "0" * 40)

USERS = {  # login name -> SimpleAuthManager role
    "vera": "VIEWER",
    "uma": "USER",
    "otto": "OP",
    "ada": "ADMIN",
    "nora": None,
}


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The demo world with runs of three destinations (shared: tests restore what they change)."""
    made = console_world(tmp_path_factory.mktemp("console-world"))
    yield made
    made.engine.dispose()


@pytest.fixture(scope="session")
def tokens() -> dict[str, str]:
    """A real token from Airflow's auth manager for each user (the api-server's own kind)."""
    from airflow import settings
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.models.revoked_token import RevokedToken

    # token validation checks Airflow's revoked-token table in its metadata database
    RevokedToken.__table__.create(settings.engine, checkfirst=True)
    manager = create_auth_manager()
    return {
        name: manager.generate_jwt(SimpleAuthManagerUser(username=name, role=role))
        for name, role in USERS.items()
    }


@pytest.fixture(scope="session")
def app(world: World):  # type: ignore[no-untyped-def]
    """The console app on the world's settings."""
    from console.app import create_app

    return create_app(world.settings)


@pytest.fixture
def client(app, tokens: dict[str, str]) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """A client with no login (Airflow's auth manager is up, as in the api-server)."""
    with TestClient(app, base_url="http://console.test", follow_redirects=False) as made:
        yield made


def login(client: TestClient, token: str) -> TestClient:
    """Use ``token`` as Airflow's login cookie, as a browser would after logging in."""
    client.cookies.clear()
    client.cookies.set("_token", token)
    return client
