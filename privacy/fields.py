"""The field catalog: every field of a child's record an agreement may name.

A field belongs to one record category (what a consent must name for it to leave), has a
value kind (which transforms fit it) and is PII unless ``pii`` is false. The extract step
produces exactly these columns, one row per child; nothing outside this catalog can leave.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from schemas.codes import RecordCategory


class Kind(StrEnum):
    """What a field's values are."""

    TEXT = "text"
    IDENTIFIER = "identifier"
    CODE = "code"
    DATE = "date"
    FLAG = "flag"
    COUNT = "count"
    ZIP = "zip"


@dataclass(frozen=True, slots=True)
class Field:
    """One catalog entry."""

    name: str
    category: RecordCategory
    kind: Kind
    description: str
    pii: bool = True


def _fields(category: RecordCategory, *rows: tuple[str, Kind, str]) -> list[Field]:
    return [Field(name, category, kind, description) for name, kind, description in rows]


C = RecordCategory
K = Kind
CATALOG: dict[str, Field] = {
    f.name: f
    for f in [
        *_fields(
            C.IDENTITY,
            ("program_code", K.IDENTIFIER, "the Head Start program's id"),
            ("child_local_id", K.IDENTIFIER, "the program's own child id"),
            ("state_student_id", K.IDENTIFIER, "the state student id (SASID), when known"),
            ("first_name", K.TEXT, "legal first name"),
            ("middle_name", K.TEXT, "legal middle name"),
            ("last_name", K.TEXT, "legal last name"),
            ("birth_date", K.DATE, "date of birth"),
        ),
        *_fields(
            C.DEMOGRAPHICS,
            ("sex", K.CODE, "sex"),
            ("race", K.CODE, "race (OMB categories)"),
            ("ethnicity", K.CODE, "Hispanic or Latino ethnicity"),
            ("home_language", K.CODE, "home language (ISO 639-2 code)"),
        ),
        *_fields(
            C.CONTACT,
            ("address_street", K.TEXT, "street address"),
            ("address_city", K.TEXT, "city"),
            ("address_state", K.CODE, "state of residence"),
            ("address_zip", K.ZIP, "ZIP code"),
        ),
        *_fields(
            C.FAMILY,
            ("guardian_first_name", K.TEXT, "first name of the primary parent or guardian"),
            ("guardian_last_name", K.TEXT, "last name of the primary parent or guardian"),
            ("guardian_relationship", K.CODE, "the primary guardian's relationship to the child"),
            ("guardian_phone", K.TEXT, "the primary guardian's phone"),
            ("guardian_email", K.TEXT, "the primary guardian's e-mail"),
        ),
        *_fields(
            C.ENROLLMENT,
            ("program_type", K.CODE, "Head Start, Early Head Start, Migrant and Seasonal, AIAN"),
            ("site_code", K.IDENTIFIER, "the site of the current enrollment"),
            ("program_option", K.CODE, "center-based, home-based, ..."),
            ("entry_date", K.DATE, "entry date of the current enrollment"),
            ("exit_date", K.DATE, "exit date of the current enrollment, if any"),
            ("exit_reason", K.CODE, "why the enrollment ended"),
            ("eligibility_category", K.CODE, "eligibility category (45 CFR 1302.12)"),
        ),
        *_fields(
            C.ATTENDANCE,
            ("days_scheduled", K.COUNT, "days scheduled in the current enrollment"),
            ("days_present", K.COUNT, "days present in the current enrollment"),
        ),
        *_fields(
            C.SERVICES,
            ("dual_language_learner", K.FLAG, "dual language learner"),
            ("homeless", K.FLAG, "experiencing homelessness (McKinney-Vento)"),
            ("foster_care", K.FLAG, "in foster care"),
            ("income_band", K.CODE, "family income band"),
        ),
        *_fields(
            C.DISABILITY,
            ("disability", K.FLAG, "has a diagnosed disability (IDEA)"),
            ("iep", K.FLAG, "has an IEP (IDEA Part B)"),
            ("ifsp", K.FLAG, "has an IFSP (IDEA Part C)"),
        ),
        # A category of its own: leaves only when an agreement names it and the child's AIAN
        # program's active opt-in does not exclude it (tribal data sovereignty, 1302.53(b)(4)).
        *_fields(
            C.TRIBAL_AFFILIATION,
            ("tribal_affiliation", K.CODE, "enrolled or affiliated tribe, as the family reports"),
        ),
    ]
}


def field(name: str) -> Field:
    """The catalog entry for ``name``; ``KeyError`` for a field the catalog does not know."""
    return CATALOG[name]
