"""Written parental consent (45 CFR 1303.22(a)): each rule, on, before and after each date."""

from __future__ import annotations

from typing import Any

import pandas as pd
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
)

OK = Reason.DISCLOSED
R = Reason


def case(name: str, expected: Reason, **overrides: Any):  # type: ignore[no-untyped-def]
    return pytest.param(overrides, expected, id=name)


ONE_CONSENT = [
    case("when_consent_valid_then_disclosed", OK),
    case("when_consent_signed_day_before_run_date_then_disclosed", OK, signed_date=RUN - DAY),
    case("when_consent_signed_on_run_date_then_disclosed", OK, signed_date=RUN),
    case("when_consent_signed_day_after_run_date_then_withheld",
         R.CONSENT_SIGNED_AFTER_RUN_DATE, signed_date=RUN + DAY),
    case("when_consent_revoked_day_before_run_date_then_withheld", R.CONSENT_REVOKED,
         revoked_date=RUN - DAY),
    case("when_consent_revoked_on_run_date_then_withheld", R.CONSENT_REVOKED, revoked_date=RUN),
    case("when_consent_revoked_day_after_run_date_then_disclosed", OK, revoked_date=RUN + DAY),
    case("when_consent_expired_day_before_run_date_then_withheld", R.CONSENT_EXPIRED,
         expires_date=RUN - DAY),
    case("when_consent_expires_on_run_date_then_disclosed", OK, expires_date=RUN),
    case("when_consent_expires_day_after_run_date_then_disclosed", OK, expires_date=RUN + DAY),
    case("when_consent_undated_then_withheld", R.CONSENT_UNDATED, signed_date=None),
    case("when_consent_unsigned_then_withheld", R.CONSENT_UNSIGNED, signature_evidence=None),
    case("when_consent_signature_blank_then_withheld", R.CONSENT_UNSIGNED,
         signature_evidence="  "),
    case("when_consent_signed_by_other_contact_then_withheld", R.CONSENT_NOT_BY_PARENT,
         signer_relationship="other_contact"),
    case("when_consent_signer_unknown_then_withheld", R.CONSENT_NOT_BY_PARENT,
         signer_child_id=None, signer_relationship=None),
    case("when_consent_names_another_recipient_then_withheld", R.CONSENT_OTHER_RECIPIENT,
         recipient_code="MO-DESE"),
    case("when_consent_names_recipient_class_then_disclosed", OK, recipient_code=None,
         recipient_category="state_education_data_system"),
    case("when_consent_names_another_class_then_withheld", R.CONSENT_OTHER_RECIPIENT,
         recipient_code=None, recipient_category="health"),
    case("when_consent_names_no_recipient_then_withheld", R.CONSENT_OTHER_RECIPIENT,
         recipient_code=None, recipient_category=None),
    case("when_consent_names_other_recipient_of_same_class_then_withheld",
         R.CONSENT_OTHER_RECIPIENT, recipient_code="MO-DESE",
         recipient_category="state_education_data_system"),
    case("when_consent_covers_identity_only_then_withheld", R.CONSENT_CATEGORY_NOT_COVERED,
         record_categories=["identity"]),
    case("when_consent_names_no_category_then_withheld", R.CONSENT_CATEGORY_NOT_COVERED,
         record_categories=[]),
    case("when_consent_categories_missing_then_withheld", R.CONSENT_CATEGORY_NOT_COVERED,
         record_categories=None),
    case("when_consent_covers_exactly_the_agreement_categories_then_disclosed", OK,
         record_categories=("identity", "demographics", "enrollment")),
    case("when_consent_unsigned_and_revoked_then_unsigned_reported", R.CONSENT_UNSIGNED,
         signature_evidence=None, revoked_date=RUN - DAY),
    case("when_consent_revoked_and_expired_then_expired_reported", R.CONSENT_EXPIRED,
         expires_date=RUN - DAY, revoked_date=RUN - DAY),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "expected"), ONE_CONSENT)
def test_one_consent(overrides: dict[str, Any], expected: Reason) -> None:
    data = inputs([child(1)], [consent(1, **overrides)])
    decision = decide(data, agreement(), SEDS, RUN, participation=participating(PROGRAM))
    row = decision.children.iloc[0]
    assert (row["reason"], bool(row["disclose"])) == (expected.value, expected is OK)
    assert row["scope"] == ("record" if expected is OK else "none")


SEVERAL = [
    pytest.param([], R.NO_CONSENT, id="when_no_consent_then_withheld"),
    pytest.param([{"child_id": 2}], R.NO_CONSENT,
                 id="when_only_another_childs_consent_then_no_consent"),
    pytest.param([{"revoked_date": RUN}, {}], OK,
                 id="when_one_revoked_and_one_valid_then_disclosed"),
    pytest.param([{"revoked_date": RUN}, {"recipient_code": "MO-DESE"}], R.CONSENT_REVOKED,
                 id="when_revoked_and_other_recipient_then_revoked_is_closest"),
    pytest.param([{"expires_date": RUN - DAY}, {"signature_evidence": None}], R.CONSENT_EXPIRED,
                 id="when_expired_and_unsigned_then_expired_is_closest"),
    pytest.param([{"expires_date": RUN - DAY}, {"revoked_date": RUN - DAY}], R.CONSENT_REVOKED,
                 id="when_expired_and_revoked_then_revoked_is_closest"),
    pytest.param([{"record_categories": ["identity"]}, {"recipient_code": "X"}],
                 R.CONSENT_CATEGORY_NOT_COVERED,
                 id="when_narrow_and_other_recipient_then_category_is_closest"),
    pytest.param([{"signed_date": None}, {"signer_relationship": "other_contact"}],
                 R.CONSENT_NOT_BY_PARENT,
                 id="when_undated_and_not_by_parent_then_not_by_parent_is_closest"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "expected"), SEVERAL)
def test_several_consents(overrides: list[dict[str, Any]], expected: Reason) -> None:
    consents = [consent(**({"child_id": 1} | o)) for o in overrides]
    data = inputs([child(1), child(2)], consents)
    decision = decide(data, agreement(), SEDS, RUN, participation=participating(PROGRAM))
    assert decision.children.set_index("child_id").loc[1, "reason"] == expected.value


def test_when_categories_come_as_arrow_lists_or_text_then_read_the_same() -> None:
    import pyarrow as pa

    rows = [consent(1), consent(2, record_categories=["identity"])]
    data = inputs([child(1), child(2)], rows)
    lists = pd.Series(
        [r["record_categories"] for r in rows], dtype=pd.ArrowDtype(pa.list_(pa.string()))
    )
    text = pd.Series([",".join(r["record_categories"]) for r in rows], dtype="str")
    registry = participating(PROGRAM)
    expected = ["disclosed", "consent_category_not_covered"]
    for column in (lists, text):
        frame = data.consents.assign(record_categories=column)
        variant = type(data)(data.children, frame, data.notices, data.statements)
        decision = decide(variant, agreement(), SEDS, RUN, participation=registry)
        assert decision.children["reason"].tolist() == expected


def test_when_dates_are_datetime64_or_iso_text_then_same_outcome() -> None:
    rows = [consent(1, revoked_date=RUN), consent(2, revoked_date=RUN + DAY)]
    data = inputs([child(1), child(2)], rows)
    registry = participating(PROGRAM)
    for convert in (pd.to_datetime, lambda s: s.map(lambda d: d and d.isoformat())):
        frame = data.consents.assign(
            **{c: convert(data.consents[c]) for c in ("signed_date", "revoked_date")}
        )
        variant = type(data)(data.children, frame, data.notices, data.statements)
        decision = decide(variant, agreement(), SEDS, RUN, participation=registry)
        assert decision.children["reason"].tolist() == ["consent_revoked", "disclosed"]


def test_when_a_date_is_not_a_date_then_decision_error_names_column_not_value() -> None:
    from privacy.errors import DecisionError

    data = inputs([child(1)], [consent(1, signed_date="Jane Doe 2026")])
    with pytest.raises(DecisionError) as error:
        decide(data, agreement(), SEDS, RUN, participation=participating(PROGRAM))
    assert "signed_date" in str(error.value) and "Jane" not in str(error.value)
