"""Descriptor URIs: the shipped list, namespace overrides, the type a property takes."""

from __future__ import annotations

import csv

import pytest
from pydantic import ValidationError

from pipelines.edfi import descriptors as d
from pipelines.edfi.descriptors import DescriptorCatalog, UnknownDescriptorError
from tests.edfi.conftest import make_settings
from tests.fixtures import EDFI_REFERENCE

VT_GRADE = "uri://education.vermont.gov/GradeLevelDescriptor"


@pytest.fixture(scope="module")
def catalog() -> DescriptorCatalog:
    return DescriptorCatalog.load()


def test_shipped_list_is_the_shared_reference_list(catalog: DescriptorCatalog) -> None:
    with (EDFI_REFERENCE / "descriptors-ds-5.2.0-flat.csv").open(newline="", encoding="utf-8") as f:
        shared = {(r["descriptorType"], r["codeValue"]) for r in csv.DictReader(f)}
    assert catalog.values == shared


@pytest.mark.parametrize(
    ("descriptor_type", "code_value"),
    [
        ("GradeLevelDescriptor", d.INFANT_TODDLER),
        ("GradeLevelDescriptor", d.PRESCHOOL),
        ("ProgramTypeDescriptor", "Head Start"),
        ("ProgramTypeDescriptor", "Early Head Start"),
        ("DisabilityDescriptor", d.DISABILITY_INFANT_TODDLER),
        ("DisabilityDescriptor", d.DISABILITY_PRESCHOOL),
        *[("SexDescriptor", v) for v in d.SEX.values()],
        *[("RaceDescriptor", v) for v in d.RACE.values() if v],
        *[("ExitWithdrawTypeDescriptor", v) for v in d.EXIT_WITHDRAW_TYPE.values()],
        *[("ReasonExitedDescriptor", v) for v in d.REASON_EXITED.values()],
    ],
)
def test_every_code_the_mapping_uses_is_in_the_list(
    catalog: DescriptorCatalog, descriptor_type: str, code_value: str
) -> None:
    assert catalog.uri(descriptor_type, code_value) == (
        f"uri://ed-fi.org/{descriptor_type}#{code_value}"
    )


def test_when_value_unknown_then_error_names_type_and_value(catalog: DescriptorCatalog) -> None:
    with pytest.raises(UnknownDescriptorError, match="GradeLevelDescriptor#Toddler"):
        catalog.uri("GradeLevelDescriptor", "Toddler")


@pytest.mark.parametrize(
    ("uri", "prop", "overrides", "known"),
    [
        ("uri://ed-fi.org/SexDescriptor#Female", "sexDescriptor", {}, True),
        ("uri://ed-fi.org/SexDescriptor#Female", "birthSexDescriptor", {}, True),
        ("uri://ed-fi.org/SexDescriptor#Female", "entryGradeLevelDescriptor", {}, False),
        ("uri://ed-fi.org/SexDescriptor#Unknown", "sexDescriptor", {}, False),
        ("uri://ed-fi.org/sexdescriptor#Female", "sexDescriptor", {}, False),
        ("Female", "sexDescriptor", {}, False),
        (f"{VT_GRADE}#Preschool", "entryGradeLevelDescriptor", {}, False),
        (
            f"{VT_GRADE}#Preschool",
            "entryGradeLevelDescriptor",
            {"GradeLevelDescriptor": VT_GRADE},
            True,
        ),
        (
            "uri://ed-fi.org/GradeLevelDescriptor#Preschool",
            "entryGradeLevelDescriptor",
            {"GradeLevelDescriptor": VT_GRADE},
            False,
        ),
        (
            f"{VT_GRADE}#Toddler",
            "entryGradeLevelDescriptor",
            {"GradeLevelDescriptor": VT_GRADE},
            False,
        ),
    ],
    ids=[
        "sex",
        "birth-sex-takes-sex",
        "wrong-type-for-property",
        "unknown-code",
        "wrong-case-namespace",
        "not-a-uri",
        "state-namespace-without-override",
        "state-namespace-with-override",
        "default-namespace-when-overridden",
        "override-keeps-the-standards-codes",
    ],
)
def test_is_known(uri: str, prop: str, overrides: dict[str, str], known: bool) -> None:
    assert DescriptorCatalog.load(namespace_overrides=overrides).is_known(uri, prop) is known


def test_override_changes_the_uri_the_mapping_writes() -> None:
    catalog = DescriptorCatalog.load(namespace_overrides={"GradeLevelDescriptor": VT_GRADE})
    assert catalog.uri("GradeLevelDescriptor", d.PRESCHOOL) == f"{VT_GRADE}#{d.PRESCHOOL}"
    assert catalog.uri("SexDescriptor", "Male") == "uri://ed-fi.org/SexDescriptor#Male"


@pytest.mark.parametrize(
    "overrides",
    [
        {"GradeLevel": VT_GRADE},
        {"GradeLevelDescriptor": "https://vt.gov/GradeLevelDescriptor"},
        {"GradeLevelDescriptor": "uri://vt.gov/Grades"},
        {"GradeLevelDescriptor": f"{VT_GRADE}#x"},
    ],
    ids=["key-not-a-descriptor", "not-uri-scheme", "not-ending-in-type", "has-fragment"],
)
def test_when_override_malformed_then_settings_refused(overrides: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="namespace_overrides"):
        make_settings(namespace_overrides=overrides)
