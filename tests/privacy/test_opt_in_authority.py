"""An AIAN opt-in counts only when it is the program's recorded decision (45 CFR 1302.53(b)(4)).

The rule under test, from the regulation: an AIAN program shares nothing unless it decided to;
the registry shows a decision only when the opt-in names the authority that made it, who
decided, who recorded it, its effective date and its scope. Anything less (an import, SQL, an
older schema) is not the program's decision: not opted in, reason ``aian_opt_in_incomplete``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.decision import program_outcome
from privacy.participation import Change, resolve
from privacy.reasons import Reason
from schemas.codes import OptInScope, ParticipationAction
from tests.privacy.builders import DAY, RUN, agreement

A = ParticipationAction
PROGRAM, ME = "NM-AIAN-07", "VT-AOE"
LONG_AGO = RUN - 400 * DAY
JOINED = Change(PROGRAM, A.PARTICIPATE, ME, LONG_AGO, "council", id=0)
COMPLETE: dict[str, Any] = {
    "authority": "Tribal Council Resolution 2026-14",
    "decided_by": "Tribal Council",
    "recorded_by": "data manager",
    "effective_date": RUN - 30 * DAY,
    "scope": OptInScope.RECORD,
}


def opt_in(n: int, **changes: Any) -> Change:
    fields = {**COMPLETE, **changes}
    return Change(PROGRAM, A.OPT_IN, None, id=n, **fields)


def opt_out(n: int, on: dt.date) -> Change:
    return Change(PROGRAM, A.OPT_OUT, None, on, "Tribal Council", reason="council vote", id=n)


def outcome(*events: Change) -> tuple[Reason, tuple[str, ...]]:
    status = resolve(PROGRAM, True, [JOINED, *events], ME, RUN)
    result = program_outcome(status, True, agreement())
    sharing = {Reason.DISCLOSED, Reason.AIAN_AGGREGATE_ONLY}  # the latter: aggregate scope
    assert result.shares == (result.reason in sharing)
    reason = Reason.DISCLOSED if result.reason in sharing else result.reason
    return reason, status.opt_in_missing


OK, INCOMPLETE, NONE = Reason.DISCLOSED, Reason.AIAN_OPT_IN_INCOMPLETE, Reason.AIAN_NO_OPT_IN

CASES = [
    pytest.param([opt_in(1)], OK, (), id="when_complete_then_shares"),
    pytest.param([opt_in(1, authority=None)], INCOMPLETE, ("authority",),
                 id="when_authority_missing_then_not_opted_in"),
    pytest.param([opt_in(1, authority="")], INCOMPLETE, ("authority",),
                 id="when_authority_empty_then_not_opted_in"),
    pytest.param([opt_in(1, authority="   ")], INCOMPLETE, ("authority",),
                 id="when_authority_spaces_then_not_opted_in"),
    pytest.param([opt_in(1, authority="\t\n\u00a0")], INCOMPLETE, ("authority",),
                 id="when_authority_other_blanks_then_not_opted_in"),
    pytest.param([opt_in(1, recorded_by=None)], INCOMPLETE, ("recorded_by",),
                 id="when_recorded_by_missing_then_not_opted_in"),
    pytest.param([opt_in(1, recorded_by=" ")], INCOMPLETE, ("recorded_by",),
                 id="when_recorded_by_blank_then_not_opted_in"),
    pytest.param([opt_in(1, decided_by="")], INCOMPLETE, ("decided_by",),
                 id="when_decided_by_blank_then_not_opted_in"),
    pytest.param([opt_in(1, effective_date=None)], INCOMPLETE, ("effective_date",),
                 id="when_effective_date_missing_then_not_opted_in"),
    pytest.param([opt_in(1, scope=None)], INCOMPLETE, ("scope",),
                 id="when_scope_missing_then_not_opted_in"),
    pytest.param([opt_in(1, excluded_fields=("tribal_afiliation",))], INCOMPLETE,
                 ("excluded_fields",), id="when_an_excluded_field_is_unknown_then_not_opted_in"),
    pytest.param([opt_in(1, authority=None, recorded_by=None)], INCOMPLETE,
                 ("authority", "recorded_by"), id="when_several_missing_then_all_named"),
    pytest.param([opt_in(1, effective_date=RUN + DAY)], NONE, (),
                 id="when_complete_but_effective_day_after_run_then_no_opt_in"),
    pytest.param([opt_in(1, effective_date=RUN)], OK, (),
                 id="when_complete_and_effective_on_run_date_then_shares"),
    pytest.param([opt_in(1, authority=None, effective_date=RUN + DAY)], NONE, (),
                 id="when_incomplete_and_effective_in_future_then_no_opt_in"),
    pytest.param([opt_in(1, authority=None), opt_out(2, RUN - DAY)], NONE, (),
                 id="when_incomplete_then_opt_out_after_then_no_opt_in"),
    pytest.param([opt_in(1), opt_out(2, RUN - DAY)], NONE, (),
                 id="when_complete_then_opt_out_after_then_no_opt_in"),
    pytest.param([opt_in(1, effective_date=LONG_AGO), opt_in(2, authority=None)], INCOMPLETE,
                 ("authority",), id="when_later_opt_in_incomplete_then_it_ends_the_older_one"),
    pytest.param([opt_in(1, authority=None, effective_date=LONG_AGO), opt_in(2)], OK, (),
                 id="when_later_opt_in_complete_then_shares"),
    pytest.param([opt_in(1, effective_date=None, authority=None), opt_in(2)], OK, (),
                 id="when_undated_incomplete_and_dated_complete_then_dated_governs"),
    pytest.param([opt_in(1), opt_in(2, authority=None, effective_date=RUN + DAY)], OK, (),
                 id="when_incomplete_opt_in_not_yet_effective_then_older_complete_governs"),
]  # fmt: skip


@pytest.mark.parametrize(("events", "reason", "missing"), CASES)
def test_opt_in_authority_cases(
    events: list[Change], reason: Reason, missing: tuple[str, ...]
) -> None:
    assert outcome(*events) == (reason, missing)


def test_when_program_is_not_aian_then_an_incomplete_opt_in_changes_nothing() -> None:
    status = resolve(PROGRAM, False, [JOINED, opt_in(1, authority=None)], ME, RUN)
    assert program_outcome(status, False, agreement()).reason is Reason.DISCLOSED


def test_reason_is_described_with_its_citation() -> None:
    assert "1302.53(b)(4)" in Reason.AIAN_OPT_IN_INCOMPLETE.description


# -- property: against an oracle written from the rule, not from the code ---------------------

BLANKS = st.sampled_from([None, "", " ", "\t", "\n ", "\u00a0"])
NAMES = st.sampled_from(["Resolution 14", "Council", "J. Doe", " x "])
DATES = st.one_of(st.none(), st.integers(-40, 5).map(lambda d: RUN + d * DAY))


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    events = []
    for n in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["opt_in", "opt_in", "opt_out"]))
        events.append(
            {
                "n": n + 1,
                "kind": kind,
                "date": draw(DATES) if kind == "opt_in" else draw(DATES.filter(bool)),
                "authority": draw(st.one_of(BLANKS, NAMES)),
                "decided_by": draw(st.one_of(BLANKS, NAMES)),
                "recorded_by": draw(st.one_of(BLANKS, NAMES)),
                "scope": draw(st.sampled_from([None, "record", "aggregate"])),
                "recorded_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
                + dt.timedelta(minutes=draw(st.integers(0, 50))),
            }
        )
    return events


def oracle(events: list[dict[str, Any]]) -> Reason:
    """1302.53(b)(4): the latest decision in force on the run date governs (an undated
    opt-in is older than any dated one; on one date an opt-out wins; then recording order).
    It switches sharing on (``disclosed``, for records or aggregates as its scope says) only
    when it is an opt-in naming authority, who decided, who recorded it, its date and scope."""

    def filled(value: str | None) -> bool:
        return value is not None and value.strip() != ""

    def key(e: dict[str, Any]) -> tuple[Any, ...]:
        return (e["date"] or dt.date.min, e["kind"] == "opt_out", e["recorded_at"], e["n"])

    in_force = [e for e in events if (e["date"] or dt.date.min) <= RUN]
    if not in_force:
        return Reason.AIAN_NO_OPT_IN
    latest = max(in_force, key=key)
    if latest["kind"] == "opt_out":
        return Reason.AIAN_NO_OPT_IN
    complete = (
        all(filled(latest[f]) for f in ("authority", "decided_by", "recorded_by"))
        and latest["date"] is not None
        and latest["scope"] is not None
    )
    return Reason.DISCLOSED if complete else Reason.AIAN_OPT_IN_INCOMPLETE


@settings(max_examples=300, deadline=None)
@given(histories())
def test_property_sharing_needs_a_complete_governing_opt_in(events: list[dict[str, Any]]) -> None:
    changes = [
        Change(
            PROGRAM,
            A(e["kind"]),
            None,
            e["date"],
            e["decided_by"] if e["kind"] == "opt_in" else "council",
            authority=e["authority"],
            scope=OptInScope(e["scope"]) if e["scope"] and e["kind"] == "opt_in" else None,
            recorded_by=e["recorded_by"],
            recorded_at=e["recorded_at"],
            id=e["n"],
        )
        for e in events
    ]
    reason, _ = outcome(*changes)
    assert reason is oracle(events)
