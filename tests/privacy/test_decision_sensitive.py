"""Tribal affiliation, statements on transformed fields, and the recipient's jurisdiction."""

from __future__ import annotations

from typing import Any

import pytest

from privacy.agreements import Agreement
from privacy.bases import in_jurisdiction
from privacy.decision import RecipientInfo, decide
from privacy.participation import ParticipationState
from schemas.codes import OptInScope
from tests.privacy.builders import (
    AIAN,
    ALL_CATEGORIES,
    NOWHERE,
    PROGRAM,
    RUN,
    SEDS,
    agreement,
    child,
    consent,
    inputs,
    participating,
    statement,
)


def removed(decision, child_id: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    rows = decision.field_removals[decision.field_removals["child_id"] == child_id]
    return dict(zip(rows["field"].astype(str), rows["reason"].astype(str), strict=True))


def audit_terms(**overrides: Any) -> Agreement:
    """An audit/evaluation agreement with VT-AOE (no consent needed) naming tribal affiliation."""
    data: dict[str, Any] = {
        "legal_basis": "audit_evaluation",
        "purpose_code": "audit_evaluation",
        "destruction": "destroyed after five years",
        "record_categories": ["identity", "demographics", "tribal_affiliation"],
        "fields": {"program_code": "keep", "race": "keep", "tribal_affiliation": "keep"},
    }
    return agreement(**(data | overrides))


TRIBAL = [
    pytest.param(participating(PROGRAM), PROGRAM, "disclosed",
                 {"tribal_affiliation": "tribal_affiliation_not_permitted"},
                 id="when_non_aian_program_then_tribal_affiliation_removed"),
    pytest.param(participating(AIAN, aian=True, scope=OptInScope.RECORD), AIAN, "disclosed", {},
                 id="when_aian_record_opt_in_not_excluding_it_then_kept"),
    pytest.param(participating(AIAN, aian=True, scope=OptInScope.RECORD,
                               excluded=["tribal_affiliation"]), AIAN, "disclosed",
                 {"tribal_affiliation": "aian_field_excluded"},
                 id="when_aian_opt_in_excludes_it_then_removed_as_excluded"),
    pytest.param(participating(AIAN, aian=True), AIAN, "aian_no_opt_in", {},
                 id="when_aian_without_opt_in_then_nothing_leaves"),
    pytest.param(participating(PROGRAM, aian=True, scope=OptInScope.RECORD), PROGRAM,
                 "disclosed", {},
                 id="when_registry_says_aian_with_opt_in_then_kept"),
    pytest.param(participating(AIAN, aian=True, scope=OptInScope.RECORD,
                               state=ParticipationState.WITHDRAWN), AIAN, "program_withdrawn", {},
                 id="when_aian_program_withdrawn_then_nothing_leaves"),
]  # fmt: skip


@pytest.mark.parametrize(("registry", "program", "reason", "expected"), TRIBAL)
def test_tribal_affiliation_leaves_only_under_an_aian_opt_in(
    registry: dict, program: str, reason: str, expected: dict[str, str]
) -> None:
    data = inputs([child(1, program=program)])
    decision = decide(data, audit_terms(), SEDS, RUN, participation=registry)
    assert decision.children.loc[0, "reason"] == reason
    assert removed(decision, 1) == expected


def test_when_aian_aggregate_only_then_tribal_affiliation_not_counted_unless_allowed() -> None:
    registry = participating(AIAN, aian=True, scope=OptInScope.AGGREGATE)
    decision = decide(inputs([child(1, program=AIAN)]), audit_terms(), SEDS, RUN,
                      participation=registry)  # fmt: skip
    assert decision.children.loc[0, "scope"] == "aggregate"
    assert removed(decision, 1) == {}


def test_when_consent_does_not_name_tribal_affiliation_then_child_withheld() -> None:
    terms = agreement(
        record_categories=["identity", "tribal_affiliation"],
        fields={"program_code": "keep", "tribal_affiliation": "keep"},
    )
    registry = participating(AIAN, aian=True, scope=OptInScope.RECORD)
    rows = [consent(1), consent(2, record_categories=[*ALL_CATEGORIES, "tribal_affiliation"])]
    data = inputs([child(1, program=AIAN), child(2, program=AIAN)], rows)
    decision = decide(data, terms, SEDS, RUN, participation=registry)
    assert decision.children["reason"].tolist() == ["consent_category_not_covered", "disclosed"]


def test_an_agreement_naming_tribal_affiliation_must_list_its_category() -> None:
    with pytest.raises(ValueError, match="tribal_affiliation"):
        audit_terms(record_categories=["identity", "demographics"])


TRANSFORMED = [
    pytest.param("carry", "withhold", "month", "birth_date",
                 {"birth_date": "parent_statement_on_transformed_field"}, [],
                 id="when_statement_on_birth_date_sent_as_month_then_field_withheld"),
    pytest.param("carry", "withhold", "year", "birth_date",
                 {"birth_date": "parent_statement_on_transformed_field"}, [],
                 id="when_statement_on_birth_date_sent_as_year_then_field_withheld"),
    pytest.param("carry", "withhold", "keep", "birth_date", {}, [(1, "birth_date")],
                 id="when_statement_on_birth_date_sent_exact_then_it_travels"),
    pytest.param("carry", "carry", "month", "birth_date", {}, [(1, "birth_date")],
                 id="when_agreement_lets_statements_travel_on_transformed_fields_then_travels"),
    pytest.param("withhold", "withhold", "month", "birth_date",
                 {"birth_date": "parent_statement_not_carried"}, [],
                 id="when_statements_withheld_then_not_carried_reported"),
    pytest.param("withhold", "carry", "month", "birth_date",
                 {"birth_date": "parent_statement_not_carried"}, [],
                 id="when_statements_withheld_the_transformed_option_does_not_carry"),
    pytest.param("carry", "withhold", "month", "race", {}, [(1, "race")],
                 id="when_statement_on_another_field_kept_exact_then_it_travels"),
    pytest.param("carry", "withhold", "pseudonymize", "child_local_id",
                 {"child_local_id": "parent_statement_on_transformed_field"}, [],
                 id="when_statement_on_pseudonymized_id_then_field_withheld"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("handling", "transformed", "transform", "field", "expected", "carried"), TRANSFORMED
)
def test_statements_on_transformed_fields(
    handling: str,
    transformed: str,
    transform: str,
    field: str,
    expected: dict[str, str],
    carried: list[tuple[int, str]],
) -> None:
    fields = {"program_code": "keep", "child_local_id": "keep", "birth_date": transform,
              "race": "keep"}  # fmt: skip
    if field == "child_local_id":
        fields = {"program_code": "keep", "child_local_id": transform, "birth_date": "keep"}
    terms = agreement(
        fields=fields, parent_statements=handling, statements_on_transformed_fields=transformed
    )
    data = inputs([child(1)], [consent(1)], statements=[statement(1, field)])
    decision = decide(data, terms, SEDS, RUN, participation=participating(PROGRAM))
    assert removed(decision, 1) == expected
    assert list(decision.statements.itertuples(index=False, name=None)) == carried


JURISDICTION = [
    ("VT", "VT", True),
    ("vt", "VT", True),
    ("MO", "VT", False),
    (None, "VT", False),
    ("", "VT", False),
    ("VT", None, False),
    ("VT", "  ", False),
    (None, None, False),
]


@pytest.mark.parametrize(("program_state", "recipient_state", "expected"), JURISDICTION)
def test_a_program_shares_only_inside_the_recipients_state(
    program_state: str | None, recipient_state: str | None, expected: bool
) -> None:
    recipient = RecipientInfo("VT-AOE", "state_education_data_system", "state", recipient_state)
    assert in_jurisdiction(program_state, recipient) is expected


@pytest.mark.parametrize("state", [None, "", "  "], ids=["none", "empty", "blank"])
def test_when_recipient_has_no_jurisdiction_then_nothing_leaves(state: str | None) -> None:
    recipient = RecipientInfo(NOWHERE.code, NOWHERE.category, NOWHERE.entity_level, state)
    terms = audit_terms(recipient=recipient.code)
    decision = decide(inputs([child(1)]), terms, recipient, RUN,
                      participation=participating(PROGRAM))  # fmt: skip
    assert decision.agreement_reason is not None
    assert decision.agreement_reason.value == "recipient_no_jurisdiction"
    assert decision.children["reason"].tolist() == ["recipient_no_jurisdiction"]
    assert not decision.children["disclose"].any()


def test_a_consent_agreement_needs_a_purpose_code() -> None:
    with pytest.raises(ValueError, match="purpose_code"):
        agreement(purpose_code=None)
