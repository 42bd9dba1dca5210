"""The client against the contract server: discovery, one shared token, retries, problems."""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from pipelines.destinations.base import TerminalDeliveryError, TransientDeliveryError
from pipelines.edfi.client import (
    ClientCredentials,
    EdfiClient,
    TokenAuth,
    load_credentials,
    problem_message,
)
from pipelines.edfi.settings import Credentials
from tests.edfi.conftest import CREDENTIALS
from tests.edfi.contract_server import EdfiContractServer
from tests.fixtures import DMS_CASES


def student(i: int) -> dict[str, str]:
    return {
        "studentUniqueId": f"S{i:05d}",
        "firstName": "Ana",
        "lastSurname": "Lopez",
        "birthDate": "2022-03-01",
    }


class Sleeps:
    """Records what the retry loop waits (and really waits, briefly)."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self.lock:
            self.waits.append(seconds)
        time.sleep(min(seconds, 0.5))


def client_for(server: EdfiContractServer, **kwargs: object) -> EdfiClient:
    options: dict = {"concurrency": 8, "timeout_seconds": 5.0, "max_backoff_seconds": 0.05}
    options.update(kwargs)
    return EdfiClient(server.base_url, CREDENTIALS, **options)


@pytest.fixture
def data_standard() -> int:
    """The client does not depend on the Data Standard but for its URLs (tested on both)."""
    return 5


@pytest.mark.parametrize("standard", [5, 6])
def test_urls_come_from_the_discovery_document(standard: int) -> None:
    with EdfiContractServer(standard) as server, client_for(server) as client:
        assert client.resource_url("students") == server.data_url("students")
        assert client.urls["oauth"] == f"{server.base_url}oauth/token"
        assert client.post("students", student(1)).status == 201


def test_school_year_goes_into_the_data_url(server: EdfiContractServer) -> None:
    with client_for(server, school_year=2027) as client:
        assert client.resource_url("students").endswith(f"{server.prefix}/2027/ed-fi/students")


def test_one_token_is_shared_by_all_workers(server: EdfiContractServer) -> None:
    with client_for(server) as client, ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda i: client.post("students", student(i)), range(80)))
    assert {o.status for o in outcomes} == {201}
    assert server.tokens_issued == 1


def test_when_tokens_expire_mid_run_then_renewed_once_for_everyone(
    server: EdfiContractServer,
) -> None:
    server.faults.expire_tokens_after(30)
    with client_for(server) as client, ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda i: client.post("students", student(i)), range(120)))
    assert {o.status for o in outcomes} == {201}
    assert server.tokens_issued == 2
    assert len(server.held("students")) == 120


def test_token_renewed_before_it_expires(server: EdfiContractServer) -> None:
    now = [1000.0]
    auth = TokenAuth(
        lambda: f"{server.base_url}oauth/token",
        CREDENTIALS,
        leeway_seconds=30,
        clock=lambda: now[0],
    )
    with httpx.Client(auth=auth) as http:
        assert http.get(server.data_url("students")).status_code == 200
        now[0] += 1800 - 31
        assert http.get(server.data_url("students")).status_code == 200
        assert auth.tokens_fetched == 1
        now[0] += 2
        assert http.get(server.data_url("students")).status_code == 200
    assert auth.tokens_fetched == 2 == server.tokens_issued


def test_429_waits_what_retry_after_says(server: EdfiContractServer) -> None:
    sleeps = Sleeps()
    server.faults.burst(429, 3, retry_after=0.2)
    with client_for(server, sleep=sleeps) as client:
        assert client.post("students", student(1)).status == 201
    assert sleeps.waits == [0.2, 0.2, 0.2]
    assert server.writes[("students", server.key_of("students", student(1)))] == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_retried_with_backoff(server: EdfiContractServer, status: int) -> None:
    sleeps = Sleeps()
    server.faults.burst(status, 2)
    with client_for(server, sleep=sleeps) as client:
        assert client.post("students", student(1)).status == 201
    assert len(sleeps.waits) == 2 and all(0 <= w <= 0.05 for w in sleeps.waits)


def test_timeout_retried_and_the_abandoned_request_not_processed(
    server: EdfiContractServer,
) -> None:
    server.faults.hold(1)
    with client_for(server, timeout_seconds=1.0) as client:
        assert client.post("students", student(1)).status == 201
    server.faults.wait_for(lambda: server.requests["abandoned"] >= 1)
    assert server.requests["abandoned"] == 1
    assert server.writes[("students", server.key_of("students", student(1)))] == 1


@pytest.mark.parametrize("after_processing", [False, True], ids=["before", "after"])
def test_dropped_connection_retried(server: EdfiContractServer, after_processing: bool) -> None:
    server.faults.drop(1, after_processing=after_processing)
    with client_for(server) as client:
        outcome = client.post("students", student(1))
    assert outcome.status == (200 if after_processing else 201)
    assert server.requests["dropped"] == 1
    assert len(server.held("students")) == 1
    key = ("students", server.key_of("students", student(1)))
    assert server.writes[key] == (2 if after_processing else 1)


def test_400_not_retried_and_problem_has_paths_not_values(server: EdfiContractServer) -> None:
    body = {**student(1), "firstName": "  Zelda  ", "birthSexDescriptor": "uri://x/Y#Secret"}
    with client_for(server) as client:
        outcome = client.post("students", body)
    assert outcome.status == 400 and not outcome.ok
    assert server.requests["POST data"] == 1
    assert "$.firstName" in outcome.problem and "Zelda" not in outcome.problem
    assert "Secret" not in outcome.problem


def test_when_retries_run_out_then_transient_error_without_values(
    server: EdfiContractServer,
) -> None:
    server.faults.burst(503, 10)
    with (
        client_for(server, max_attempts=3) as client,
        pytest.raises(TransientDeliveryError, match=r"HTTP 503 after 3 attempts") as caught,
    ):
        client.post("students", student(1))
    assert "S00001" not in str(caught.value)
    assert server.requests["fault 503"] == 3


def test_unreachable_api_is_transient() -> None:
    closed = "http://127.0.0.1:9/"
    client = EdfiClient(closed, CREDENTIALS, max_attempts=2, max_backoff_seconds=0.01)
    with client, pytest.raises(TransientDeliveryError, match="ConnectError after 2 attempts"):
        client.post("students", student(1))


def test_refused_credentials_are_terminal(server: EdfiContractServer) -> None:
    wrong = ClientCredentials("datashare", "not-the-secret")
    client = EdfiClient(server.base_url, wrong)
    with client, pytest.raises(TerminalDeliveryError, match=r"request refused \(401\)") as e:
        client.post("students", student(1))
    assert "not-the-secret" not in str(e.value)


def test_broken_discovery_document_is_terminal(server: EdfiContractServer) -> None:
    client = EdfiClient(server.base_url + "metadata", CREDENTIALS)
    with client, pytest.raises(TerminalDeliveryError, match="no discovery document"):
        client.post("students", student(1))


def test_credentials_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDFI_TEST_KEY", "key-1")
    monkeypatch.setenv("EDFI_TEST_SECRET", "secret-1")
    spec = Credentials(client_id_env="EDFI_TEST_KEY", client_secret_env="EDFI_TEST_SECRET")
    loaded = load_credentials(spec)
    assert loaded == ClientCredentials("key-1", "secret-1")
    assert "secret-1" not in repr(loaded)


def test_missing_environment_credentials_name_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EDFI_TEST_SECRET", raising=False)
    monkeypatch.setenv("EDFI_TEST_KEY", "key-1")
    spec = Credentials(client_id_env="EDFI_TEST_KEY", client_secret_env="EDFI_TEST_SECRET")
    with pytest.raises(TerminalDeliveryError, match="EDFI_TEST_SECRET"):
        load_credentials(spec)


def test_credentials_from_an_airflow_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_EDFI_TEST", "http://key-2:secret-value-2@api.example.org")
    loaded = load_credentials(Credentials(airflow_conn_id="edfi_test"))
    assert loaded == ClientCredentials("key-2", "secret-value-2")


def test_missing_airflow_connection_is_terminal() -> None:
    with pytest.raises(TerminalDeliveryError, match="edfi_nowhere is not defined"):
        load_credentials(Credentials(airflow_conn_id="edfi_nowhere"))


def _dms_cases() -> list[dict]:
    cases = json.loads(DMS_CASES.read_text("utf-8"))
    return [
        c
        for c in cases
        if isinstance(c.get("expected_response_body"), dict)
        and c["expected_response_body"].get("status")
    ]


@pytest.mark.parametrize("case", _dms_cases(), ids=lambda c: c["scenario"][:60])
def test_problem_message_of_every_dms_problem_body_drops_quoted_values(case: dict) -> None:
    body = case["expected_response_body"]
    message = problem_message(body["status"], json.dumps(body).encode())
    assert message.startswith(str(body["status"]))
    texts = [
        *(m for v in body.get("validationErrors", {}).values() for m in v),
        *body.get("errors", []),
        body.get("detail") or "",
    ]
    for quoted in re.findall(r"'([^']+)'", " ".join(texts)):
        assert f"'{quoted}'" not in message
    for value in re.findall(r"=\s*([^,;)\s]+)", " ".join(texts)):
        assert f"= {value}" not in message
    for path in body.get("validationErrors", {}):
        assert path in message
