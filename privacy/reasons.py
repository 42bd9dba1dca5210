"""Reason codes of the disclosure decision, each with a one-line plain-English description.

A reason is recorded for every child (``disclosed`` or why not), every program and every field
removed from a disclosed child; audit reports print ``reason.description``. ``reason.level``
says what a reason applies to: the whole agreement, one program, one child or one field.
The string value is what the ledgers store (at most 40 characters).
"""

from __future__ import annotations

from enum import StrEnum


class Level(StrEnum):
    """What a reason applies to."""

    OK = "ok"
    AGREEMENT = "agreement"
    PROGRAM = "program"
    CHILD = "child"
    FIELD = "field"


class Reason(StrEnum):
    """Why a child, program or field was disclosed or withheld."""

    description: str
    level: Level

    def __new__(cls, value: str, level: Level, description: str) -> Reason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.level = level
        member.description = description
        return member

    DISCLOSED = "disclosed", Level.OK, "disclosed under the agreement"

    # the agreement as a whole, on the run date
    AGREEMENT_NOT_YET_EFFECTIVE = (
        "agreement_not_yet_effective",
        Level.AGREEMENT,
        "the agreement is not yet in effect on the run date",
    )
    AGREEMENT_EXPIRED = (
        "agreement_expired",
        Level.AGREEMENT,
        "the agreement expired before the run date",
    )
    RECIPIENT_SUSPENDED = (
        "recipient_suspended",
        Level.AGREEMENT,
        "the recipient is barred from access (suspension window) on the run date",
    )
    AGREEMENT_REVIEW_OVERDUE = (
        "agreement_review_overdue",
        Level.AGREEMENT,
        "the agreement was not reviewed in the 12 months up to the run date",
    )
    RECIPIENT_NOT_ELIGIBLE = (
        "recipient_not_eligible",
        Level.AGREEMENT,
        "the recipient may not receive data on this legal basis",
    )
    DESTRUCTION_TERMS_MISSING = (
        "destruction_terms_missing",
        Level.AGREEMENT,
        "an audit or study agreement without terms for destroying the data",
    )
    RECIPIENT_NO_JURISDICTION = (
        "recipient_no_jurisdiction",
        Level.AGREEMENT,
        "the recipient has no state on record, so no program's data may go to it",
    )

    # the program's participation with the recipient
    PROGRAM_NOT_REGISTERED = (
        "program_not_registered",
        Level.PROGRAM,
        "the program is not registered as participating with this recipient",
    )
    PROGRAM_WITHDRAWN = (
        "program_withdrawn",
        Level.PROGRAM,
        "the program withdrew from sharing with this recipient",
    )
    AIAN_NO_OPT_IN = (
        "aian_no_opt_in",
        Level.PROGRAM,
        "an AIAN program without an active opt-in shares nothing",
    )
    AIAN_AGGREGATE_ONLY = (
        "aian_aggregate_only",
        Level.PROGRAM,
        "the AIAN program opted in to aggregate outputs only, not child records",
    )
    AIAN_OPT_IN_INCOMPLETE = (
        "aian_opt_in_incomplete",
        Level.PROGRAM,
        "the AIAN program's opt-in lacks its authority, who recorded it, its date or its "
        "scope, so it is not the program's decision and nothing leaves (45 CFR 1302.53(b)(4))",
    )
    PROGRAM_NOT_IN_JURISDICTION = (
        "program_not_in_jurisdiction",
        Level.PROGRAM,
        "the program is no longer in the recipient's state, so the recipient's agreement no "
        "longer covers it",
    )
    PROGRAM_OUT_OF_SCOPE = (
        "program_out_of_scope",
        Level.PROGRAM,
        "the program no longer shares with this recipient (participation withdrawn, AIAN "
        "opt-in ended or incomplete, agreement expired or lapsed), or no longer shares child "
        "records (an AIAN opt-in narrowed to aggregate outputs), and the agreement asks the "
        "recipient to delete what it holds of children who no longer qualify",
    )

    # the child's legal basis: written consent (45 CFR 1303.22(a))
    NO_CONSENT = "no_consent", Level.CHILD, "no written consent on file"
    CONSENT_OTHER_RECIPIENT = (
        "consent_other_recipient",
        Level.CHILD,
        "the consent names another recipient or class of recipients",
    )
    CONSENT_OTHER_PURPOSE = (
        "consent_other_purpose",
        Level.CHILD,
        "the consent names another purpose than the agreement's (1303.22(a))",
    )
    CONSENT_CATEGORY_NOT_COVERED = (
        "consent_category_not_covered",
        Level.CHILD,
        "the valid consents together do not name every record category the agreement sends",
    )
    CONSENT_UNSIGNED = "consent_unsigned", Level.CHILD, "the consent is not signed"
    CONSENT_UNDATED = "consent_undated", Level.CHILD, "the consent is not dated"
    CONSENT_NOT_BY_PARENT = (
        "consent_not_by_parent",
        Level.CHILD,
        "the consent was not signed by a parent of this child on the signing date",
    )
    CONSENT_SIGNED_AFTER_RUN_DATE = (
        "consent_signed_after_run_date",
        Level.CHILD,
        "the consent was signed after the run date",
    )
    CONSENT_EXPIRED = "consent_expired", Level.CHILD, "the consent expired before the run date"
    CONSENT_REVOKED = (
        "consent_revoked",
        Level.CHILD,
        "the parent revoked the consent on or before the run date",
    )

    # the child's legal basis: notice to the school or LEA (45 CFR 1303.22(b))
    NOTICE_MISSING = (
        "notice_missing",
        Level.CHILD,
        "no enrollment notice to this school or LEA on file",
    )
    NOTICE_PERIOD_NOT_ELAPSED = (
        "notice_period_not_elapsed",
        Level.CHILD,
        "the parent was notified too recently to have had the chance to refuse",
    )
    NOTICE_REFUSED = "notice_refused", Level.CHILD, "the parent refused the disclosure"

    # one field of a child that is otherwise disclosed
    AIAN_FIELD_EXCLUDED = (
        "aian_field_excluded",
        Level.FIELD,
        "the AIAN program's opt-in excludes this field",
    )
    NOTICE_CATEGORY_NOT_PERMITTED = (
        "notice_category_not_permitted",
        Level.FIELD,
        "only identity and enrollment fields may go to a school on notice",
    )
    DISABILITY_CONSENT_MISSING = (
        "disability_consent_missing",
        Level.FIELD,
        "no valid consent naming disability records (IDEA)",
    )
    PARENT_STATEMENT_NOT_CARRIED = (
        "parent_statement_not_carried",
        Level.FIELD,
        "a parent's statement is on file and the agreement does not carry it",
    )
    PARENT_STATEMENT_ON_TRANSFORMED_FIELD = (
        "parent_statement_on_transformed_field",
        Level.FIELD,
        "a parent's statement could reveal the exact value of a field sent transformed",
    )
    TRIBAL_AFFILIATION_NOT_PERMITTED = (
        "tribal_affiliation_not_permitted",
        Level.FIELD,
        "tribal affiliation leaves only under an AIAN program's active opt-in",
    )

    # after the decision: what the target format or the destination itself requires
    REQUIRED_FIELD_MISSING = (
        "required_field_missing",
        Level.CHILD,
        "the target needs a field the agreement does not permit, or the child lacks it",
    )
    DESTINATION_REJECTED = (
        "destination_rejected",
        Level.CHILD,
        "the destination refused the record (its message is in the rule)",
    )


_BY_VALUE: dict[str, Reason] = {reason.value: reason for reason in Reason}


def describe(code: str) -> str:
    """The description of a reason code; ``ValueError`` for an unknown code."""
    try:
        return _BY_VALUE[code].description
    except KeyError:
        raise ValueError(f"unknown reason code {code}") from None


# The regulation behind each reason, for readers who want the text (45 CFR unless named).
CITATIONS: dict[str, str] = {
    "disclosed": "45 CFR 1303.22",
    "agreement_not_yet_effective": "45 CFR 1303.22(c)(2)-(3), (d)",
    "agreement_expired": "45 CFR 1303.22(c)(2)-(3), (d)",
    "recipient_suspended": "45 CFR 1303.22(d)",
    "agreement_review_overdue": "45 CFR 1303.22(d)",
    "recipient_not_eligible": "45 CFR 1303.22(b)-(c)",
    "destruction_terms_missing": "45 CFR 1303.22(c)(2)-(3)",
    "program_not_registered": "45 CFR 1302.53(b)(3)",
    "program_withdrawn": "45 CFR 1302.53(b)(3)",
    "aian_no_opt_in": "45 CFR 1302.53(b)(4)",
    "aian_aggregate_only": "45 CFR 1302.53(b)(4)",
    "no_consent": "45 CFR 1303.22(a)",
    "consent_other_recipient": "45 CFR 1303.22(a)",
    "consent_category_not_covered": "45 CFR 1303.22(a)",
    "consent_unsigned": "45 CFR 1303.22(a)",
    "consent_undated": "45 CFR 1303.22(a)",
    "consent_not_by_parent": "45 CFR 1303.22(a), 1305.2",
    "consent_signed_after_run_date": "45 CFR 1303.22(a)",
    "consent_expired": "45 CFR 1303.22(a)",
    "consent_revoked": "45 CFR 1303.22(a)",
    "notice_missing": "45 CFR 1303.22(b)",
    "notice_period_not_elapsed": "45 CFR 1303.22(b)",
    "notice_refused": "45 CFR 1303.22(b)",
    "aian_field_excluded": "45 CFR 1302.53(b)(4)",
    "notice_category_not_permitted": "45 CFR 1303.22(b), (f)",
    "disability_consent_missing": "34 CFR 300.622, 303.414 (IDEA)",
    "parent_statement_not_carried": "45 CFR 1303.24(c)",
    "required_field_missing": "45 CFR 1303.22(f)",
    "destination_rejected": "45 CFR 1303.24(b)",
    "recipient_no_jurisdiction": "45 CFR 1302.53(b)(3); 42 U.S.C. 9836a(b)(4)",
    "aian_opt_in_incomplete": "45 CFR 1302.53(b)(4)",
    "program_not_in_jurisdiction": "45 CFR 1302.53(b)(3); 42 U.S.C. 9836a(b)(4)",
    "program_out_of_scope": "45 CFR 1302.53(b)(3)-(4), 1303.22(c)(2)-(3)",
    "consent_other_purpose": "45 CFR 1303.22(a)",
    "parent_statement_on_transformed_field": "45 CFR 1303.24(c), 1303.22(f)",
    "tribal_affiliation_not_permitted": "45 CFR 1302.53(b)(4)",
}


def citation(code: str) -> str:
    """The regulation behind a reason code, or an empty string when none is recorded."""
    return CITATIONS.get(code, "")
