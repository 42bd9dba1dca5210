"""Consent by a parent of this child, for this purpose, category by category over all valid
consents (45 CFR 1303.22(a); "parent" in 1305.2; IDEA consent for disability records).

Each table sits on a boundary: the signing date against the signer's relationship dates, a
sibling's guardian, the purpose code, consents that only together cover what is sent.
"""

from __future__ import annotations

from typing import Any

import pytest

from privacy.decision import decide
from privacy.reasons import Reason
from tests.privacy.builders import (
    DAY,
    PROGRAM,
    RUN,
    SEDS,
    agreement,
    child,
    consent,
    inputs,
    participating,
    unchecked,
)

OK = Reason.DISCLOSED
R = Reason
SIGNED = RUN - 30 * DAY  # the builders' signing date
IDEA_REFERRAL = "idea_evaluation_referral"


def case(name: str, expected: Reason, **overrides: Any):  # type: ignore[no-untyped-def]
    return pytest.param(overrides, expected, id=name)


def reason_of(consents: list[dict[str, Any]], terms=None) -> str:  # type: ignore[no-untyped-def]
    data = inputs([child(1), child(2)], consents)
    decision = decide(data, terms or agreement(), SEDS, RUN, participation=participating(PROGRAM))
    return str(decision.children.set_index("child_id").loc[1, "reason"])


SIGNER = [
    case("when_relationship_has_no_dates_then_disclosed", OK),
    case("when_relationship_began_on_signing_date_then_disclosed", OK, signer_since=SIGNED),
    case("when_relationship_began_day_before_signing_then_disclosed", OK,
         signer_since=SIGNED - DAY),
    case("when_relationship_began_day_after_signing_then_withheld", R.CONSENT_NOT_BY_PARENT,
         signer_since=SIGNED + DAY),
    case("when_relationship_ended_on_signing_date_then_disclosed", OK, signer_until=SIGNED),
    case("when_relationship_ended_day_before_signing_then_withheld", R.CONSENT_NOT_BY_PARENT,
         signer_until=SIGNED - DAY),
    case("when_relationship_ended_after_signing_before_run_then_disclosed", OK,
         signer_until=RUN - DAY),
    case("when_relationship_window_excludes_signing_date_then_withheld",
         R.CONSENT_NOT_BY_PARENT, signer_since=SIGNED - 10 * DAY, signer_until=SIGNED - DAY),
    case("when_signed_by_siblings_guardian_then_withheld", R.CONSENT_NOT_BY_PARENT,
         signer_child_id=2),
    case("when_signed_by_siblings_mother_with_matching_dates_then_withheld",
         R.CONSENT_NOT_BY_PARENT, signer_child_id=2, signer_since=SIGNED - DAY),
    case("when_signer_row_missing_then_withheld", R.CONSENT_NOT_BY_PARENT,
         signer_child_id=None, signer_relationship=None),
    case("when_signed_by_foster_parent_of_this_child_then_disclosed", OK,
         signer_relationship="foster_parent"),
    case("when_signed_by_other_contact_then_withheld", R.CONSENT_NOT_BY_PARENT,
         signer_relationship="other_contact"),
    case("when_relationship_code_unknown_then_withheld", R.CONSENT_NOT_BY_PARENT,
         signer_relationship="neighbour"),
    case("when_siblings_guardian_and_revoked_then_not_by_parent_reported",
         R.CONSENT_NOT_BY_PARENT, signer_child_id=2, revoked_date=RUN),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "expected"), SIGNER)
def test_signer_must_be_a_parent_of_this_child_on_the_signing_date(
    overrides: dict[str, Any], expected: Reason
) -> None:
    assert reason_of([consent(1, **overrides)]) == expected.value


PURPOSE = [
    case("when_consent_names_the_agreements_purpose_then_disclosed", OK),
    case("when_consent_for_idea_referral_then_withheld", R.CONSENT_OTHER_PURPOSE,
         purpose_code=IDEA_REFERRAL),
    case("when_consent_has_no_purpose_code_then_withheld", R.CONSENT_OTHER_PURPOSE,
         purpose_code=None),
    case("when_consent_for_research_then_withheld", R.CONSENT_OTHER_PURPOSE,
         purpose_code="research_study"),
    case("when_other_recipient_and_other_purpose_then_recipient_reported",
         R.CONSENT_OTHER_RECIPIENT, recipient_code="MO-DESE", purpose_code=IDEA_REFERRAL),
    case("when_other_purpose_and_revoked_then_purpose_reported", R.CONSENT_OTHER_PURPOSE,
         purpose_code=IDEA_REFERRAL, revoked_date=RUN),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "expected"), PURPOSE)
def test_consent_must_name_the_agreements_purpose(
    overrides: dict[str, Any], expected: Reason
) -> None:
    assert reason_of([consent(1, **overrides)]) == expected.value


def test_when_agreement_has_no_purpose_code_then_no_consent_matches() -> None:
    terms = unchecked(agreement(), purpose_code=None)
    assert reason_of([consent(1)], terms) == R.CONSENT_OTHER_PURPOSE.value


def test_when_consent_names_purpose_as_enum_or_text_then_same() -> None:
    from schemas.codes import Purpose

    as_enum = consent(1, purpose_code=Purpose.STATE_LONGITUDINAL_DATA_SYSTEM)
    assert reason_of([as_enum]) == OK.value


IDENTITY = ["identity"]
REST = ["demographics", "enrollment"]
COVER = [
    pytest.param([{"record_categories": IDENTITY}, {"record_categories": REST}], OK,
                 id="when_two_valid_consents_cover_complementary_categories_then_disclosed"),
    pytest.param([{"record_categories": ["identity"]}, {"record_categories": ["demographics"]},
                  {"record_categories": ["enrollment"]}], OK,
                 id="when_three_consents_one_category_each_then_disclosed"),
    pytest.param([{"record_categories": IDENTITY},
                  {"record_categories": REST, "recipient_code": None,
                   "recipient_category": "state_education_data_system"}], OK,
                 id="when_one_names_recipient_and_other_its_class_then_disclosed"),
    pytest.param([{"record_categories": IDENTITY},
                  {"record_categories": REST, "expires_date": RUN}], OK,
                 id="when_one_expires_on_run_date_then_disclosed"),
    pytest.param([{"record_categories": IDENTITY},
                  {"record_categories": REST, "expires_date": RUN - DAY}],
                 R.CONSENT_CATEGORY_NOT_COVERED,
                 id="when_one_of_two_expired_then_not_covered"),
    pytest.param([{"record_categories": IDENTITY},
                  {"record_categories": REST, "revoked_date": RUN}],
                 R.CONSENT_CATEGORY_NOT_COVERED, id="when_one_of_two_revoked_then_not_covered"),
    pytest.param([{"record_categories": IDENTITY},
                  {"record_categories": REST, "revoked_date": RUN + DAY}], OK,
                 id="when_one_revoked_after_run_date_then_disclosed"),
    pytest.param([{"record_categories": IDENTITY},
                  {"record_categories": REST, "signer_child_id": 2}],
                 R.CONSENT_CATEGORY_NOT_COVERED,
                 id="when_one_signed_by_siblings_guardian_then_not_covered"),
    pytest.param([{"record_categories": IDENTITY},
                  {"record_categories": REST, "purpose_code": IDEA_REFERRAL}],
                 R.CONSENT_CATEGORY_NOT_COVERED,
                 id="when_one_for_another_purpose_then_not_covered"),
    pytest.param([{"record_categories": IDENTITY},
                  {"record_categories": REST, "recipient_code": "MO-DESE"}],
                 R.CONSENT_CATEGORY_NOT_COVERED,
                 id="when_one_for_another_recipient_then_not_covered"),
    pytest.param([{"record_categories": IDENTITY},
                  {"record_categories": ["demographics"]}],
                 R.CONSENT_CATEGORY_NOT_COVERED,
                 id="when_valid_consents_leave_a_category_out_then_not_covered"),
    pytest.param([{"record_categories": IDENTITY, "revoked_date": RUN},
                  {"record_categories": REST, "revoked_date": RUN}], R.CONSENT_REVOKED,
                 id="when_both_revoked_then_revoked"),
    pytest.param([{"record_categories": ["identity", "demographics", "enrollment"],
                   "revoked_date": RUN},
                  {"record_categories": IDENTITY}], R.CONSENT_CATEGORY_NOT_COVERED,
                 id="when_wide_one_revoked_and_narrow_one_valid_then_not_covered"),
    pytest.param([{"record_categories": IDENTITY, "child_id": 2},
                  {"record_categories": REST}], R.CONSENT_CATEGORY_NOT_COVERED,
                 id="when_siblings_consent_would_complete_then_not_covered"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "expected"), COVER)
def test_categories_are_covered_by_all_valid_consents_together(
    overrides: list[dict[str, Any]], expected: Reason
) -> None:
    consents = [consent(**({"child_id": 1} | o)) for o in overrides]
    assert reason_of(consents) == expected.value


DISABILITY = ("disability", "iep", "ifsp")
WITH_DISABILITY = {
    "record_categories": ["identity", "services", "disability"],
    "fields": {"program_code": "keep", "homeless": "keep", **dict.fromkeys(DISABILITY, "keep")},
}
BASE = ["identity", "services"]
DISABILITY_SPLIT = [
    pytest.param([{"record_categories": BASE}, {"record_categories": ["disability"]}],
                 OK, True, id="when_base_and_disability_consents_valid_then_all_kept"),
    pytest.param([{"record_categories": ["identity"]},
                  {"record_categories": ["services", "disability"]}],
                 OK, True, id="when_disability_named_with_part_of_base_then_all_kept"),
    pytest.param([{"record_categories": BASE},
                  {"record_categories": ["disability"], "expires_date": RUN - DAY}],
                 OK, False, id="when_disability_consent_expired_then_disability_removed"),
    pytest.param([{"record_categories": BASE},
                  {"record_categories": ["disability"], "purpose_code": IDEA_REFERRAL}],
                 OK, False, id="when_disability_consent_for_idea_referral_then_removed"),
    pytest.param([{"record_categories": BASE},
                  {"record_categories": ["disability"], "signer_child_id": 2}],
                 OK, False, id="when_disability_consent_by_siblings_guardian_then_removed"),
    pytest.param([{"record_categories": ["disability"]}],
                 R.CONSENT_CATEGORY_NOT_COVERED, None,
                 id="when_only_disability_consent_then_child_withheld"),
    pytest.param([{"record_categories": [*BASE, "disability"], "purpose_code": IDEA_REFERRAL}],
                 R.CONSENT_OTHER_PURPOSE, None,
                 id="when_referral_consent_names_everything_then_child_withheld"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "expected", "kept"), DISABILITY_SPLIT)
def test_disability_fields_need_a_valid_consent_naming_disability(
    overrides: list[dict[str, Any]], expected: Reason, kept: bool | None
) -> None:
    consents = [consent(**({"child_id": 1} | o)) for o in overrides]
    data = inputs([child(1)], consents)
    decision = decide(
        data, agreement(**WITH_DISABILITY), SEDS, RUN, participation=participating(PROGRAM)
    )
    assert decision.children.loc[0, "reason"] == expected.value
    if kept is not None:
        assert decision.disclosed_fields(1) == (
            ("program_code", "homeless", *DISABILITY) if kept else ("program_code", "homeless")
        )
