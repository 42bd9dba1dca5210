"""The agreement as a whole on the run date: in force, reviewed, not suspended, eligible.

Every boundary is tried on the day, the day before and the day after (run date ``RUN``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from privacy.agreements import Suspension
from privacy.decision import RecipientInfo, decide
from privacy.errors import DecisionError
from privacy.reasons import Reason
from tests.privacy.builders import (
    DAY,
    FEDERAL,
    LEA,
    PRIVATE,
    PROGRAM,
    RESEARCHER,
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
YEAR_BEFORE = dt.date(2025, 11, 27)  # RUN minus one year: the review anniversary


def case(name: str, expected: Reason, **overrides: Any):  # type: ignore[no-untyped-def]
    return pytest.param(overrides, expected, id=name)


def window(start: dt.date, end: dt.date | None) -> tuple[Suspension, ...]:
    return (Suspension(start=start, end=end, reason="violation of redisclosure terms"),)


IN_FORCE = [
    case("when_effective_day_after_run_date_then_not_yet_effective",
         Reason.AGREEMENT_NOT_YET_EFFECTIVE, effective=RUN + DAY, last_reviewed=RUN),
    case("when_effective_on_run_date_then_disclosed", OK, effective=RUN, last_reviewed=RUN),
    case("when_effective_day_before_run_date_then_disclosed", OK, effective=RUN - DAY),
    case("when_expires_day_before_run_date_then_expired", Reason.AGREEMENT_EXPIRED,
         expires=RUN - DAY),
    case("when_expires_on_run_date_then_disclosed", OK, expires=RUN),
    case("when_expires_day_after_run_date_then_disclosed", OK, expires=RUN + DAY),
    case("when_reviewed_a_year_and_a_day_before_then_review_overdue",
         Reason.AGREEMENT_REVIEW_OVERDUE, last_reviewed=YEAR_BEFORE - DAY),
    case("when_review_anniversary_on_run_date_then_disclosed", OK, last_reviewed=YEAR_BEFORE),
    case("when_reviewed_a_year_less_a_day_before_then_disclosed", OK,
         last_reviewed=YEAR_BEFORE + DAY),
    case("when_reviewed_on_run_date_then_disclosed", OK, last_reviewed=RUN),
    case("when_review_dated_after_run_date_then_review_overdue",
         Reason.AGREEMENT_REVIEW_OVERDUE, last_reviewed=RUN + DAY),
    case("when_suspension_starts_day_after_run_date_then_disclosed", OK,
         suspensions=window(RUN + DAY, None)),
    case("when_suspension_starts_on_run_date_then_suspended", Reason.RECIPIENT_SUSPENDED,
         suspensions=window(RUN, None)),
    case("when_open_suspension_started_day_before_then_suspended", Reason.RECIPIENT_SUSPENDED,
         suspensions=window(RUN - DAY, None)),
    case("when_suspension_ended_day_before_run_date_then_disclosed", OK,
         suspensions=window(RUN - 30 * DAY, RUN - DAY)),
    case("when_suspension_ends_on_run_date_then_suspended", Reason.RECIPIENT_SUSPENDED,
         suspensions=window(RUN - 30 * DAY, RUN)),
    case("when_suspension_ends_day_after_run_date_then_suspended", Reason.RECIPIENT_SUSPENDED,
         suspensions=window(RUN - 30 * DAY, RUN + DAY)),
    case("when_expired_and_suspended_then_expired_reported_first", Reason.AGREEMENT_EXPIRED,
         expires=RUN - DAY, suspensions=window(RUN - 30 * DAY, None)),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "expected"), IN_FORCE)
def test_agreement_in_force_on_run_date(overrides: dict[str, Any], expected: Reason) -> None:
    data = inputs([child(1)], [consent(1)])
    decision = decide(data, agreement(**overrides), SEDS, RUN, participation=participating(PROGRAM))
    assert decision.children["reason"].tolist() == [expected.value]
    assert decision.children["disclose"].tolist() == [expected is OK]
    assert decision.programs[PROGRAM].reason is expected
    assert decision.agreement_reason == (None if expected is OK else expected)


@pytest.mark.parametrize(
    ("reviewed", "run_date", "expected"),
    [
        pytest.param(dt.date(2025, 11, 28), dt.date(2026, 11, 28), OK,
                     id="when_reviewed_2025_11_28_then_fine_on_2026_11_28"),
        pytest.param(dt.date(2025, 11, 28), dt.date(2026, 11, 29),
                     Reason.AGREEMENT_REVIEW_OVERDUE,
                     id="when_reviewed_2025_11_28_then_overdue_on_2026_11_29"),
        pytest.param(dt.date(2024, 2, 29), dt.date(2025, 2, 28), OK,
                     id="when_reviewed_on_leap_day_then_fine_on_28_february"),
        pytest.param(dt.date(2024, 2, 29), dt.date(2025, 3, 1), Reason.AGREEMENT_REVIEW_OVERDUE,
                     id="when_reviewed_on_leap_day_then_overdue_on_1_march"),
    ],
)  # fmt: skip
def test_review_anniversary(reviewed: dt.date, run_date: dt.date, expected: Reason) -> None:
    base = agreement(effective=dt.date(2020, 1, 1), last_reviewed=reviewed)
    data = inputs([child(1)], [consent(1, signed_date=dt.date(2020, 1, 1))])
    decision = decide(data, base, SEDS, run_date, participation=participating(PROGRAM))
    assert decision.children["reason"].tolist() == [expected.value]


AUDIT_FIELDS = {"program_code": "keep", "child_local_id": "keep", "entry_date": "keep"}


def audit(basis: str, recipient: RecipientInfo, **overrides: Any):  # type: ignore[no-untyped-def]
    data: dict[str, Any] = {
        "legal_basis": basis,
        "recipient": recipient.code,
        "destruction": "destroyed within 90 days of the end of the study",
        "record_categories": ["identity", "enrollment"],
        "fields": AUDIT_FIELDS,
    }
    return agreement(**(data | overrides))


ELIGIBILITY = [
    pytest.param("audit_evaluation", SEDS, {}, OK, id="when_audit_by_state_then_disclosed"),
    pytest.param("audit_evaluation", FEDERAL, {}, OK, id="when_audit_by_federal_then_disclosed"),
    pytest.param("study", RESEARCHER, {}, OK,
                 id="when_study_for_the_program_then_disclosed"),
    pytest.param("study", LEA, {}, Reason.RECIPIENT_NOT_ELIGIBLE,
                 id="when_study_by_local_agency_then_not_eligible"),
    pytest.param("audit_evaluation", PRIVATE, {}, Reason.RECIPIENT_NOT_ELIGIBLE,
                 id="when_audit_by_private_party_then_not_eligible"),
    pytest.param("audit_evaluation", SEDS, {"destruction": None},
                 Reason.DESTRUCTION_TERMS_MISSING,
                 id="when_audit_without_destruction_then_withheld"),
    pytest.param("study", FEDERAL, {"destruction": "   "}, Reason.DESTRUCTION_TERMS_MISSING,
                 id="when_study_with_blank_destruction_then_withheld"),
]  # fmt: skip


@pytest.mark.parametrize(("basis", "recipient", "update", "expected"), ELIGIBILITY)
def test_audit_and_study_need_eligible_recipient_and_destruction_terms(
    basis: str, recipient: RecipientInfo, update: dict[str, Any], expected: Reason
) -> None:
    terms = unchecked(audit(basis, recipient), **update)
    data = inputs([child(1), child(2)])  # no consents needed
    decision = decide(data, terms, recipient, RUN, participation=participating(PROGRAM))
    assert decision.children["reason"].tolist() == [expected.value] * 2
    assert decision.children["disclose"].all() == (expected is OK)


def test_when_notice_agreement_with_a_state_system_then_recipient_not_eligible() -> None:
    terms = unchecked(audit("school_enrollment_notice", LEA), recipient=SEDS.code)
    decision = decide(inputs([child(1)]), terms, SEDS, RUN, participation=participating(PROGRAM))
    assert decision.children["reason"].tolist() == [Reason.RECIPIENT_NOT_ELIGIBLE.value]


def test_when_agreement_blocked_then_every_program_reports_its_reason() -> None:
    terms = agreement(expires=RUN - DAY)
    registry = participating(PROGRAM, "MO-HS-03")
    decision = decide(inputs([child(1)], [consent(1)]), terms, SEDS, RUN, participation=registry)
    assert {p: o.reason for p, o in decision.programs.items()} == {
        PROGRAM: Reason.AGREEMENT_EXPIRED,
        "MO-HS-03": Reason.AGREEMENT_EXPIRED,
    }
    assert not any(o.shares for o in decision.programs.values())
    assert decision.field_removals.empty and decision.field_mask.empty


def test_when_agreement_is_with_another_recipient_then_decision_error() -> None:
    with pytest.raises(DecisionError, match="not VT-BSD"):
        decide(inputs([child(1)]), agreement(), LEA, RUN, participation=participating(PROGRAM))


def test_when_run_date_is_a_datetime_then_decision_error() -> None:
    when = dt.datetime(2026, 11, 27, 12)
    with pytest.raises(DecisionError, match="run_date"):
        decide(inputs([child(1)]), agreement(), SEDS, when, participation={})
