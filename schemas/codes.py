"""Code sets of the canonical model: the values a coded column may hold.

Each is a ``StrEnum`` whose values are what the database stores; the CEDS element each follows
is named in its docstring.
"""

from __future__ import annotations

from enum import StrEnum


class ProgramType(StrEnum):
    """CEDS Early Childhood Program Enrollment Type, Head Start subset."""

    HEAD_START = "head_start"
    EARLY_HEAD_START = "early_head_start"
    MIGRANT_SEASONAL = "migrant_seasonal"
    AIAN = "aian"


class ProgramOption(StrEnum):
    """Head Start program option (45 CFR 1302 subpart B)."""

    CENTER_BASED = "center_based"
    HOME_BASED = "home_based"
    FAMILY_CHILD_CARE = "family_child_care"
    COMBINATION = "combination"
    LOCALLY_DESIGNED = "locally_designed"
    UNKNOWN = "unknown"


class Sex(StrEnum):
    """CEDS Sex."""

    FEMALE = "female"
    MALE = "male"
    NOT_SELECTED = "not_selected"


class Race(StrEnum):
    """Federal race categories (OMB 1997), one value per child; ``two_or_more`` when several."""

    AMERICAN_INDIAN_ALASKA_NATIVE = "american_indian_alaska_native"
    ASIAN = "asian"
    BLACK = "black"
    NATIVE_HAWAIIAN_PACIFIC_ISLANDER = "native_hawaiian_pacific_islander"
    WHITE = "white"
    TWO_OR_MORE = "two_or_more"
    UNKNOWN = "unknown"


class Ethnicity(StrEnum):
    """Hispanic or Latino ethnicity."""

    HISPANIC = "hispanic"
    NOT_HISPANIC = "not_hispanic"
    UNKNOWN = "unknown"


class EligibilityCategory(StrEnum):
    """Head Start eligibility (45 CFR 1302.12)."""

    INCOME = "income"
    PUBLIC_ASSISTANCE = "public_assistance"
    FOSTER_CARE = "foster_care"
    HOMELESS = "homeless"
    OVER_INCOME = "over_income"
    INCOME_101_130 = "income_101_130"
    UNKNOWN = "unknown"


class ExitReason(StrEnum):
    """Why an enrollment ended."""

    AGED_OUT = "aged_out"
    TRANSITION_TO_KINDERGARTEN = "transition_to_kindergarten"
    TRANSITION_TO_HEAD_START = "transition_to_head_start"
    FAMILY_MOVED = "family_moved"
    FAMILY_CHOICE = "family_choice"
    OTHER = "other"


class IncomeBand(StrEnum):
    """Family income as a share of the federal poverty guideline."""

    BELOW_100 = "below_100"
    FROM_100_TO_130 = "100_to_130"
    ABOVE_130 = "above_130"
    UNKNOWN = "unknown"


class Relationship(StrEnum):
    """A guardian's relationship to the child; every value is a parent under 45 CFR 1305.2
    except ``other_contact``."""

    MOTHER = "mother"
    FATHER = "father"
    GRANDPARENT_CAREGIVER = "grandparent_caregiver"
    FOSTER_PARENT = "foster_parent"
    GUARDIAN = "guardian"
    ADOPTIVE_PLACEMENT = "adoptive_placement"
    OTHER_CONTACT = "other_contact"


class RecipientCategory(StrEnum):
    """Community partners of 45 CFR 1302.53(a) that may receive data."""

    STATE_EDUCATION_DATA_SYSTEM = "state_education_data_system"
    STATE_PRESCHOOL = "state_preschool"
    LOCAL_EDUCATION_AGENCY = "local_education_agency"
    SCHOOL = "school"
    FEDERAL_AGENCY = "federal_agency"
    STATE_AGENCY = "state_agency"
    RESEARCHER = "researcher"
    HEALTH = "health"
    DISABILITY_SERVICES = "disability_services"
    CHILD_CARE = "child_care"
    CHILD_WELFARE = "child_welfare"
    FAMILY_SERVICES = "family_services"
    HOUSING = "housing"
    LIBRARY_MUSEUM = "library_museum"
    OTHER = "other"


class EntityLevel(StrEnum):
    """Who a recipient is, for the audit/evaluation and study bases of 1303.22(c)."""

    FEDERAL = "federal"
    STATE = "state"
    LOCAL = "local"
    ACTS_FOR_PROGRAM = "acts_for_program"
    PRIVATE = "private"


class RecordCategory(StrEnum):
    """Groups of child-record fields a consent or agreement names."""

    IDENTITY = "identity"
    DEMOGRAPHICS = "demographics"
    CONTACT = "contact"
    ENROLLMENT = "enrollment"
    ATTENDANCE = "attendance"
    SERVICES = "services"
    DISABILITY = "disability"
    FAMILY = "family"
    TRIBAL_AFFILIATION = "tribal_affiliation"


class ParticipationAction(StrEnum):
    """A change to a program's participation with a recipient (or, for opt-ins, all)."""

    PARTICIPATE = "participate"
    WITHDRAW = "withdraw"
    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"


class OptInScope(StrEnum):
    """What an AIAN program's opt-in lets leave."""

    RECORD = "record"
    AGGREGATE = "aggregate"


class Purpose(StrEnum):
    """Why records are disclosed: the controlled vocabulary a consent and an agreement share.

    A consent covers a disclosure only for the purpose it names (45 CFR 1303.22(a)(2): the
    consent specifies "why"); the agreement's ``purpose_code`` is the purpose its disclosures
    serve, and its free-text ``purpose`` explains it to people. Deliberately small:

    - ``state_longitudinal_data_system``: matching children to state student ids and following
      them over time in a state longitudinal or early childhood integrated data system (SLDS,
      ECIDS; 45 CFR 1302.53(b)(3));
    - ``idea_evaluation_referral``: referring a child for an evaluation for special education or
      early intervention services (IDEA Part B or C);
    - ``school_enrollment``: enrollment or transfer at a school or school system (1303.22(b));
    - ``research_study``: a study to improve child and family outcomes (1303.22(c)(3));
    - ``audit_evaluation``: audit or evaluation of education or child development programs, or
      compliance with federal requirements (1303.22(c)(2));
    - ``service_coordination``: referral to and coordination with a community partner for
      health, family or other services (1302.53(a)).
    """

    STATE_LONGITUDINAL_DATA_SYSTEM = "state_longitudinal_data_system"
    IDEA_EVALUATION_REFERRAL = "idea_evaluation_referral"
    SCHOOL_ENROLLMENT = "school_enrollment"
    RESEARCH_STUDY = "research_study"
    AUDIT_EVALUATION = "audit_evaluation"
    SERVICE_COORDINATION = "service_coordination"
