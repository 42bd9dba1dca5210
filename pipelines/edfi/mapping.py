"""Permitted canonical rows -> Ed-Fi resources (Data Standard 5.x or 6.x), validated locally.

Input: the frame the agreement permitted (columns are catalog field names, and a column that is
absent was not permitted) with one child key per row. Output: :class:`Mapped` — the payloads to
send, in dependency order, and the :class:`NotSent` items saying what was left out and why.

Rules:

- Only permitted fields populate payloads; a resource whose required field is not permitted
  (or has no value, or only a generalized value such as a month for a date) is not sent for
  that child: ``EDFI_REQUIRED_FIELD_NOT_PERMITTED`` / ``EDFI_REQUIRED_VALUE_MISSING`` /
  ``EDFI_VALUE_NOT_EXACT`` plus the field. Never a placeholder.
- ``studentUniqueId`` is ``state_student_id`` when permitted and known, else ``child_local_id``
  when permitted — which is the recipient's pseudonym when the agreement pseudonymizes it. A
  plain local id is prefixed ``{program_code}-`` (local ids are unique only within a program),
  so it needs ``program_code`` permitted too (``student_id_program_prefix: false`` turns the
  prefix off, for states that accept the collision risk). Neither permitted: no student.
- A student is sent only with its studentSchoolAssociation (without one the API hides the
  student even from us, so it could never be read back or deleted), and the other
  associations only after both: ``EDFI_DEPENDS_ON_NOT_SENT`` otherwise.
- Grade level: by age at entry — ``Infant/toddler`` under 3, else
  ``Preschool/Prekindergarten`` (a student needs its birth date and its school association its
  entry date, so both are there); without them (disability descriptors), by program type:
  Early Head Start ``Infant/toddler``, the others ``Preschool/Prekindergarten``.
- 5.x carries demographics and the address on studentEducationOrganizationAssociations; 6.x on
  studentDemographics and studentDirectories (its studentEducationOrganizationAssociations
  keep only the dual-language-learner indicator). A content resource with nothing permitted
  to carry is simply not built.
- A special-education program association is built when an IFSP or IEP flag is permitted and
  true (IFSP: Part C early intervention program; IEP: preschool special education).
- Every payload is validated against the strict OpenAPI subset and the descriptor list; a
  failure withholds it (``EDFI_LOCAL_VALIDATION_FAILED`` with the JSON path and rule).

Fields an Ed-Fi resource here does not carry (attendance counts, eligibility, income band,
family fields, site, program option) are listed in :attr:`Mapped.unmapped_fields`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipelines.destinations.base import Batch, ChildKey
from pipelines.edfi import descriptors as d
from pipelines.edfi.descriptors import DescriptorCatalog
from pipelines.edfi.openapi import ResourceSchemas
from pipelines.edfi.rows import NotSent, Reason, Row, Withheld, age
from pipelines.edfi.settings import EdfiSettings, ProgramDefinition
from privacy.transforms import PSEUDONYM_PATTERN
from schemas.codes import ProgramType

RECORDS_ARTIFACT = "records"
STUDENTS, SSA, SEOA = (
    "students",
    "studentSchoolAssociations",
    "studentEducationOrganizationAssociations",
)
DEMOGRAPHICS, DIRECTORIES = "studentDemographics", "studentDirectories"
SPA, SSEPA = "studentProgramAssociations", "studentSpecialEducationProgramAssociations"
PROGRAMS = "programs"
RESOURCE_ORDER = {
    5: (PROGRAMS, STUDENTS, SSA, SEOA, SPA, SSEPA),
    6: (PROGRAMS, STUDENTS, SSA, SEOA, DEMOGRAPHICS, DIRECTORIES, SPA, SSEPA),
}
"""Dependency order: programs, students, school associations, then the rest."""
MAPPED_FIELDS = frozenset(
    {
        "program_code",
        "child_local_id",
        "state_student_id",
        "first_name",
        "middle_name",
        "last_name",
        "birth_date",
        "sex",
        "race",
        "ethnicity",
        "home_language",
        "address_street",
        "address_city",
        "address_state",
        "address_zip",
        "program_type",
        "entry_date",
        "exit_date",
        "exit_reason",
        "dual_language_learner",
        "homeless",
        "foster_care",
        "disability",
        "iep",
        "ifsp",
    }
)
ID_FIELDS = frozenset({"state_student_id", "child_local_id", "program_code"})
"""Fields a ``studentUniqueId`` is made of."""
ADDRESS = ("address_street", "address_city", "address_state", "address_zip")
_GRADE = frozenset({"birth_date", "entry_date", "program_type"})
"""What a grade level (or a disability descriptor's age group) is made of."""
_DEMOGRAPHICS = _GRADE | {
    "sex",
    "race",
    "ethnicity",
    "home_language",
    "disability",
    "ifsp",
    "iep",
    "homeless",
    "foster_care",
}
_COMMON = {
    STUDENTS: ID_FIELDS | {"first_name", "middle_name", "last_name", "birth_date"},
    SSA: ID_FIELDS | _GRADE | {"exit_date", "exit_reason"},
    SPA: ID_FIELDS | {"program_type", "entry_date", "exit_date", "exit_reason"},
    SSEPA: ID_FIELDS | _GRADE | {"ifsp", "iep", "disability"},
    PROGRAMS: frozenset(),
}
RESOURCE_FIELDS: dict[int, dict[str, frozenset[str]]] = {
    5: {**_COMMON, SEOA: ID_FIELDS | _DEMOGRAPHICS | set(ADDRESS) | {"dual_language_learner"}},
    6: {
        **_COMMON,
        SEOA: ID_FIELDS | {"dual_language_learner"},
        DEMOGRAPHICS: ID_FIELDS | _DEMOGRAPHICS,
        DIRECTORIES: ID_FIELDS | set(ADDRESS),
    },
}
"""Per Data Standard and resource, every catalog field a payload of it can carry (a
payload's :attr:`Payload.fields` are some of them): what a disclosure is logged with when only
the resource is known (a ledger row written before the ledger kept fields, migration 0014)."""
_PSEUDONYM = re.compile(PSEUDONYM_PATTERN)
_ZIP = re.compile(r"^\d{5}(-\d{4})?$")


@dataclass(frozen=True)
class Payload:
    """One resource body to POST, its natural key and digests; ``child_key`` is ``None`` for
    resources that belong to no child (programs)."""

    resource: str
    body: dict[str, Any]
    child_key: ChildKey | None
    natural_key: dict[str, Any]
    key_digest: str
    payload_digest: str
    content: bytes = b""
    """``body`` as canonical JSON (sorted keys): what is sent and what ``payload_digest``
    digests."""
    fields: tuple[str, ...] = ()
    """The catalog fields whose values the body carries (for the disclosure log)."""


@dataclass
class Mapped:
    """What one batch becomes."""

    payloads: list[Payload] = field(default_factory=list)
    not_sent: list[NotSent] = field(default_factory=list)
    unmapped_fields: tuple[str, ...] = ()

    def by_resource(self, order: Sequence[str]) -> list[tuple[str, list[Payload]]]:
        """The payloads grouped by resource, in ``order``."""
        groups: dict[str, list[Payload]] = {name: [] for name in order}
        for payload in self.payloads:
            groups[payload.resource].append(payload)
        return [(name, groups[name]) for name in order if groups[name]]


class MappingError(ValueError):
    """The batch or the destination's settings cannot be mapped at all (names what, not data)."""


def canonical(value: Any) -> bytes:
    """``value`` as canonical JSON (sorted keys, no spaces, UTF-8)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def digest(value: Any) -> str:
    """SHA-256 of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical(value)).hexdigest()


def records_of(batch: Batch) -> tuple[pd.DataFrame, Sequence[ChildKey]]:
    """The frame and child keys of the batch's one ``records`` artifact (empty if none)."""
    records = [a for a in batch.artifacts if a.name == RECORDS_ARTIFACT]
    if len(records) > 1:
        raise MappingError("a batch for Ed-Fi carries one 'records' artifact")
    if not records:
        return pd.DataFrame(), ()
    if len(records[0].child_keys) != len(records[0].frame):
        raise MappingError("records: one child key per row is required")
    return records[0].frame, records[0].child_keys


class EdfiMapper:
    """Maps permitted rows for one destination (its Data Standard, ids and descriptors)."""

    def __init__(
        self,
        settings: EdfiSettings,
        descriptors: DescriptorCatalog | None = None,
        schemas: ResourceSchemas | None = None,
    ) -> None:
        self.settings = settings
        self.descriptors = descriptors or DescriptorCatalog.load(
            namespace_overrides=settings.namespace_overrides
        )
        self.schemas = schemas or ResourceSchemas.load(settings.data_standard, self.descriptors)
        self.order = RESOURCE_ORDER[settings.data_standard]

    def map_batch(self, batch: Batch) -> Mapped:
        """Map the batch's ``records`` artifact (a batch without one maps to nothing)."""
        frame, keys = records_of(batch)
        return self.map_frame(frame, keys, batch.program_code)

    def map_frame(
        self, frame: pd.DataFrame, child_keys: Sequence[ChildKey], program_code: str
    ) -> Mapped:
        """Map every row of ``frame`` (row ``i`` belongs to ``child_keys[i]``)."""
        if len(child_keys) != len(frame):
            raise MappingError("records: one child key per row is required")
        organization = self.settings.organization(program_code)
        if organization is None:
            raise MappingError(f"no education organization for program {program_code}")
        columns = frozenset(frame.columns)
        mapped = Mapped(unmapped_fields=tuple(sorted(columns - MAPPED_FIELDS)))
        programs: dict[str, Payload] = {}
        for values, key in zip(frame.to_dict("records"), child_keys, strict=True):
            row = Row(values, columns, key, program_code, organization)
            self._map_child(row, mapped, programs)
        mapped.payloads[:0] = programs.values()
        return mapped

    def _map_child(self, row: Row, mapped: Mapped, programs: dict[str, Payload]) -> None:
        student = self._attempt(row, STUDENTS, self._student, mapped)
        if student is None:
            self._note(row, SSA, Reason.DEPENDS_ON_NOT_SENT, STUDENTS, mapped)
            return
        row.student_id = student.body["studentUniqueId"]
        row.id_fields = frozenset(student.fields) & ID_FIELDS
        school = self._attempt(row, SSA, self._school_association, mapped)
        if school is None:
            self._note(row, STUDENTS, Reason.DEPENDS_ON_NOT_SENT, SSA, mapped)
            return
        mapped.payloads.extend((student, school))
        builders = {
            SEOA: self._organization_association,
            DEMOGRAPHICS: self._demographics,
            DIRECTORIES: self._directory,
            SPA: self._program_association,
            SSEPA: self._special_education,
        }
        for resource in self.order:
            if resource in builders:
                payload = self._attempt(row, resource, builders[resource], mapped)
                if payload is not None:
                    mapped.payloads.append(payload)
                    self._add_program(payload, programs)
        mapped.not_sent.extend(row.notes)
        row.notes.clear()

    def _attempt(self, row: Row, resource: str, build: Any, mapped: Mapped) -> Payload | None:
        row.used = set(row.id_fields)
        try:
            body = build(row)
        except Withheld as withheld:
            self._note(row, resource, withheld.reason, withheld.field, mapped)
            return None
        if body is None:
            return None
        problems = self.schemas.validate(resource, body)
        if problems:
            self._note(row, resource, Reason.LOCAL_VALIDATION_FAILED, str(problems[0]), mapped)
            return None
        return self._payload(resource, body, row.key, tuple(sorted(row.used)))

    def _payload(
        self,
        resource: str,
        body: dict[str, Any],
        key: ChildKey | None,
        fields: tuple[str, ...] = (),
    ) -> Payload:
        natural = self.schemas.identity(resource, body)
        content = canonical(body)
        payload_digest = hashlib.sha256(content).hexdigest()
        return Payload(
            resource,
            body,
            key,
            natural,
            digest([resource, natural]),
            payload_digest,
            content,
            fields,
        )

    @staticmethod
    def _note(row: Row, resource: str, reason: Reason, name: str, mapped: Mapped) -> None:
        mapped.not_sent.append(NotSent(row.key, resource, reason, name))

    def _add_program(self, payload: Payload, programs: dict[str, Payload]) -> None:
        reference = payload.body.get("programReference")
        if reference is None:
            return
        body = {
            "programName": reference["programName"],
            "programTypeDescriptor": reference["programTypeDescriptor"],
            "educationOrganizationReference": {
                "educationOrganizationId": reference["educationOrganizationId"]
            },
        }
        program = self._payload(PROGRAMS, body, None)
        programs.setdefault(program.key_digest, program)

    # --- builders: each returns a body, None (nothing to carry) or raises Withheld ---------

    def _student(self, row: Row) -> dict[str, Any]:
        body = {
            "studentUniqueId": self._student_id(row),
            "firstName": row.text("first_name", required=True),
            "lastSurname": row.text("last_name", required=True),
            "birthDate": row.date("birth_date", required=True),
        }
        middle = row.text("middle_name")
        if middle is not None:
            body["middleName"] = middle
        return body

    def _student_id(self, row: Row) -> str:
        if row.value("state_student_id") is not None:
            return str(row.value("state_student_id"))
        local = row.value("child_local_id")
        if local is not None:
            local = str(local)
            if self.settings.student_id_program_prefix and not _PSEUDONYM.match(local):
                return f"{row.need('program_code')}-{local}"
            return local
        for name in ("state_student_id", "child_local_id"):
            if name in row.columns:
                raise Withheld(Reason.REQUIRED_VALUE_MISSING, name)
        raise Withheld(Reason.REQUIRED_FIELD_NOT_PERMITTED, "state_student_id|child_local_id")

    def _references(self, row: Row, *, school: bool = False) -> dict[str, Any]:
        student = {"studentUniqueId": row.student_id}
        if school:
            return {
                "schoolReference": {"schoolId": row.organization.school_id},
                "studentReference": student,
            }
        organization = {"educationOrganizationId": row.organization.education_organization_id}
        return {"educationOrganizationReference": organization, "studentReference": student}

    def _school_association(self, row: Row) -> dict[str, Any]:
        entry = row.date("entry_date", required=True)
        body = {
            **self._references(row, school=True),
            "entryDate": entry,
            "entryGradeLevelDescriptor": self._uri("GradeLevelDescriptor", self._grade(row)),
        }
        exit_date = row.date("exit_date", field_only=SSA)
        if exit_date is not None:
            body["exitWithdrawDate"] = exit_date
        reason = row.code("exit_reason", d.EXIT_WITHDRAW_TYPE, SSA)
        if reason is not None:
            body["exitWithdrawTypeDescriptor"] = self._uri("ExitWithdrawTypeDescriptor", reason)
        return body

    def _grade(self, row: Row) -> str:
        birth = row.date("birth_date", quiet=True, carry=False)
        entry = row.date("entry_date", quiet=True, carry=False)
        if birth is not None and entry is not None:
            row.carry("birth_date", "entry_date")  # the grade is made of them
            return d.INFANT_TODDLER if age(birth, entry) < 3 else d.PRESCHOOL
        program_type = row.program_type(required=True)
        return d.INFANT_TODDLER if program_type is ProgramType.EARLY_HEAD_START else d.PRESCHOOL

    def _demographic_content(self, row: Row, resource: str) -> dict[str, Any]:
        body: dict[str, Any] = {}
        sex = row.code("sex", d.SEX, resource)
        if sex is not None:
            body["sexDescriptor"] = self._uri("SexDescriptor", sex)
        race = row.code("race", d.RACE, resource)
        if race is not None:
            body["races"] = [{"raceDescriptor": self._uri("RaceDescriptor", race)}]
        hispanic = row.code("ethnicity", d.ETHNICITY, resource)
        if hispanic is not None:
            body["hispanicLatinoEthnicity"] = hispanic
        language = row.peek("home_language")
        if language is not None:
            language = str(language).strip()
            if self.descriptors.has("LanguageDescriptor", language):
                row.carry("home_language")
                use = self._uri("LanguageUseDescriptor", "Home language")
                body["languages"] = [
                    {
                        "languageDescriptor": self._uri("LanguageDescriptor", language),
                        "uses": [{"languageUseDescriptor": use}],
                    }
                ]
            else:
                row.note(resource, Reason.VALUE_NOT_MAPPABLE, "home_language")
        if row.flag("disability", resource):
            body["disabilities"] = [
                {"disabilityDescriptor": self._uri("DisabilityDescriptor", self._disability(row))}
            ]
        characteristics = [
            {"studentCharacteristicDescriptor": self._uri("StudentCharacteristicDescriptor", c)}
            for name, c in (("homeless", "Homeless"), ("foster_care", "Foster Care"))
            if row.flag(name, resource)
        ]
        if characteristics:
            body["studentCharacteristics"] = characteristics
        return body

    def _disability(self, row: Row) -> str:
        if row.flag("ifsp", None):
            return d.DISABILITY_INFANT_TODDLER
        if row.flag("iep", None):
            return d.DISABILITY_PRESCHOOL
        try:
            young = self._grade(row) == d.INFANT_TODDLER
        except Withheld:
            young = False
        return d.DISABILITY_INFANT_TODDLER if young else d.DISABILITY_PRESCHOOL

    def _addresses(self, row: Row, resource: str) -> list[dict[str, Any]] | None:
        if not any(row.peek(name) is not None for name in ADDRESS):
            return None
        for name in ADDRESS:
            if row.peek(name) is None:
                reason = (
                    Reason.REQUIRED_VALUE_MISSING
                    if name in row.columns
                    else Reason.REQUIRED_FIELD_NOT_PERMITTED
                )
                row.note(resource, reason, name)
                return None
        state, postal = str(row.peek("address_state")), str(row.peek("address_zip"))
        if not self.descriptors.has("StateAbbreviationDescriptor", state):
            row.note(resource, Reason.VALUE_NOT_MAPPABLE, "address_state")
            return None
        if not _ZIP.match(postal):
            row.note(resource, Reason.VALUE_NOT_EXACT, "address_zip")
            return None
        row.carry(*ADDRESS)
        return [
            {
                "addressTypeDescriptor": self._uri("AddressTypeDescriptor", "Home"),
                "streetNumberName": str(row.peek("address_street")).strip(),
                "city": str(row.peek("address_city")).strip(),
                "stateAbbreviationDescriptor": self._uri("StateAbbreviationDescriptor", state),
                "postalCode": postal,
            }
        ]

    def _indicators(self, row: Row, resource: str) -> list[dict[str, Any]] | None:
        dll = row.flag("dual_language_learner", resource)
        if dll is None:
            return None
        return [{"indicatorName": "Dual Language Learner", "indicator": "Yes" if dll else "No"}]

    def _organization_association(self, row: Row) -> dict[str, Any] | None:
        if self.settings.data_standard == 5:
            content = self._demographic_content(row, SEOA)
            addresses = self._addresses(row, SEOA)
            if addresses:
                content["addresses"] = addresses
        else:
            content = {}
        indicators = self._indicators(row, SEOA)
        if indicators:
            content["studentIndicators"] = indicators
        return {**self._references(row), **content} if content else None

    def _demographics(self, row: Row) -> dict[str, Any] | None:
        content = self._demographic_content(row, DEMOGRAPHICS)
        return {**self._references(row), **content} if content else None

    def _directory(self, row: Row) -> dict[str, Any] | None:
        addresses = self._addresses(row, DIRECTORIES)
        return {**self._references(row), "addresses": addresses} if addresses else None

    def _program_body(self, row: Row, program: ProgramDefinition) -> dict[str, Any]:
        organization_id = row.organization.education_organization_id
        return {
            **self._references(row),
            "programReference": {
                "educationOrganizationId": organization_id,
                "programName": program.program_name,
                "programTypeDescriptor": self._uri("ProgramTypeDescriptor", program.program_type),
            },
            "beginDate": row.date("entry_date", required=True),
        }

    def _program_association(self, row: Row) -> dict[str, Any]:
        program_type = row.program_type(required=True)
        body = self._program_body(row, self.settings.programs[program_type])
        end = row.date("exit_date", field_only=SPA)
        if end is not None:
            body["endDate"] = end
        reason = row.code("exit_reason", d.REASON_EXITED, SPA)
        if reason is not None:
            body["reasonExitedDescriptor"] = self._uri("ReasonExitedDescriptor", reason)
        return body

    def _special_education(self, row: Row) -> dict[str, Any] | None:
        ifsp = row.flag("ifsp", SSEPA)
        iep = row.flag("iep", SSEPA, carry=not ifsp)  # an IFSP chooses the program alone
        if not (ifsp or iep):
            return None
        program = self.settings.special_education_programs["ifsp" if ifsp else "iep"]
        body = {**self._program_body(row, program), "ideaEligibility": True}
        if row.flag("disability", None):
            body["disabilities"] = [
                {"disabilityDescriptor": self._uri("DisabilityDescriptor", self._disability(row))}
            ]
        return body

    def _uri(self, descriptor_type: str, code_value: str) -> str:
        return self.descriptors.uri(descriptor_type, code_value)
