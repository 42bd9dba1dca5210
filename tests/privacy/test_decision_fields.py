"""Field-level rules: disability (IDEA), parent statements, AIAN exclusions, notice limits."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from privacy.decision import decide
from schemas.codes import OptInScope
from tests.privacy.builders import (
    AIAN,
    ALL_CATEGORIES,
    DAY,
    LEA,
    PROGRAM,
    RUN,
    SEDS,
    agreement,
    child,
    consent,
    inputs,
    notice,
    participating,
    statement,
    unchecked,
)

DISABILITY = ("disability", "iep", "ifsp")
WITH_DISABILITY = {
    "record_categories": ["identity", "services", "disability"],
    "fields": {
        "program_code": "keep",
        "child_local_id": "keep",
        "homeless": "keep",
        **dict.fromkeys(DISABILITY, "keep"),
    },
}


def removed(decision, child_id: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    rows = decision.field_removals[decision.field_removals["child_id"] == child_id]
    return dict(zip(rows["field"].astype(str), rows["reason"].astype(str), strict=True))


def consents_with(**overrides: Any) -> list[dict[str, Any]]:
    return [consent(1, **overrides)]


DISABILITY_CASES = [
    pytest.param([consent(1)], False, id="when_consent_lacks_disability_then_fields_removed"),
    pytest.param([consent(1, record_categories=[*ALL_CATEGORIES, "disability"])], True,
                 id="when_consent_names_disability_then_fields_kept"),
    pytest.param([consent(1), consent(1, record_categories=["disability"])], True,
                 id="when_separate_valid_disability_consent_then_fields_kept"),
    pytest.param([consent(1), consent(1, record_categories=["disability"], revoked_date=RUN)],
                 False, id="when_disability_consent_revoked_on_run_date_then_fields_removed"),
    pytest.param([consent(1), consent(1, record_categories=["disability"],
                                      revoked_date=RUN + DAY)],
                 True, id="when_disability_consent_revoked_day_after_then_fields_kept"),
    pytest.param([consent(1), consent(1, record_categories=["disability"],
                                      signer_relationship="other_contact")],
                 False, id="when_disability_consent_not_by_parent_then_fields_removed"),
    pytest.param([consent(1), consent(1, record_categories=["disability"],
                                      recipient_code="MO-DESE")],
                 False, id="when_disability_consent_for_other_recipient_then_fields_removed"),
]  # fmt: skip


@pytest.mark.parametrize(("consents", "kept"), DISABILITY_CASES)
def test_disability_fields_need_a_consent_naming_disability(
    consents: list[dict[str, Any]], kept: bool
) -> None:
    data = inputs([child(1)], consents)
    decision = decide(data, agreement(**WITH_DISABILITY), SEDS, RUN,
                      participation=participating(PROGRAM))  # fmt: skip
    assert decision.children["disclose"].tolist() == [True]  # the rest still goes
    expected = {} if kept else dict.fromkeys(DISABILITY, "disability_consent_missing")
    assert removed(decision, 1) == expected
    assert set(decision.disclosed_fields(1)) == {
        "program_code", "child_local_id", "homeless", *(DISABILITY if kept else ())
    }  # fmt: skip


def test_when_consent_covers_only_disability_then_child_withheld_for_other_categories() -> None:
    data = inputs([child(1)], [consent(1, record_categories=["disability"])])
    decision = decide(data, agreement(**WITH_DISABILITY), SEDS, RUN,
                      participation=participating(PROGRAM))  # fmt: skip
    assert decision.children["reason"].tolist() == ["consent_category_not_covered"]


def test_when_idea_exception_then_disability_fields_flow_with_the_ordinary_consent() -> None:
    terms = agreement(**WITH_DISABILITY, idea_exception="34 CFR 300.622(b)(2)")
    decision = decide(inputs([child(1)], [consent(1)]), terms, SEDS, RUN,
                      participation=participating(PROGRAM))  # fmt: skip
    assert removed(decision, 1) == {}


@pytest.mark.parametrize(
    ("exception", "expected"),
    [
        pytest.param(None, dict.fromkeys(DISABILITY, "disability_consent_missing"),
                     id="when_audit_without_idea_exception_then_disability_always_removed"),
        pytest.param("34 CFR 300.622(b)(2)", {},
                     id="when_audit_with_idea_exception_then_disability_kept"),
    ],
)  # fmt: skip
def test_disability_under_audit(exception: str | None, expected: dict[str, str]) -> None:
    base = agreement(
        **WITH_DISABILITY,
        legal_basis="audit_evaluation",
        destruction="destroyed after 1 year",
        idea_exception="34 CFR 300.622",
    )
    terms = unchecked(base, idea_exception=exception)
    disability_consent = consent(1, record_categories=[*ALL_CATEGORIES, "disability"])
    decision = decide(inputs([child(1)], [disability_consent]), terms, SEDS, RUN,
                      participation=participating(PROGRAM))  # fmt: skip
    assert removed(decision, 1) == expected


STATEMENTS = [
    pytest.param("carry", "race", {}, [(1, "race")],
                 id="when_statement_on_sent_field_and_carry_then_it_travels"),
    pytest.param("withhold", "race", {"race": "parent_statement_not_carried"}, [],
                 id="when_statement_on_sent_field_and_withhold_then_field_removed"),
    pytest.param("withhold", "home_language", {}, [],
                 id="when_statement_on_field_not_sent_then_nothing"),
    pytest.param("carry", "home_language", {}, [],
                 id="when_statement_on_field_not_sent_and_carry_then_nothing_travels"),
]  # fmt: skip


@pytest.mark.parametrize(("handling", "field", "expected", "carried"), STATEMENTS)
def test_parent_statements(
    handling: str, field: str, expected: dict[str, str], carried: list[tuple[int, str]]
) -> None:
    notes = [statement(1, field), statement(2, "race")]
    data = inputs([child(1), child(2)], [consent(1)], statements=notes)
    decision = decide(data, agreement(parent_statements=handling), SEDS, RUN,
                      participation=participating(PROGRAM))  # fmt: skip
    assert removed(decision, 1) == expected
    assert (
        list(decision.statements.itertuples(index=False, name=None)) == carried
    )  # child 2 withheld


def test_when_disability_field_removed_then_its_statement_neither_travels_nor_overrides() -> None:
    data = inputs([child(1)], [consent(1)], statements=[statement(1, "iep")])
    terms = agreement(**WITH_DISABILITY, parent_statements="carry")
    decision = decide(data, terms, SEDS, RUN, participation=participating(PROGRAM))
    assert removed(decision, 1)["iep"] == "disability_consent_missing"
    assert decision.statements.empty


def test_when_aian_opt_in_excludes_race_then_race_removed_from_its_children_only() -> None:
    registry = participating(PROGRAM) | participating(
        AIAN, aian=True, scope=OptInScope.RECORD, excluded=["race", "home_language"]
    )
    data = inputs([child(1), child(2, program=AIAN)], [consent(1), consent(2)],
                  statements=[statement(2, "race")])  # fmt: skip
    decision = decide(data, agreement(), SEDS, RUN, participation=registry)
    assert removed(decision, 1) == {}
    assert removed(decision, 2) == {"race": "aian_field_excluded"}
    assert decision.programs[AIAN].excluded_fields == {"race", "home_language"}


def test_when_notice_agreement_names_other_categories_then_those_fields_removed() -> None:
    base = agreement(id="vt-bsd-notice", recipient=LEA.code, legal_basis="school_enrollment_notice",
                     record_categories=["identity", "enrollment"],
                     fields={"child_local_id": "keep", "entry_date": "keep"})  # fmt: skip
    terms = unchecked(base, fields={**base.fields, "race": base.fields["entry_date"],
                                    "disability": base.fields["entry_date"]})  # fmt: skip
    decision = decide(inputs([child(1)], notices=[notice(1)]), terms, LEA, RUN,
                      participation=participating(PROGRAM))  # fmt: skip
    assert removed(decision, 1) == {
        "race": "notice_category_not_permitted",
        "disability": "notice_category_not_permitted",
    }


def test_when_field_is_dropped_then_it_is_not_sent_nor_decided() -> None:
    terms = agreement(fields={"child_local_id": "keep", "race": "drop", "birth_date": "keep"})
    decision = decide(inputs([child(1)], [consent(1)], statements=[statement(1, "race")]), terms,
                      SEDS, RUN, participation=participating(PROGRAM))  # fmt: skip
    assert decision.fields == ("child_local_id", "birth_date")
    assert decision.field_removals.empty


def test_redact_keeps_disclosed_rows_and_sent_fields_and_empties_removed_cells() -> None:
    data = inputs(
        [child(1), child(2), child(3)],
        [consent(1, record_categories=[*ALL_CATEGORIES, "disability"]), consent(2)],
    )
    decision = decide(data, agreement(**WITH_DISABILITY), SEDS, RUN,
                      participation=participating(PROGRAM))  # fmt: skip
    out = decision.redact(data.children)
    assert list(out.columns) == ["child_id", *decision.fields]
    assert out["child_id"].tolist() == [1, 2]
    assert out.loc[0, list(DISABILITY)].tolist() == [True, True, True]
    assert out.loc[1, list(DISABILITY)].isna().all()
    assert out["homeless"].tolist() == [True, True]
    mask = decision.field_mask
    assert mask.index.tolist() == [1, 2] and not mask.loc[2, "iep"] and mask.loc[1, "iep"]
    assert decision.disclosed_fields(3) == ()


def test_when_many_children_then_removals_align_with_children() -> None:
    ids = list(range(1, 41))
    rows = [consent(i, record_categories=[*ALL_CATEGORIES, "disability"]) for i in ids[::2]]
    rows += [consent(i) for i in ids[1::2]]
    data = inputs([child(i) for i in ids], rows)
    decision = decide(data, agreement(**WITH_DISABILITY), SEDS, RUN,
                      participation=participating(PROGRAM))  # fmt: skip
    without = set(decision.field_removals["child_id"])
    assert without == set(ids[1::2])
    counts = decision.field_removals.groupby("child_id", observed=True).size()
    assert (counts == 3).all()
    assert isinstance(decision.field_removals, pd.DataFrame)
