"""Resolving a program's participation from its event history (pure, no database)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from privacy.participation import Change, ParticipationState, resolve
from schemas.codes import OptInScope, ParticipationAction
from tests.privacy.builders import DAY, RUN

A = ParticipationAction
S = ParticipationState
PROGRAM = "NM-AIAN-07"
ME, OTHER = "NM-ECECD", "VT-AOE"
LONG_AGO = RUN - 400 * DAY


def event(action: A, recipient: str | None, on: dt.date, n: int, **extra: Any) -> Change:
    if action is A.OPT_IN:
        extra.setdefault("scope", OptInScope.RECORD)
        extra.setdefault("authority", "Tribal Council Resolution 2026-14")
        extra.setdefault("recorded_by", "data manager")
    return Change(PROGRAM, action, recipient, on, "council", id=n, **extra)


def history(*events: tuple[Any, ...]) -> list[Change]:
    return [event(*e, n=i) for i, e in enumerate(events)]


JOINED = (A.PARTICIPATE, ME, LONG_AGO)

PARTICIPATION = [
    pytest.param([], S.NOT_REGISTERED, id="when_no_event_then_not_registered"),
    pytest.param([(A.PARTICIPATE, ME, RUN + DAY)], S.NOT_REGISTERED,
                 id="when_participation_starts_day_after_run_date_then_not_registered"),
    pytest.param([(A.PARTICIPATE, ME, RUN)], S.PARTICIPATING,
                 id="when_participation_starts_on_run_date_then_participating"),
    pytest.param([(A.PARTICIPATE, ME, RUN - DAY)], S.PARTICIPATING,
                 id="when_participation_started_day_before_then_participating"),
    pytest.param([JOINED, (A.WITHDRAW, ME, RUN + DAY)], S.PARTICIPATING,
                 id="when_withdrawal_day_after_run_date_then_participating"),
    pytest.param([JOINED, (A.WITHDRAW, ME, RUN)], S.WITHDRAWN,
                 id="when_withdrawn_on_run_date_then_withdrawn"),
    pytest.param([JOINED, (A.WITHDRAW, ME, RUN - DAY)], S.WITHDRAWN,
                 id="when_withdrawn_day_before_then_withdrawn"),
    pytest.param([(A.WITHDRAW, ME, RUN), (A.PARTICIPATE, ME, RUN)], S.WITHDRAWN,
                 id="when_withdraw_and_participate_same_day_then_withdrawn"),
    pytest.param([JOINED, (A.WITHDRAW, ME, RUN - 9 * DAY), (A.PARTICIPATE, ME, RUN - DAY)],
                 S.PARTICIPATING, id="when_rejoined_after_withdrawal_then_participating"),
    pytest.param([(A.PARTICIPATE, OTHER, LONG_AGO)], S.NOT_REGISTERED,
                 id="when_participating_with_another_recipient_only_then_not_registered"),
    pytest.param([JOINED, (A.WITHDRAW, None, RUN)], S.WITHDRAWN,
                 id="when_withdrawn_from_all_recipients_then_withdrawn"),
    pytest.param([(A.WITHDRAW, None, LONG_AGO), (A.PARTICIPATE, ME, RUN - DAY)],
                 S.PARTICIPATING, id="when_joined_after_a_general_withdrawal_then_participating"),
    pytest.param([(A.PARTICIPATE, None, LONG_AGO)], S.NOT_REGISTERED,
                 id="when_participate_names_no_recipient_then_it_counts_for_nothing"),
]  # fmt: skip


@pytest.mark.parametrize(("events", "expected"), PARTICIPATION)
def test_participation_state(events: list[tuple[Any, ...]], expected: S) -> None:
    status = resolve(PROGRAM, False, history(*events), ME, RUN)
    assert status.state is expected
    assert status.shares == (expected is S.PARTICIPATING)


OPT = [
    pytest.param([], False, id="when_aian_never_opted_in_then_no_opt_in"),
    pytest.param([(A.OPT_IN, None, RUN + DAY)], False,
                 id="when_opt_in_effective_day_after_run_date_then_no_opt_in"),
    pytest.param([(A.OPT_IN, None, RUN)], True, id="when_opt_in_effective_on_run_date_then_active"),
    pytest.param([(A.OPT_IN, None, RUN - DAY)], True,
                 id="when_opt_in_effective_day_before_then_active"),
    pytest.param([(A.OPT_IN, None, LONG_AGO), (A.OPT_OUT, None, RUN + DAY)], True,
                 id="when_opt_out_effective_day_after_run_date_then_still_active"),
    pytest.param([(A.OPT_IN, None, LONG_AGO), (A.OPT_OUT, None, RUN)], False,
                 id="when_opt_out_effective_on_run_date_then_no_opt_in"),
    pytest.param([(A.OPT_IN, None, LONG_AGO), (A.OPT_OUT, None, RUN - DAY)], False,
                 id="when_opt_out_effective_day_before_then_no_opt_in"),
    pytest.param([(A.OPT_OUT, None, RUN), (A.OPT_IN, None, RUN)], False,
                 id="when_opt_in_and_opt_out_same_day_then_opt_out_wins"),
    pytest.param([(A.OPT_IN, None, LONG_AGO), (A.OPT_OUT, None, RUN - 9 * DAY),
                  (A.OPT_IN, None, RUN - DAY)], True,
                 id="when_opted_in_again_after_opt_out_then_active"),
    pytest.param([(A.OPT_IN, None, LONG_AGO), (A.OPT_OUT, ME, RUN - DAY)], False,
                 id="when_general_opt_in_and_opt_out_for_this_recipient_then_no_opt_in"),
    pytest.param([(A.OPT_IN, None, LONG_AGO), (A.OPT_OUT, OTHER, RUN - DAY)], True,
                 id="when_opt_out_names_another_recipient_then_still_active"),
    pytest.param([(A.OPT_IN, ME, LONG_AGO), (A.OPT_OUT, None, RUN - DAY)], False,
                 id="when_specific_opt_in_then_later_general_opt_out_then_no_opt_in"),
    pytest.param([(A.OPT_IN, ME, RUN - DAY), (A.OPT_OUT, None, RUN - DAY)], False,
                 id="when_specific_opt_in_and_general_opt_out_same_day_then_no_opt_in"),
    pytest.param([(A.OPT_OUT, None, LONG_AGO), (A.OPT_IN, ME, RUN - DAY)], True,
                 id="when_specific_opt_in_after_general_opt_out_then_active"),
    pytest.param([(A.OPT_OUT, ME, LONG_AGO), (A.OPT_IN, None, RUN - DAY)], False,
                 id="when_general_opt_in_after_specific_opt_out_then_specific_still_governs"),
    pytest.param([(A.OPT_IN, OTHER, LONG_AGO)], False,
                 id="when_opted_in_for_another_recipient_only_then_no_opt_in"),
]  # fmt: skip


@pytest.mark.parametrize(("events", "active"), OPT)
def test_opt_in_state(events: list[tuple[Any, ...]], active: bool) -> None:
    status = resolve(PROGRAM, True, history(JOINED, *events), ME, RUN)
    assert status.state is S.PARTICIPATING
    assert (status.opt_in is not None) is active
    assert status.shares is active


def test_active_opt_in_carries_authority_scope_and_excluded_fields() -> None:
    events = [
        event(A.PARTICIPATE, ME, LONG_AGO, 1),
        event(A.OPT_IN, None, LONG_AGO, 2, scope=OptInScope.RECORD),
        event(A.OPT_OUT, None, RUN - 9 * DAY, 3, reason="council review"),
        event(A.OPT_IN, None, RUN - DAY, 4, scope=OptInScope.AGGREGATE,
              excluded_fields=("race",), authority="Resolution 2026-20"),
    ]  # fmt: skip
    status = resolve(PROGRAM, True, events, ME, RUN)
    assert status.opt_in is not None
    assert (status.opt_in.scope, status.opt_in.excluded_fields, status.opt_in.authority) == (
        OptInScope.AGGREGATE,
        frozenset({"race"}),
        "Resolution 2026-20",
    )
    assert status.since == LONG_AGO and status.decided_by == "council"


def test_when_program_is_not_aian_then_opt_events_are_ignored() -> None:
    events = history(JOINED, (A.OPT_IN, None, LONG_AGO), (A.OPT_OUT, None, RUN - DAY))
    status = resolve(PROGRAM, False, events, ME, RUN)
    assert status.opt_in is None and status.shares


def test_when_same_day_events_then_recording_order_breaks_ties_within_a_kind() -> None:
    early = dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC)
    late = dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)
    events = [
        event(A.PARTICIPATE, ME, LONG_AGO, 1),
        event(A.OPT_IN, None, RUN, 2, recorded_at=late, scope=OptInScope.AGGREGATE),
        event(A.OPT_IN, None, RUN, 3, recorded_at=early, scope=OptInScope.RECORD),
    ]
    status = resolve(PROGRAM, True, events, ME, RUN)
    assert status.opt_in is not None and status.opt_in.scope is OptInScope.AGGREGATE
