"""Notice with a chance to refuse, to the school or LEA (45 CFR 1303.22(b))."""

from __future__ import annotations

from typing import Any

import pytest

from privacy.decision import decide
from privacy.reasons import Reason
from tests.privacy.builders import (
    DAY,
    LEA,
    PROGRAM,
    RUN,
    agreement,
    child,
    inputs,
    notice,
    participating,
)

OK = Reason.DISCLOSED
R = Reason


def terms(**overrides: Any):  # type: ignore[no-untyped-def]
    data: dict[str, Any] = {
        "id": "vt-bsd-notice",
        "recipient": LEA.code,
        "legal_basis": "school_enrollment_notice",
        "record_categories": ["identity", "enrollment"],
        "notice_days": 10,
        "fields": {"program_code": "keep", "child_local_id": "keep", "entry_date": "keep"},
    }
    return agreement(**(data | overrides))


def case(name: str, expected: Reason, *notices: dict[str, Any]):  # type: ignore[no-untyped-def]
    return pytest.param(list(notices), expected, id=name)


CASES = [
    case("when_notified_notice_days_before_run_date_then_disclosed", OK,
         {"notified_date": RUN - 10 * DAY}),
    case("when_notified_a_day_earlier_than_needed_then_disclosed", OK,
         {"notified_date": RUN - 11 * DAY}),
    case("when_notified_a_day_too_late_then_period_not_elapsed", R.NOTICE_PERIOD_NOT_ELAPSED,
         {"notified_date": RUN - 9 * DAY}),
    case("when_notified_after_run_date_then_period_not_elapsed", R.NOTICE_PERIOD_NOT_ELAPSED,
         {"notified_date": RUN + DAY}),
    case("when_refused_day_before_run_date_then_refused", R.NOTICE_REFUSED,
         {"refused_date": RUN - DAY}),
    case("when_refused_on_run_date_then_refused", R.NOTICE_REFUSED, {"refused_date": RUN}),
    case("when_refused_day_after_run_date_then_still_refused", R.NOTICE_REFUSED,
         {"refused_date": RUN + DAY}),
    case("when_no_notice_then_notice_missing", R.NOTICE_MISSING),
    case("when_notice_names_another_school_then_notice_missing", R.NOTICE_MISSING,
         {"recipient_code": "MO-KCPS"}),
    case("when_notice_has_no_date_then_notice_missing", R.NOTICE_MISSING,
         {"notified_date": None}),
    case("when_old_refusal_and_new_notice_then_refused", R.NOTICE_REFUSED,
         {"notified_date": RUN - 400 * DAY, "refused_date": RUN - 390 * DAY},
         {"notified_date": RUN - 30 * DAY}),
    case("when_recent_and_elapsed_notices_then_disclosed", OK,
         {"notified_date": RUN - DAY}, {"notified_date": RUN - 20 * DAY}),
    case("when_another_schools_refusal_then_disclosed", OK,
         {"recipient_code": "MO-KCPS", "refused_date": RUN - DAY}, {}),
]  # fmt: skip


@pytest.mark.parametrize(("notices", "expected"), CASES)
def test_notice(notices: list[dict[str, Any]], expected: Reason) -> None:
    data = inputs([child(1), child(2)], notices=[notice(1, **n) for n in notices])
    decision = decide(data, terms(), LEA, RUN, participation=participating(PROGRAM))
    reasons = decision.children.set_index("child_id")["reason"]
    assert (reasons[1], reasons[2]) == (expected.value, R.NOTICE_MISSING.value)


@pytest.mark.parametrize(
    ("days", "notified", "expected"),
    [
        pytest.param(0, RUN, OK,
                     id="when_zero_notice_days_and_notified_on_run_date_then_disclosed"),
        pytest.param(0, RUN + DAY, R.NOTICE_PERIOD_NOT_ELAPSED,
                     id="when_zero_notice_days_and_notified_after_then_period_not_elapsed"),
        pytest.param(30, RUN - 30 * DAY, OK, id="when_30_notice_days_elapsed_then_disclosed"),
        pytest.param(30, RUN - 29 * DAY, R.NOTICE_PERIOD_NOT_ELAPSED,
                     id="when_30_notice_days_not_elapsed_then_period_not_elapsed"),
    ],
)  # fmt: skip
def test_notice_days_come_from_the_agreement(days: int, notified: Any, expected: Reason) -> None:
    data = inputs([child(1)], notices=[notice(1, notified_date=notified)])
    decision = decide(data, terms(notice_days=days), LEA, RUN, participation=participating(PROGRAM))
    assert decision.children["reason"].tolist() == [expected.value]


def test_when_notice_basis_then_consents_are_not_needed_nor_read() -> None:
    data = inputs([child(1)], notices=[notice(1)])
    data = type(data)(data.children, data.consents.drop(columns="signed_date"), data.notices,
                      data.statements)  # fmt: skip
    decision = decide(data, terms(), LEA, RUN, participation=participating(PROGRAM))
    assert decision.children["disclose"].tolist() == [True]
