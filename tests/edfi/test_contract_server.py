"""The contract server itself: the rules the destination is tested against, with
problem-details bodies shaped like the Ed-Fi API 8 end-to-end cases."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

import pipelines.edfi as edfi
from tests.edfi.conftest import ORGANIZATION, SCHOOL
from tests.edfi.contract_server import EdfiContractServer
from tests.fixtures import DMS_CASES

GRADE = "uri://ed-fi.org/GradeLevelDescriptor#Preschool/Prekindergarten"
HEAD_START = "uri://ed-fi.org/ProgramTypeDescriptor#Head Start"
STUDENT = {
    "studentUniqueId": "S1",
    "firstName": "Ana",
    "lastSurname": "Lopez",
    "birthDate": "2022-03-01",
}
REFS = {
    "studentReference": {"studentUniqueId": "S1"},
    "educationOrganizationReference": {"educationOrganizationId": ORGANIZATION},
}
SSA = {
    "studentReference": {"studentUniqueId": "S1"},
    "schoolReference": {"schoolId": SCHOOL},
    "entryDate": "2025-09-01",
    "entryGradeLevelDescriptor": GRADE,
}
PROGRAM = {
    "programName": "Head Start",
    "programTypeDescriptor": HEAD_START,
    "educationOrganizationReference": {"educationOrganizationId": ORGANIZATION},
}
SPA = {
    **REFS,
    "beginDate": "2025-09-01",
    "programReference": {
        "educationOrganizationId": ORGANIZATION,
        "programName": "Head Start",
        "programTypeDescriptor": HEAD_START,
    },
}


@pytest.fixture
def api(server: EdfiContractServer) -> Iterator[httpx.Client]:
    token = httpx.post(
        f"{server.base_url}oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("datashare", "datashare-secret"),
    ).json()["access_token"]
    with httpx.Client(
        base_url=f"{server.base_url.rstrip('/')}{server.prefix}/ed-fi/",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


def dms_keys() -> set[str]:
    """The keys most problem-details bodies of the DMS end-to-end cases have."""
    cases = json.loads(DMS_CASES.read_text("utf-8"))
    shapes = Counter(
        frozenset(c["expected_response_body"])
        for c in cases
        if isinstance(c.get("expected_response_body"), dict)
        and "type" in c["expected_response_body"]
    )
    return set(shapes.most_common(1)[0][0])


@pytest.mark.parametrize(
    ("steps", "status", "type_prefix", "path"),
    [
        (
            [("students", {**STUDENT, "nickname": "x"})],
            400,
            "urn:ed-fi:api:bad-request:data-validation-failed",
            "$.nickname",
        ),
        (
            [("students", {k: v for k, v in STUDENT.items() if k != "firstName"})],
            400,
            "urn:ed-fi:api:bad-request:data-validation-failed",
            "$.firstName",
        ),
        (
            [("students", {**STUDENT, "birthSexDescriptor": "uri://ed-fi.org/SexDescriptor#X"})],
            400,
            "urn:ed-fi:api:bad-request",
            "$.birthSexDescriptor",
        ),
        (
            [("studentSchoolAssociations", SSA)],
            409,
            "urn:ed-fi:api:data-conflict:unresolved-reference",
            "$.studentReference",
        ),
        (
            [
                ("students", STUDENT),
                ("studentSchoolAssociations", {**SSA, "schoolReference": {"schoolId": 1}}),
            ],
            409,
            "urn:ed-fi:api:data-conflict:unresolved-reference",
            "$.schoolReference",
        ),
        (
            [
                ("students", STUDENT),
                ("studentSchoolAssociations", SSA),
                ("studentProgramAssociations", SPA),
            ],
            409,
            "urn:ed-fi:api:data-conflict:unresolved-reference",
            "$.programReference",
        ),
        (
            [("students", STUDENT), ("studentEducationOrganizationAssociations", REFS)],
            403,
            "urn:ed-fi:api:security:authorization",
            None,
        ),
    ],
    ids=[
        "unknown-property",
        "required",
        "unknown-descriptor",
        "unknown-student",
        "unknown-school",
        "unknown-program",
        "association-before-school-association",
    ],
)
def test_refusals_are_problem_details_shaped_like_dms(
    api: httpx.Client, steps: list, status: int, type_prefix: str, path: str | None
) -> None:
    for resource, body in steps[:-1]:
        assert api.post(resource, json=body).status_code == 201
    resource, body = steps[-1]
    response = api.post(resource, json=body)
    assert response.status_code == status
    problem = response.json()
    assert set(problem) == dms_keys()
    assert problem["type"].startswith(type_prefix) and problem["status"] == status
    if path:
        assert path in problem["validationErrors"]
    else:
        assert "StudentSchoolAssociation" in problem["detail"]


def test_upsert_on_natural_key_and_dependency_order(api: httpx.Client) -> None:
    created = api.post("students", json=STUDENT)
    assert created.status_code == 201 and created.headers["Location"]
    assert api.post("students", json={**STUDENT, "firstName": "Anna"}).status_code == 200
    assert len(api.get("students").json()) == 1
    assert api.post("studentSchoolAssociations", json=SSA).status_code == 201
    assert api.post("studentEducationOrganizationAssociations", json=REFS).status_code == 201
    assert api.post("programs", json=PROGRAM).status_code == 201
    assert api.post("studentProgramAssociations", json=SPA).status_code == 201
    found = api.get("students", params={"studentUniqueId": "S1"}).json()
    assert [s["firstName"] for s in found] == ["Anna"]


def test_delete_refused_while_referenced(api: httpx.Client) -> None:
    student_id = api.post("students", json=STUDENT).headers["Location"].rsplit("/", 1)[-1]
    ssa_id = api.post("studentSchoolAssociations", json=SSA).headers["Location"].rsplit("/")[-1]
    refused = api.delete(f"students/{student_id}")
    assert refused.status_code == 409
    assert refused.json()["type"] == "urn:ed-fi:api:data-conflict:dependent-item-exists"
    assert api.delete(f"studentSchoolAssociations/{ssa_id}").status_code == 204
    assert api.delete(f"students/{student_id}").status_code == 204
    assert api.delete(f"students/{student_id}").status_code == 404


def test_data_needs_a_valid_token(server: EdfiContractServer) -> None:
    response = httpx.post(server.data_url("students"), json=STUDENT)
    assert response.status_code == 401
    refused = httpx.post(
        f"{server.base_url}oauth/token",
        auth=("datashare", "wrong"),
        data={"grant_type": "client_credentials"},
    )
    assert refused.status_code == 401


def test_lightbeam_metadata_is_served(server: EdfiContractServer) -> None:
    root = httpx.get(server.base_url).json()
    dependencies = httpx.get(root["urls"]["dependencies"]).json()
    order = {d["resource"]: d["order"] for d in dependencies}
    assert order["/ed-fi/programs"] < order["/ed-fi/students"]
    assert order["/ed-fi/students"] < order["/ed-fi/studentSchoolAssociations"]
    assert order["/ed-fi/studentSchoolAssociations"] < order["/ed-fi/studentProgramAssociations"]
    assert root["urls"]["dataManagementApi"].endswith(server.prefix)


def test_public_surface_is_pinned() -> None:
    assert sorted(edfi.__all__) == sorted(
        [
            "ClientCredentials",
            "DescriptorCatalog",
            "DryRun",
            "EdfiClient",
            "EdfiDeliveryResult",
            "EdfiDestination",
            "EdfiMapper",
            "EdfiSettings",
            "Mapped",
            "MappingError",
            "NotSent",
            "Outcome",
            "Payload",
            "Problem",
            "Reason",
            "ResourceResult",
            "ResourceSchemas",
            "TokenAuth",
            "UnknownDescriptorError",
            "WithdrawResult",
        ]
    )
    assert all(hasattr(edfi, name) for name in edfi.__all__)


def test_a_held_request_released_by_the_test_is_processed_once(
    server: EdfiContractServer, api: httpx.Client
) -> None:
    server.faults.hold(1)
    answers: list[int] = []
    sender = threading.Thread(
        target=lambda: answers.append(api.post("students", json=STUDENT).status_code)
    )
    sender.start()
    server.faults.wait_for(lambda: server.requests["held"] == 1)
    assert not server.held("students"), "held: not processed yet"
    server.faults.release()
    sender.join(timeout=30)
    assert answers == [201] and len(server.held("students")) == 1
    assert server.requests["abandoned"] == 0


def test_a_held_request_whose_client_gives_up_is_never_processed(
    server: EdfiContractServer, api: httpx.Client
) -> None:
    server.faults.hold(1)
    with pytest.raises(httpx.ReadTimeout):
        api.post("students", json=STUDENT, timeout=httpx.Timeout(5.0, read=0.5))
    server.faults.wait_for(lambda: server.requests["abandoned"] == 1)
    server.faults.release()
    assert not server.held("students") and not server.writes
