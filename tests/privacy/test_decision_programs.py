"""Program participation in the decision: registry, withdrawal, AIAN opt-in and its scope."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from privacy.decision import Scope, decide
from privacy.errors import DecisionError
from privacy.participation import ParticipationState, ProgramStatus
from privacy.reasons import Reason
from schemas.codes import OptInScope
from tests.privacy.builders import (
    AIAN,
    PROGRAM,
    RUN,
    SEDS,
    agreement,
    child,
    consent,
    inputs,
    participating,
)

R = Reason
AGG = {
    "output": "aggregate",
    "fields": {"program_code": "keep", "race": "keep", "entry_date": {"year": {}}},
}


def registry(**kind: Any) -> dict[str, ProgramStatus]:
    return participating(AIAN, aian=True, **kind)


CASES = [
    pytest.param({}, {}, R.PROGRAM_NOT_REGISTERED, "none",
                 id="when_program_missing_from_registry_then_not_registered"),
    pytest.param(participating(PROGRAM, state=ParticipationState.NOT_REGISTERED), {},
                 R.PROGRAM_NOT_REGISTERED, "none",
                 id="when_registry_says_not_registered_then_not_registered"),
    pytest.param(participating(PROGRAM, state=ParticipationState.WITHDRAWN), {},
                 R.PROGRAM_WITHDRAWN, "none", id="when_program_withdrawn_then_withheld"),
    pytest.param(participating(PROGRAM), {}, R.DISCLOSED, "record",
                 id="when_program_participates_then_disclosed"),
    pytest.param(participating(PROGRAM, aian=True), {}, R.AIAN_NO_OPT_IN, "none",
                 id="when_aian_program_without_opt_in_then_withheld"),
    pytest.param(participating(PROGRAM, aian=True, scope=OptInScope.RECORD), {}, R.DISCLOSED,
                 "record", id="when_aian_program_opted_in_for_records_then_disclosed"),
    pytest.param(participating(PROGRAM, aian=True, scope=OptInScope.AGGREGATE), {},
                 R.AIAN_AGGREGATE_ONLY, "aggregate",
                 id="when_aian_opted_in_for_aggregates_then_no_child_record"),
    pytest.param(participating(PROGRAM, aian=True, scope=OptInScope.AGGREGATE), AGG,
                 R.DISCLOSED, "aggregate",
                 id="when_aian_opted_in_for_aggregates_and_agreement_aggregate_then_counted"),
    pytest.param(participating(PROGRAM, aian=True, state=ParticipationState.WITHDRAWN,
                               scope=OptInScope.RECORD), {},
                 R.PROGRAM_WITHDRAWN, "none", id="when_aian_opted_in_but_withdrawn_then_withheld"),
]  # fmt: skip


@pytest.mark.parametrize(("registry_", "terms", "expected", "scope"), CASES)
def test_program_participation(
    registry_: dict[str, ProgramStatus], terms: dict[str, Any], expected: Reason, scope: str
) -> None:
    data = inputs([child(1)], [consent(1)])
    decision = decide(data, agreement(**terms), SEDS, RUN, participation=registry_)
    row = decision.children.iloc[0]
    assert (row["reason"], row["scope"]) == (expected.value, scope)
    output = terms.get("output", "record")
    assert bool(row["disclose"]) == (scope == output)
    outcome = decision.programs[PROGRAM]
    assert (outcome.reason, outcome.scope) == (expected, Scope(scope))


def test_when_children_say_aian_but_registry_does_not_then_treated_as_aian() -> None:
    data = inputs([child(1, program_type="aian")], [consent(1)])
    decision = decide(data, agreement(), SEDS, RUN, participation=participating(PROGRAM))
    assert decision.children["reason"].tolist() == [R.AIAN_NO_OPT_IN.value]


def test_when_program_closed_then_program_reason_wins_over_child_reason() -> None:
    withdrawn = participating(PROGRAM, state=ParticipationState.WITHDRAWN)
    decision = decide(inputs([child(1)]), agreement(), SEDS, RUN, participation=withdrawn)
    assert decision.children["reason"].tolist() == [R.PROGRAM_WITHDRAWN.value]


def test_when_aggregate_only_child_lacks_consent_then_it_does_not_count() -> None:
    data = inputs([child(1, program=AIAN), child(2, program=AIAN)], [consent(1)])
    decision = decide(data, agreement(), SEDS, RUN,
                      participation=registry(scope=OptInScope.AGGREGATE))  # fmt: skip
    got = decision.children.set_index("child_id")[["reason", "scope"]].astype(str)
    assert got.to_dict("index") == {
        1: {"reason": "aian_aggregate_only", "scope": "aggregate"},
        2: {"reason": "no_consent", "scope": "none"},
    }
    assert not decision.children["disclose"].any()


def test_programs_cover_the_registry_and_the_batch() -> None:
    data = inputs([child(1), child(2, program="MO-HS-03")], [consent(1), consent(2)])
    reg = participating(PROGRAM) | registry()
    decision = decide(data, agreement(), SEDS, RUN, participation=reg)
    assert {p: o.reason for p, o in decision.programs.items()} == {
        PROGRAM: R.DISCLOSED,
        "MO-HS-03": R.PROGRAM_NOT_REGISTERED,
        AIAN: R.AIAN_NO_OPT_IN,
    }
    assert decision.counts() == {"disclosed": 1, "program_not_registered": 1}


def test_when_program_code_missing_then_child_not_registered() -> None:
    data = inputs([child(1, program=None)], [consent(1)])
    decision = decide(data, agreement(), SEDS, RUN, participation=participating(PROGRAM))
    assert decision.children["reason"].tolist() == [R.PROGRAM_NOT_REGISTERED.value]


def test_when_batch_is_empty_then_empty_decision() -> None:
    decision = decide(inputs([]), agreement(), SEDS, RUN, participation=participating(PROGRAM))
    assert decision.children.empty and decision.field_removals.empty
    assert list(decision.children.columns) == [
        "child_id", "program_code", "child_local_id", "disclose", "reason", "scope"
    ]  # fmt: skip
    assert decision.programs[PROGRAM].reason is R.DISCLOSED


@pytest.mark.parametrize(
    ("children", "message"),
    [
        pytest.param([child(1, first_name="Jane"), child(1, first_name="Jane")], "unique",
                     id="when_child_id_repeats_then_decision_error"),
        pytest.param([{**child(1, first_name="Jane"), "child_id": None}], "unique",
                     id="when_child_id_missing_then_decision_error"),
    ],
)  # fmt: skip
def test_unusable_children_frame(children: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(DecisionError, match=message) as error:
        decide(inputs(children), agreement(), SEDS, RUN, participation=participating(PROGRAM))
    assert "Jane" not in str(error.value)


def test_when_column_missing_then_decision_error_names_it() -> None:
    data = inputs([child(1)], [consent(1)])
    broken = type(data)(data.children.drop(columns="child_local_id"), data.consents,
                        data.notices, data.statements)  # fmt: skip
    with pytest.raises(DecisionError, match="child_local_id"):
        decide(broken, agreement(), SEDS, RUN, participation=participating(PROGRAM))
    broken = type(data)(data.children, data.consents.drop(columns="revoked_date"),
                        data.notices, data.statements)  # fmt: skip
    with pytest.raises(DecisionError, match="revoked_date"):
        decide(broken, agreement(), SEDS, RUN, participation=participating(PROGRAM))


def test_children_frame_keeps_input_order_and_ids() -> None:
    ids = [30, 10, 20]
    data = inputs([child(i) for i in ids], [consent(10)])
    decision = decide(data, agreement(), SEDS, RUN, participation=participating(PROGRAM))
    assert decision.children["child_id"].tolist() == ids
    assert decision.children["child_local_id"].tolist() == ["L0030", "L0010", "L0020"]
    assert decision.disclosed_ids().tolist() == [10]
    assert isinstance(decision.children["reason"].dtype, pd.CategoricalDtype)
