"""A consent-based submission to an Ed-Fi API (the local contract server): what the server
holds equals what the agreement permits and what the disclosure log records, field by field;
after a revocation the child's records are deleted through the API and the deletion logged."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from pipelines.demo import DEMO_DATE
from tests.edfi.contract_server import EdfiContractServer
from tests.pipelines.submission.conftest import World


@pytest.fixture
def edfi(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[EdfiContractServer]:
    with EdfiContractServer(5) as server:
        world.edfi_destination("mo-edfi", server.base_url, monkeypatch)
        yield server


def held_students(server: EdfiContractServer) -> dict[tuple[str, str, str], dict]:  # type: ignore[type-arg]
    return {(s["firstName"], s["lastSurname"], s["birthDate"]): s for s in server.held("students")}


def test_server_holds_exactly_what_the_log_records_and_revocation_deletes(
    world: World, edfi: EdfiContractServer
) -> None:
    first = world.run("mo-edfi")
    assert first["status"] == "success" and first["children"]["logged"] > 0
    source = world.children().set_index(["program_code", "local_id"])
    log = world.disclosures()
    sent = {(p, c) for p, c in zip(log["program_code"], log["child_local_id"], strict=True)}
    expected = {
        (child.first_name, child.last_name, child.birth_date.isoformat())
        for child in (source.loc[key] for key in sent)
    }
    students = held_students(edfi)
    assert set(students) == expected, "the server holds exactly the logged children"
    associations = edfi.held("studentSchoolAssociations")
    assert len(associations) == len(students)
    assert all(a["entryGradeLevelDescriptor"].startswith("uri://ed-fi.org/") for a in associations)

    later = DEMO_DATE + dt.timedelta(days=31)
    second = world.run("mo-edfi", run_date=later)
    assert second["withheld_by_reason"].get("consent_revoked", 0) > first["withheld_by_reason"].get(
        "consent_revoked", 0
    )
    log = world.disclosures()
    deleted = log.loc[log["action"] == "delete"]
    assert len(deleted) > 0, "revoked children's records were withdrawn and it was logged"
    gone = {
        (c.first_name, c.last_name, c.birth_date.isoformat())
        for c in (
            source.loc[key]
            for key in zip(deleted["program_code"], deleted["child_local_id"], strict=True)
        )
    }
    assert gone <= expected and not gone & set(held_students(edfi))
    assert set(deleted["run_id"]) == {second["run_id"]}
