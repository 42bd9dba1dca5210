"""Ed-Fi descriptors: canonical codes to descriptor URIs, checked against the shipped list.

A descriptor value is a URI ``{namespace}#{codeValue}``, e.g.
``uri://ed-fi.org/GradeLevelDescriptor#Infant/toddler``. The shipped list
(``reference/descriptors-ds-5.2.0-flat.csv``) holds every default value of the Data Standard.
A state may publish a descriptor type under its own namespace: ``namespace_overrides`` maps the
type to that namespace, and the code value must still be one of the standard's.

The code maps below turn the canonical model's codes (``schemas.codes``) into code values; a
canonical code with no Ed-Fi equivalent maps to ``None`` and the field is left out.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

REFERENCE_DIR = Path(__file__).parent / "reference"
DESCRIPTOR_CSV = REFERENCE_DIR / "descriptors-ds-5.2.0-flat.csv"
EDFI_NAMESPACE = "uri://ed-fi.org"

SEX = {"female": "Female", "male": "Male", "not_selected": "Not Selected"}
RACE: dict[str, str | None] = {
    "american_indian_alaska_native": "American Indian or Alaska Native",
    "asian": "Asian",
    "black": "Black or African American",
    "native_hawaiian_pacific_islander": "Native Hawaiian or Pacific Islander",
    "white": "White",
    "two_or_more": None,  # Ed-Fi lists each race; which ones is not known
    "unknown": None,
}
ETHNICITY: dict[str, bool | None] = {"hispanic": True, "not_hispanic": False, "unknown": None}
EXIT_WITHDRAW_TYPE = {
    "aged_out": "Reached maximum age",
    "transition_to_kindergarten": "Completed",
    "transition_to_head_start": "Transferred",
    "family_moved": "Transferred",
    "family_choice": "Withdrawn",
    "other": "Other",
}
REASON_EXITED = {
    "aged_out": "Reached maximum age",
    "transition_to_kindergarten": "Transferred to another district or school",
    "transition_to_head_start": "Transferred to another district or school",
    "family_moved": "Other",
    "family_choice": "Withdrawal by a parent (or guardian)",
    "other": "Other",
}
INFANT_TODDLER = "Infant/toddler"
PRESCHOOL = "Preschool/Prekindergarten"
DISABILITY_INFANT_TODDLER = "Infant/Toddler with a Disability"
DISABILITY_PRESCHOOL = "Preschooler with a Disability"

_URI = re.compile(r"^(uri://[^#]+)/([A-Za-z0-9]+Descriptor)#(.+)$")


class UnknownDescriptorError(ValueError):
    """A descriptor type and code value that are not in the shipped list (names them; they
    are code values, never child data)."""


@dataclass(frozen=True)
class DescriptorCatalog:
    """The known descriptor values and this destination's namespace overrides."""

    values: frozenset[tuple[str, str]]
    """(descriptor type, code value) pairs of the standard."""
    namespace_overrides: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def load(
        cls, path: Path = DESCRIPTOR_CSV, namespace_overrides: Mapping[str, str] | None = None
    ) -> DescriptorCatalog:
        """The catalog from the flat CSV (descriptorType, namespace, codeValue, ...)."""
        return cls(_read_values(path), dict(namespace_overrides or {}))

    def namespace(self, descriptor_type: str) -> str:
        """Where ``descriptor_type`` lives at this destination."""
        return self.namespace_overrides.get(descriptor_type, f"{EDFI_NAMESPACE}/{descriptor_type}")

    def has(self, descriptor_type: str, code_value: str) -> bool:
        """Whether the standard defines ``code_value`` for ``descriptor_type``."""
        return (descriptor_type, code_value) in self.values

    def uri(self, descriptor_type: str, code_value: str) -> str:
        """The URI of a known value; :class:`UnknownDescriptorError` otherwise."""
        if not self.has(descriptor_type, code_value):
            raise UnknownDescriptorError(f"{descriptor_type}#{code_value} is not in the list")
        return f"{self.namespace(descriptor_type)}#{code_value}"

    def is_known(self, uri: str, property_name: str | None = None) -> bool:
        """Whether ``uri`` is a known value in the namespace this destination uses for its
        type, and (given the JSON property it sits in) of a type that property takes."""
        match = _URI.match(uri)
        if match is None:
            return False
        base, descriptor_type, code_value = match.groups()
        if f"{base}/{descriptor_type}" != self.namespace(descriptor_type):
            return False
        if property_name is not None and not _type_fits(property_name, descriptor_type):
            return False
        return self.has(descriptor_type, code_value)

    def all_uris(self) -> frozenset[str]:
        """Every value as a URI in this destination's namespaces (for servers and tests)."""
        return frozenset(f"{self.namespace(t)}#{c}" for t, c in self.values)


def _type_fits(property_name: str, descriptor_type: str) -> bool:
    """``entryGradeLevelDescriptor`` takes GradeLevelDescriptor values, ``sexDescriptor``
    SexDescriptor values: the capitalized property name ends with the type."""
    return (property_name[:1].upper() + property_name[1:]).endswith(descriptor_type)


@cache
def _read_values(path: Path) -> frozenset[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return frozenset(
            (row["descriptorType"], row["codeValue"]) for row in csv.DictReader(handle)
        )
