"""Fault runs: whatever the API does, the run completes, only a bad record is reported, nothing
is sent twice, and what the API holds is exactly what was reported accepted."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from pipelines.destinations.base import ChildKey, TransientDeliveryError
from pipelines.edfi.destination import EdfiDeliveryResult, EdfiDestination
from tests.edfi.conftest import Servers
from tests.edfi.contract_server import EdfiContractServer
from tests.edfi.frames import records_batch, synthetic_frame

CHILDREN = 30
NEPALI = "uri://ed-fi.org/LanguageDescriptor#nep"
# A held request costs the client this long; a normal one on loopback takes milliseconds, so a
# busy machine does not turn it into a timeout (and a held one is never processed anyway).
HOLD_TIMEOUT = 2.0
Make = Callable[..., EdfiDestination]


@pytest.fixture
def server(servers: Servers, data_standard: int) -> EdfiContractServer:
    """A contract server that has not loaded one language descriptor (a 400 for whoever
    carries it)."""
    return servers(data_standard, unknown_descriptors=[NEPALI])


def frame_with_one_bad_record() -> tuple:
    frame, keys = synthetic_frame(CHILDREN, seed=21)
    frame["home_language"] = "eng"
    frame.at[7, "home_language"] = "nep"
    return frame, keys


def held(server: EdfiContractServer) -> set[tuple[str, str]]:
    return {(name, key) for name in server.store for key in server.held_keys(name)}


def accepted(result: EdfiDeliveryResult) -> set[tuple[str, str]]:
    return {
        (r.resource, json.dumps(r.natural_key, sort_keys=True))
        for r in result.resources
        if r.status in ("sent", "unchanged")
    }


def assert_consistent(
    server: EdfiContractServer,
    result: EdfiDeliveryResult,
    keys: list[ChildKey],
    *,
    once: bool = True,
) -> None:
    bad = keys[7]
    assert held(server) == accepted(result)
    assert set(result.rejected) == {bad}
    assert "languageDescriptor" in result.rejected[bad]
    assert "nep" not in result.rejected[bad], "problem messages carry no values"
    rejected = [r for r in result.resources if r.status == "rejected"]
    assert [(r.child_key, r.http_status) for r in rejected] == [(bad, 400)]
    assert result.accepted == set(keys), "the bad child's other resources were accepted"
    if once:
        assert set(server.writes.values()) == {1}, "nothing was written twice"


FAULTS = {
    "429-bursts": (
        lambda f: (
            f.burst(429, 6, retry_after=0.05, after=10),
            f.burst(429, 6, retry_after=0.05, after=60),
        ),
        {"fault 429": 12},
    ),
    "503s": (
        lambda f: (f.burst(503, 4, after=15), f.burst(502, 2, after=70)),
        {"fault 503": 4, "fault 502": 2},
    ),
    "token-expiry-mid-run": (lambda f: f.expire_tokens_after(50), {"token": 2}),
    "dropped-connections-mid-batch": (lambda f: f.drop(3, after=40), {"dropped": 3}),
    "held-responses-and-timeouts": (lambda f: f.hold(2, after=25), {"abandoned": 2}),
    "everything-at-once": (
        lambda f: (
            f.burst(429, 5, retry_after=0.05, after=5),
            f.burst(503, 3, after=30),
            f.drop(2, after=45),
            f.expire_tokens_after(60),
            f.hold(1, after=80),
        ),
        {"fault 429": 5, "fault 503": 3, "dropped": 2, "token": 2, "abandoned": 1},
    ),
}


@pytest.mark.parametrize(("inject", "fired"), FAULTS.values(), ids=FAULTS.keys())
def test_run_completes_under_faults(
    server: EdfiContractServer, make_destination: Make, inject: Callable, fired: dict[str, int]
) -> None:
    frame, keys = frame_with_one_bad_record()
    destination = make_destination(timeout_seconds=HOLD_TIMEOUT)
    inject(server.faults)
    result = destination.deliver(records_batch(frame, keys))
    # a held request is counted once the server sees its client gone: wait for that, no sleep
    server.faults.wait_for(lambda: all(server.requests[n] >= c for n, c in fired.items()))
    assert {name: server.requests[name] for name in fired} == fired, "the faults happened"
    assert_consistent(server, result, keys)
    posts = server.requests["POST data"]
    again = destination.deliver(records_batch(frame, keys, run_id="run-2"))
    retried = [r for r in again.resources if r.status != "unchanged"]
    assert [(r.child_key, r.status) for r in retried] == [(keys[7], "rejected")]
    assert server.requests["POST data"] == posts + 1, "only the refused record is tried again"


def test_token_expiry_mid_run_renews_once(
    server: EdfiContractServer, make_destination: Make
) -> None:
    frame, keys = frame_with_one_bad_record()
    server.faults.expire_tokens_after(50)
    result = make_destination().deliver(records_batch(frame, keys))
    assert_consistent(server, result, keys)
    assert server.tokens_issued == 2


def test_connection_dropped_after_the_server_stored_the_write(
    server: EdfiContractServer, make_destination: Make
) -> None:
    """The retry is an upsert: the API holds one copy, answered 200 the second time."""
    frame, keys = frame_with_one_bad_record()
    server.faults.drop(1, after_processing=True, after=20)
    result = make_destination().deliver(records_batch(frame, keys))
    assert_consistent(server, result, keys, once=False)
    twice = [key for key, count in server.writes.items() if count > 1]
    assert len(twice) == 1
    resource, natural = twice[0]
    assert len([k for k in server.held_keys(resource) if k == natural]) == 1


def test_when_retries_run_out_the_batch_stops_and_a_rerun_completes_without_duplicates(
    server: EdfiContractServer, make_destination: Make
) -> None:
    frame, keys = frame_with_one_bad_record()
    destination = make_destination(max_attempts=3)
    server.faults.burst(503, 1000, after=45)
    with pytest.raises(TransientDeliveryError, match="HTTP 503 after 3 attempts"):
        destination.deliver(records_batch(frame, keys))
    partial = held(server)
    assert partial and len(partial) < 100
    server.faults.clear()
    result = destination.deliver(records_batch(frame, keys, run_id="run-2"))
    assert_consistent(server, result, keys)
    unchanged = {
        (r.resource, json.dumps(r.natural_key, sort_keys=True))
        for r in result.resources
        if r.status == "unchanged"
    }
    assert unchanged == partial, "what the first run got accepted was not sent again"
