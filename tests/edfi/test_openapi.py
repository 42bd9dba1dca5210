"""Strict local validation against the shipped OpenAPI subsets, and natural keys."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.edfi.descriptors import DescriptorCatalog
from pipelines.edfi.openapi import Problem, ResourceSchemas, UnknownResourceError

GRADE = "uri://ed-fi.org/GradeLevelDescriptor#Preschool/Prekindergarten"
STUDENT = {
    "studentUniqueId": "S1",
    "firstName": "Ana",
    "lastSurname": "Lopez",
    "birthDate": "2022-03-01",
}
SSA = {
    "studentReference": {"studentUniqueId": "S1"},
    "schoolReference": {"schoolId": 255901001},
    "entryDate": "2025-09-01",
    "entryGradeLevelDescriptor": GRADE,
}
SEOA_5 = {
    "educationOrganizationReference": {"educationOrganizationId": 255901},
    "studentReference": {"studentUniqueId": "S1"},
    "sexDescriptor": "uri://ed-fi.org/SexDescriptor#Female",
    "races": [{"raceDescriptor": "uri://ed-fi.org/RaceDescriptor#White"}],
}


@pytest.fixture(scope="module", params=[5, 6], ids=["ds5", "ds6"])
def schemas(request: pytest.FixtureRequest) -> ResourceSchemas:
    return ResourceSchemas.load(request.param, DescriptorCatalog.load())


def test_subsets_describe_the_head_start_resources(schemas: ResourceSchemas) -> None:
    wanted = {
        "students",
        "studentSchoolAssociations",
        "studentEducationOrganizationAssociations",
        "programs",
        "studentProgramAssociations",
        "studentSpecialEducationProgramAssociations",
    }
    assert wanted <= set(schemas.resources)


def test_6x_adds_demographics_and_directories() -> None:
    five = ResourceSchemas.load(5, DescriptorCatalog.load())
    six = ResourceSchemas.load(6, DescriptorCatalog.load())
    assert {"studentDemographics", "studentDirectories"} <= set(six.resources)
    assert "studentDemographics" not in five.resources


@pytest.mark.parametrize(
    ("resource", "body"), [("students", STUDENT), ("studentSchoolAssociations", SSA)]
)
def test_minimal_bodies_validate(schemas: ResourceSchemas, resource: str, body: dict) -> None:
    assert schemas.validate(resource, body) == []


def _with(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    node = changed
    for part in path[:-1]:
        node = node[part]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return changed


_DELETE = object()


@pytest.mark.parametrize(
    ("resource", "body", "expected"),
    [
        ("students", _with(STUDENT, ("nickname",), "x"), Problem("$.nickname", "unknown property")),
        ("students", _with(STUDENT, ("id",), "abc"), Problem("$.id", "unknown property")),
        ("students", _with(STUDENT, ("_etag",), "1"), Problem("$._etag", "unknown property")),
        ("students", _with(STUDENT, ("firstName",), _DELETE), Problem("$.firstName", "required")),
        (
            "students",
            _with(STUDENT, ("studentUniqueId",), "x" * 33),
            Problem("$.studentUniqueId", "maxLength 32"),
        ),
        (
            "students",
            _with(STUDENT, ("birthDate",), "2022-02-30"),
            Problem("$.birthDate", "format date"),
        ),
        (
            "students",
            _with(STUDENT, ("birthDate",), "2022-03"),
            Problem("$.birthDate", "format date"),
        ),
        (
            "studentSchoolAssociations",
            _with(SSA, ("schoolReference", "schoolId"), "255901001"),
            Problem("$.schoolReference.schoolId", "type integer"),
        ),
        (
            "studentSchoolAssociations",
            _with(SSA, ("schoolReference", "link"), {"rel": "School"}),
            Problem("$.schoolReference.link", "unknown property"),
        ),
        (
            "studentSchoolAssociations",
            _with(SSA, ("entryGradeLevelDescriptor",), "uri://ed-fi.org/SexDescriptor#Male"),
            Problem("$.entryGradeLevelDescriptor", "descriptor not in the descriptor list"),
        ),
        (
            "studentSchoolAssociations",
            _with(SSA, ("entryGradeLevelDescriptor",), "uri://ed-fi.org/GradeLevelDescriptor#PK3"),
            Problem("$.entryGradeLevelDescriptor", "descriptor not in the descriptor list"),
        ),
    ],
    ids=[
        "unknown-property",
        "server-id-never-sent",
        "etag-never-sent",
        "required",
        "max-length",
        "impossible-date",
        "month-is-not-a-date",
        "reference-id-type",
        "reference-link-never-sent",
        "descriptor-of-another-type",
        "descriptor-not-listed",
    ],
)
def test_problems(schemas: ResourceSchemas, resource: str, body: dict, expected: Problem) -> None:
    assert expected in schemas.validate(resource, body)


def test_a_5x_demographics_body_is_refused_by_6x() -> None:
    """6.x servers would silently drop these properties; local validation says so."""
    five = ResourceSchemas.load(5, DescriptorCatalog.load())
    six = ResourceSchemas.load(6, DescriptorCatalog.load())
    resource = "studentEducationOrganizationAssociations"
    assert five.validate(resource, SEOA_5) == []
    assert six.validate(resource, SEOA_5) == [
        Problem("$.races", "unknown property"),
        Problem("$.sexDescriptor", "unknown property"),
    ]


def test_unknown_resource() -> None:
    with pytest.raises(UnknownResourceError):
        ResourceSchemas.load(5, DescriptorCatalog.load()).validate("staffs", {})


@pytest.mark.parametrize(
    ("resource", "body", "key"),
    [
        ("students", STUDENT, {"studentUniqueId": "S1"}),
        (
            "studentSchoolAssociations",
            SSA,
            {
                "entryDate": "2025-09-01",
                "schoolReference.schoolId": 255901001,
                "studentReference.studentUniqueId": "S1",
            },
        ),
        (
            "programs",
            {
                "programName": "Head Start",
                "programTypeDescriptor": "T",
                "educationOrganizationReference": {"educationOrganizationId": 1},
            },
            {
                "educationOrganizationReference.educationOrganizationId": 1,
                "programName": "Head Start",
                "programTypeDescriptor": "T",
            },
        ),
    ],
    ids=["student", "school-association", "program"],
)
def test_identity(schemas: ResourceSchemas, resource: str, body: dict, key: dict) -> None:
    assert schemas.identity(resource, body) == key


def test_program_association_identity_has_both_organization_ids(
    schemas: ResourceSchemas,
) -> None:
    assert set(schemas.identity("studentProgramAssociations", {})) == {
        "beginDate",
        "educationOrganizationReference.educationOrganizationId",
        "programReference.educationOrganizationId",
        "programReference.programName",
        "programReference.programTypeDescriptor",
        "studentReference.studentUniqueId",
    }


@settings(max_examples=60, deadline=None)
@given(value=st.text(min_size=76, max_size=120).filter(lambda v: v.strip() and "#" not in v))
def test_problems_never_carry_the_value(value: str) -> None:
    schemas = ResourceSchemas.load(5, DescriptorCatalog.load())
    body = {**STUDENT, "firstName": value, "birthDate": value, "sexDescriptor": value}
    problems = schemas.validate("students", body)
    assert problems
    assert all(value not in str(problem) for problem in problems)
