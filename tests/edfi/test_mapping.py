"""Mapping permitted rows to Ed-Fi resources: only permitted fields, never a placeholder."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.destinations.base import Artifact, Batch
from pipelines.edfi import descriptors as d
from pipelines.edfi.mapping import (
    RESOURCE_ORDER,
    SSA,
    STUDENTS,
    EdfiMapper,
    Mapped,
    MappingError,
    NotSent,
    Reason,
)
from pipelines.edfi.rows import Row
from privacy.fields import CATALOG
from schemas.codes import ProgramType
from tests.edfi.conftest import make_settings
from tests.edfi.contract_server import EdfiContractServer
from tests.edfi.frames import records_batch, synthetic_frame
from tests.fixtures import EDFI_REFERENCE

PROGRAM = "VT-HS-01"
VT_GRADE = "uri://education.vermont.gov/GradeLevelDescriptor"


def mapped(frame: pd.DataFrame, keys: list, data_standard: int = 5, **overrides: Any) -> Mapped:
    mapper = EdfiMapper(make_settings(data_standard=data_standard, **overrides))
    return mapper.map_frame(frame, keys, PROGRAM)


def only(frame: pd.DataFrame, *dropped: str) -> pd.DataFrame:
    return frame.drop(columns=list(dropped))


def bodies(result: Mapped, resource: str) -> list[dict[str, Any]]:
    return [p.body for p in result.payloads if p.resource == resource]


def leaves(node: Any) -> Iterator[tuple[str, Any]]:
    """(key, value) of every scalar in a JSON body."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict | list):
                yield from leaves(value)
            else:
                yield key, value
    elif isinstance(node, list):
        for item in node:
            yield from leaves(item)


@pytest.fixture(scope="module")
def listed_descriptors() -> set[str]:
    with (EDFI_REFERENCE / "descriptors-ds-5.2.0-flat.csv").open(newline="", encoding="utf-8") as f:
        return {row["uri"] for row in csv.DictReader(f)}


@pytest.mark.parametrize("program_type", list(ProgramType))
def test_every_payload_validates_against_the_shared_subset_and_list(
    data_standard: int, program_type: ProgramType, listed_descriptors: set[str]
) -> None:
    """Checked by the contract server's own validator (the upstream reference files, unknown
    properties forbidden) and against the reference descriptor CSV, not by the product's code."""
    frame, keys = synthetic_frame(150, program_type=program_type, seed=3)
    result = mapped(frame, keys, data_standard)
    oracle = EdfiContractServer(data_standard)
    assert {p.resource for p in result.payloads} >= {"programs", STUDENTS, SSA}
    for payload in result.payloads:
        assert oracle._schema_errors(payload.resource, payload.body) == {}, payload.resource
        assert oracle._descriptor_errors(payload.body) == {}, payload.resource
        for key, value in leaves(payload.body):
            if key.endswith("Descriptor"):
                assert value in listed_descriptors
    assert not [n for n in result.not_sent if n.reason is Reason.LOCAL_VALIDATION_FAILED]


def test_resources_follow_the_data_standard(data_standard: int) -> None:
    frame, keys = synthetic_frame(60, seed=5)
    result = mapped(frame, keys, data_standard)
    resources = {p.resource for p in result.payloads}
    organization = bodies(result, "studentEducationOrganizationAssociations")
    if data_standard == 5:
        assert "studentDemographics" not in resources and "studentDirectories" not in resources
        assert any("sexDescriptor" in b and "addresses" in b for b in organization)
    else:
        assert {"studentDemographics", "studentDirectories"} <= resources
        assert all(
            set(b) <= {"educationOrganizationReference", "studentReference", "studentIndicators"}
            for b in organization
        )
    order = RESOURCE_ORDER[data_standard]
    for key in keys:
        positions = [order.index(p.resource) for p in result.payloads if p.child_key == key]
        assert positions == sorted(positions), "a child's payloads come in dependency order"
    assert [name for name, _ in result.by_resource(order)][:3] == ["programs", STUDENTS, SSA]


@pytest.mark.parametrize(
    ("dropped", "resource", "code"),
    [
        (("first_name",), STUDENTS, "EDFI_REQUIRED_FIELD_NOT_PERMITTED:first_name"),
        (("last_name",), STUDENTS, "EDFI_REQUIRED_FIELD_NOT_PERMITTED:last_name"),
        (("birth_date",), STUDENTS, "EDFI_REQUIRED_FIELD_NOT_PERMITTED:birth_date"),
        (
            ("state_student_id", "child_local_id"),
            STUDENTS,
            "EDFI_REQUIRED_FIELD_NOT_PERMITTED:state_student_id|child_local_id",
        ),
        (("entry_date",), SSA, "EDFI_REQUIRED_FIELD_NOT_PERMITTED:entry_date"),
    ],
    ids=["first-name", "last-name", "birth-date", "no-identifier", "entry-date"],
)
def test_when_required_field_not_permitted_then_child_sends_nothing_and_audit_says_why(
    data_standard: int, dropped: tuple[str, ...], resource: str, code: str
) -> None:
    frame, keys = synthetic_frame(5)
    result = mapped(only(frame, *dropped), keys, data_standard)
    assert result.payloads == []
    for key in keys:
        reasons = {n.code for n in result.not_sent if n.child_key == key and n.resource_withheld}
        other = SSA if resource == STUDENTS else STUDENTS
        assert code in reasons
        assert f"EDFI_DEPENDS_ON_NOT_SENT:{resource}" in reasons, other


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("first_name", None, "EDFI_REQUIRED_VALUE_MISSING:first_name"),
        ("first_name", "   ", "EDFI_REQUIRED_VALUE_MISSING:first_name"),
        ("birth_date", "2022-03", "EDFI_VALUE_NOT_EXACT:birth_date"),
        ("birth_date", 2022, "EDFI_VALUE_NOT_EXACT:birth_date"),
        ("first_name", "A" * 80, "EDFI_LOCAL_VALIDATION_FAILED:$.firstName: maxLength 75"),
    ],
    ids=["null", "blank", "month-only", "year-only", "too-long"],
)
def test_when_one_childs_value_unusable_then_only_that_child_withheld(
    field: str, value: Any, code: str
) -> None:
    frame, keys = synthetic_frame(4)
    frame[field] = frame[field].astype(object)
    frame.at[1, field] = value
    result = mapped(frame, keys)
    withheld = [n for n in result.not_sent if n.child_key == keys[1] and n.resource == STUDENTS]
    assert [n.code for n in withheld] == [code]
    assert {p.child_key for p in result.payloads if p.child_key} == {keys[0], keys[2], keys[3]}
    assert all(str(value) not in n.field for n in result.not_sent if value)


@pytest.mark.parametrize(
    ("row", "prefix", "expected"),
    [
        ({"state_student_id": "9000000001", "child_local_id": "C1"}, True, "9000000001"),
        ({"state_student_id": None, "child_local_id": "C1"}, True, f"{PROGRAM}-C1"),
        ({"child_local_id": "C1"}, True, f"{PROGRAM}-C1"),
        ({"child_local_id": "C1"}, False, "C1"),
        ({"child_local_id": "k2026-ABCDEFGHIJKLMNOP"}, True, "k2026-ABCDEFGHIJKLMNOP"),
        ({"state_student_id": "9000000001"}, True, "9000000001"),
    ],
    ids=[
        "state-id-first",
        "state-id-unknown-falls-back",
        "local-id-prefixed",
        "prefix-off",
        "pseudonym-as-is",
        "state-id-only",
    ],
)
def test_student_unique_id(row: dict[str, Any], prefix: bool, expected: str) -> None:
    frame, keys = synthetic_frame(1)
    frame = frame.drop(columns=["state_student_id", "child_local_id"])
    for name, value in row.items():
        frame[name] = [value]
    result = mapped(frame, keys, student_id_program_prefix=prefix)
    assert bodies(result, STUDENTS)[0]["studentUniqueId"] == expected
    unique = {b["studentReference"]["studentUniqueId"] for b in bodies(result, SSA)}
    assert unique == {expected}


def test_a_prefixed_local_id_needs_the_program_code_permitted() -> None:
    frame, keys = synthetic_frame(2)
    frame = frame.drop(columns=["state_student_id", "program_code"])
    result = mapped(frame, keys)
    assert result.payloads == []
    assert "EDFI_REQUIRED_FIELD_NOT_PERMITTED:program_code" in {n.code for n in result.not_sent}
    unprefixed = mapped(frame, keys, student_id_program_prefix=False)
    assert {b["studentUniqueId"] for b in bodies(unprefixed, STUDENTS)} == {"C000000", "C000001"}


def test_when_only_state_id_permitted_and_unknown_then_not_sent() -> None:
    frame, keys = synthetic_frame(1)
    frame = frame.drop(columns=["child_local_id"])
    frame["state_student_id"] = [None]
    result = mapped(frame, keys)
    assert result.payloads == []
    assert "EDFI_REQUIRED_VALUE_MISSING:state_student_id" in {n.code for n in result.not_sent}


@pytest.mark.parametrize(
    ("program_type", "age_days", "grade"),
    [
        (ProgramType.EARLY_HEAD_START, 400, d.INFANT_TODDLER),
        (ProgramType.HEAD_START, 1500, d.PRESCHOOL),
        (ProgramType.HEAD_START, 900, d.INFANT_TODDLER),
        (ProgramType.MIGRANT_SEASONAL, 600, d.INFANT_TODDLER),
        (ProgramType.MIGRANT_SEASONAL, 1300, d.PRESCHOOL),
        (ProgramType.AIAN, 1400, d.PRESCHOOL),
    ],
    ids=[
        "ehs-infant",
        "hs-preschool",
        "hs-under-three-by-age",
        "mshs-infant",
        "mshs-preschool",
        "aian-preschool",
    ],
)
def test_early_childhood_grade_level_by_age_at_entry(
    program_type: ProgramType, age_days: int, grade: str
) -> None:
    frame, keys = synthetic_frame(1, program_type=program_type)
    frame["birth_date"] = [frame.at[0, "entry_date"] - dt.timedelta(days=age_days)]
    result = mapped(frame, keys)
    assert bodies(result, SSA)[0]["entryGradeLevelDescriptor"].endswith(f"#{grade}")


@pytest.mark.parametrize(
    ("program_type", "grade"),
    [
        (ProgramType.EARLY_HEAD_START, d.INFANT_TODDLER),
        (ProgramType.HEAD_START, d.PRESCHOOL),
        (ProgramType.MIGRANT_SEASONAL, d.PRESCHOOL),
        (ProgramType.AIAN, d.PRESCHOOL),
    ],
)
def test_grade_from_program_type_without_a_birth_date(
    program_type: ProgramType, grade: str
) -> None:
    """Disability descriptors are chosen by grade even when no birth date is permitted."""
    frame, keys = synthetic_frame(1, program_type=program_type)
    frame = frame.drop(columns=["birth_date"])
    row = Row(
        frame.to_dict("records")[0],
        frozenset(frame.columns),
        keys[0],
        PROGRAM,
        make_settings().organization(PROGRAM),
    )
    assert EdfiMapper(make_settings())._grade(row) == grade


def test_disability_data_only_when_permitted(data_standard: int) -> None:
    frame, keys = synthetic_frame(80, seed=11)
    with_disability = mapped(frame, keys, data_standard)
    special = bodies(with_disability, "studentSpecialEducationProgramAssociations")
    assert special and all(b["ideaEligibility"] is True for b in special)
    assert {b["programReference"]["programName"] for b in special} == {
        "Preschool Special Education"
    }
    without = mapped(only(frame, "disability", "iep", "ifsp"), keys, data_standard)
    assert not bodies(without, "studentSpecialEducationProgramAssociations")
    assert all(key != "disabilityDescriptor" for p in without.payloads for key, _ in leaves(p.body))


def test_infants_with_ifsp_go_to_part_c_program() -> None:
    frame, keys = synthetic_frame(60, program_type=ProgramType.EARLY_HEAD_START, seed=2)
    result = mapped(frame, keys)
    special = bodies(result, "studentSpecialEducationProgramAssociations")
    assert special
    assert {b["programReference"]["programTypeDescriptor"].split("#")[1] for b in special} == {
        "Early Intervention Services Part C"
    }
    assert {b["disabilities"][0]["disabilityDescriptor"].split("#")[1] for b in special} == {
        d.DISABILITY_INFANT_TODDLER
    }


def test_programs_are_sent_once_and_first() -> None:
    frame, keys = synthetic_frame(40)
    result = mapped(frame, keys)
    programs = bodies(result, "programs")
    assert result.payloads[0].resource == "programs"
    assert len(programs) == len({p["programName"] for p in programs})
    referenced = {
        b["programReference"]["programName"]
        for p in result.payloads
        for b in [p.body]
        if "programReference" in b
    }
    assert referenced == {p["programName"] for p in programs}


@pytest.mark.parametrize(
    ("field", "value", "code", "resource"),
    [
        ("race", "two_or_more", "EDFI_VALUE_NOT_MAPPABLE:race", "demographics"),
        ("home_language", "zzz", "EDFI_VALUE_NOT_MAPPABLE:home_language", "demographics"),
        ("address_zip", "054", "EDFI_VALUE_NOT_EXACT:address_zip", "directory"),
        ("address_street", None, "EDFI_REQUIRED_VALUE_MISSING:address_street", "directory"),
        ("exit_date", "2026-05", "EDFI_VALUE_NOT_EXACT:exit_date", SSA),
    ],
    ids=["race-two-or-more", "language-not-listed", "zip3", "no-street", "exit-month"],
)
def test_when_optional_value_cannot_be_carried_then_field_left_out_and_noted(
    data_standard: int, field: str, value: Any, code: str, resource: str
) -> None:
    frame, keys = synthetic_frame(1)
    frame[field] = frame[field].astype(object)
    frame.at[0, field] = value
    result = mapped(frame, keys, data_standard)
    notes = [n for n in result.not_sent if not n.resource_withheld]
    assert code in {n.code for n in notes}
    assert {STUDENTS, SSA} <= {p.resource for p in result.payloads}


def test_namespace_override_is_used() -> None:
    frame, keys = synthetic_frame(3)
    result = mapped(frame, keys, namespace_overrides={"GradeLevelDescriptor": VT_GRADE})
    grades = {b["entryGradeLevelDescriptor"] for b in bodies(result, SSA)}
    assert grades == {f"{VT_GRADE}#{d.PRESCHOOL}"}
    assert not [n for n in result.not_sent if n.reason is Reason.LOCAL_VALIDATION_FAILED]


def test_unmapped_fields_are_listed() -> None:
    frame, keys = synthetic_frame(2)
    assert set(mapped(frame, keys).unmapped_fields) == {
        "days_present",
        "days_scheduled",
        "eligibility_category",
        "guardian_email",
        "guardian_first_name",
        "guardian_last_name",
        "guardian_phone",
        "guardian_relationship",
        "income_band",
        "program_option",
        "site_code",
        "tribal_affiliation",
    }


@pytest.mark.parametrize(
    ("artifacts", "message"),
    [
        (("records", "records"), "one 'records' artifact"),
        (("records-short-keys",), "one child key per row"),
    ],
)
def test_batches_that_cannot_be_mapped(artifacts: tuple[str, ...], message: str) -> None:
    frame, keys = synthetic_frame(2)
    made = []
    for name in artifacts:
        short = name.endswith("short-keys")
        made.append(Artifact("records", frame, child_keys=tuple(keys[:1] if short else keys)))
    batch = Batch("r", "2026-11-27", PROGRAM, tuple(made))
    with pytest.raises(MappingError, match=message):
        EdfiMapper(make_settings()).map_batch(batch)


def test_program_without_education_organization_fails_closed() -> None:
    frame, keys = synthetic_frame(1)
    settings_ = make_settings(
        education_organizations={"MO-HS-03": {"school_id": 1, "education_organization_id": 2}}
    )
    with pytest.raises(MappingError, match=f"no education organization for program {PROGRAM}"):
        EdfiMapper(settings_).map_batch(records_batch(frame, keys))


def test_batch_without_records_maps_to_nothing() -> None:
    batch = Batch("r", "2026-11-27", PROGRAM, ())
    assert EdfiMapper(make_settings()).map_batch(batch).payloads == []


# --- property: only permitted fields populate payloads ---------------------------------------

TAGGED = {
    "state_student_id": "SSID",
    "child_local_id": "LOCAL",
    "first_name": "FIRST",
    "middle_name": "MIDDLE",
    "last_name": "LAST",
    "address_street": "STREET",
    "address_city": "CITY",
    "guardian_first_name": "G1ST",
    "guardian_last_name": "GSUR",
    "guardian_phone": "GPHONE",
    "guardian_email": "GMAIL",
    "site_code": "SITE",
}
DATES = {"birth_date": 2021, "entry_date": 2024, "exit_date": 2025}
KEYS_OF = {
    "sex": {"sexDescriptor"},
    "race": {"raceDescriptor"},
    "ethnicity": {"hispanicLatinoEthnicity"},
    "home_language": {"languageDescriptor"},
    "disability": {"disabilityDescriptor"},
    "dual_language_learner": {"indicatorName"},
    "middle_name": {"middleName"},
    "exit_reason": {"exitWithdrawTypeDescriptor", "reasonExitedDescriptor"},
    "exit_date": {"exitWithdrawDate", "endDate"},
    "address_zip": {"postalCode"},
    "address_state": {"stateAbbreviationDescriptor"},
}


def tagged_frame(n: int) -> tuple[pd.DataFrame, list]:
    frame, keys = synthetic_frame(n, seed=13)
    for name, tag in TAGGED.items():
        frame[name] = [f"{tag}{i:04d}" for i in range(n)]
    for name, year in DATES.items():
        frame[name] = [dt.date(year, 1 + i % 12, 1 + i % 28) for i in range(n)]
    frame["exit_reason"] = "aged_out"
    frame["homeless"] = True
    frame["foster_care"] = True
    frame["iep"] = True
    frame["disability"] = True
    return frame, keys


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    permitted=st.sets(st.sampled_from(sorted(CATALOG)), min_size=0, max_size=len(CATALOG)),
    data_standard=st.sampled_from([5, 6]),
)
def test_only_permitted_fields_populate_payloads(permitted: set[str], data_standard: int) -> None:
    frame, keys = tagged_frame(4)
    result = mapped(frame[[c for c in CATALOG if c in permitted]], keys, data_standard)
    scalars = [(k, str(v)) for p in result.payloads for k, v in leaves(p.body)]
    text = " ".join(v for _, v in scalars)
    forbidden = set(CATALOG) - permitted
    for name in forbidden & set(TAGGED):
        assert all(f"{TAGGED[name]}{i:04d}" not in text for i in range(4)), name
    for name in forbidden & set(DATES):
        assert not any(v.startswith(f"{DATES[name]}-") for _, v in scalars), name
    for name in forbidden & set(KEYS_OF):
        assert not KEYS_OF[name] & {k for k, _ in scalars}, name
    characteristics = {v.split("#")[-1] for k, v in scalars if k.startswith("studentChar")}
    assert ("homeless" in permitted) or "Homeless" not in characteristics
    assert ("foster_care" in permitted) or "Foster Care" not in characteristics
    resources = {p.resource for p in result.payloads}
    if not {"iep", "ifsp"} & permitted:
        assert "studentSpecialEducationProgramAssociations" not in resources
    if "program_type" not in permitted:
        assert "studentProgramAssociations" not in resources
    assert all(isinstance(n, NotSent) for n in result.not_sent)
