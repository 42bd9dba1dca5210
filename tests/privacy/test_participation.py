"""The participation registry in the database, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from pipelines.db import session_scope
from privacy.errors import ParticipationError
from privacy.participation import (
    ParticipationState,
    current_participation,
    history,
    record_change,
)
from schemas import ParticipationEvent, Program, Recipient
from schemas.codes import OptInScope, ParticipationAction
from tests.privacy.builders import DAY, RUN

A = ParticipationAction
HS, AIAN = "VT-HS-01", "NM-AIAN-07"
SEDS, OTHER = "NM-ECECD", "VT-AOE"
LONG_AGO = RUN - 400 * DAY


def seed(session: Session) -> None:
    session.add_all(
        [
            Program(code=HS, grant_number="01CH0001", name="Head Start of Vermont", state="VT",
                    program_type="head_start", is_aian=False),
            Program(code=AIAN, grant_number="06CI0007", name="Pueblo Head Start", state="NM",
                    program_type="aian", is_aian=True),
            Recipient(code=SEDS, name="NM ECECD", category="state_education_data_system",
                      entity_level="state", state="NM"),
            Recipient(code=OTHER, name="VT AOE", category="state_education_data_system",
                      entity_level="state", state="VT"),
        ]
    )  # fmt: skip


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_scope(engine) as session:
        seed(session)
        session.flush()
        yield session


def change(session: Session, program: str, action: A, **kwargs: Any):  # type: ignore[no-untyped-def]
    kwargs.setdefault("decided_by", "Policy Council")
    kwargs.setdefault("effective_date", LONG_AGO)
    if action is A.OPT_IN:
        kwargs.setdefault("recorded_by", "data manager")
    return record_change(session, program, action, **kwargs)


def test_when_programs_join_then_current_participation_reflects_it(session: Session) -> None:
    change(session, HS, A.PARTICIPATE, recipient_code=SEDS)
    change(session, AIAN, A.PARTICIPATE, recipient_code=SEDS)
    now = current_participation(session, SEDS, RUN)
    assert set(now) == {HS, AIAN}
    assert now[HS].state is ParticipationState.PARTICIPATING and now[HS].shares
    assert now[AIAN].is_aian and now[AIAN].opt_in is None and not now[AIAN].shares
    other = current_participation(session, OTHER, RUN)
    assert other[HS].state is ParticipationState.NOT_REGISTERED


@pytest.mark.parametrize(
    ("opt_out_on", "active"),
    [
        pytest.param(RUN - DAY, False, id="when_opted_out_day_before_run_date_then_no_opt_in"),
        pytest.param(RUN, False, id="when_opted_out_on_run_date_then_no_opt_in"),
        pytest.param(RUN + DAY, True, id="when_opted_out_day_after_run_date_then_still_active"),
    ],
)
def test_opt_out_boundary_in_the_database(session: Session, opt_out_on: Any, active: bool) -> None:
    change(session, AIAN, A.PARTICIPATE, recipient_code=SEDS)
    change(session, AIAN, A.OPT_IN, authority="Resolution 2026-14", scope="aggregate",
           excluded_fields=["race"])  # fmt: skip
    change(session, AIAN, A.OPT_OUT, reason="council withdrew", effective_date=opt_out_on)
    status = current_participation(session, SEDS, RUN)[AIAN]
    assert (status.opt_in is not None) is active
    if active:
        assert status.opt_in.scope is OptInScope.AGGREGATE
        assert status.opt_in.excluded_fields == {"race"}
        assert status.opt_in.recipient_code is None


@pytest.mark.parametrize(
    ("opt_in_on", "active"),
    [
        pytest.param(RUN - DAY, True, id="when_opt_in_effective_day_before_then_active"),
        pytest.param(RUN, True, id="when_opt_in_effective_on_run_date_then_active"),
        pytest.param(RUN + DAY, False, id="when_opt_in_effective_day_after_then_not_yet"),
    ],
)
def test_opt_in_boundary_in_the_database(session: Session, opt_in_on: Any, active: bool) -> None:
    change(session, AIAN, A.PARTICIPATE, recipient_code=SEDS)
    change(session, AIAN, A.OPT_IN, recipient_code=SEDS, authority="Resolution 2026-14",
           scope="record", effective_date=opt_in_on)  # fmt: skip
    assert current_participation(session, SEDS, RUN)[AIAN].shares is active
    assert not current_participation(session, OTHER, RUN)[AIAN].shares


INVALID = [
    pytest.param(HS, A.OPT_IN, {"authority": "x", "scope": "record"}, "not AIAN",
                 id="when_opt_in_for_non_aian_program_then_error"),
    pytest.param(HS, A.OPT_OUT, {"reason": "x"}, "not AIAN",
                 id="when_opt_out_for_non_aian_program_then_error"),
    pytest.param(AIAN, A.OPT_IN, {"scope": "record"}, "authority",
                 id="when_opt_in_without_authority_then_error"),
    pytest.param(AIAN, A.OPT_IN, {"authority": "x"}, "scope",
                 id="when_opt_in_without_scope_then_error"),
    pytest.param(AIAN, A.OPT_IN, {"authority": "x", "scope": "everything"}, "unknown scope",
                 id="when_opt_in_scope_unknown_then_error"),
    pytest.param(AIAN, A.OPT_IN, {"authority": "x", "scope": "record",
                                  "excluded_fields": ["tribe"]}, "unknown excluded",
                 id="when_opt_in_excludes_unknown_field_then_error"),
    pytest.param(AIAN, A.OPT_OUT, {}, "reason", id="when_opt_out_without_reason_then_error"),
    pytest.param(HS, A.PARTICIPATE, {"decided_by": "  ", "recipient_code": SEDS}, "decided_by",
                 id="when_decider_blank_then_error"),
    pytest.param(HS, A.PARTICIPATE, {}, "recipient is required",
                 id="when_participate_without_recipient_then_error"),
    pytest.param(HS, A.WITHDRAW, {"recipient_code": "NOPE"}, "unknown recipient NOPE",
                 id="when_recipient_unknown_then_error"),
    pytest.param("NOPE-01", A.PARTICIPATE, {"recipient_code": SEDS}, "unknown program NOPE-01",
                 id="when_program_unknown_then_error"),
    pytest.param(HS, "join", {"recipient_code": SEDS}, "unknown action",
                 id="when_action_unknown_then_error"),
    pytest.param(HS, A.PARTICIPATE, {"recipient_code": SEDS, "scope": "record"}, "opt-in",
                 id="when_participate_with_scope_then_error"),
]  # fmt: skip


@pytest.mark.parametrize(("program", "action", "kwargs", "message"), INVALID)
def test_invalid_changes_are_refused(
    session: Session, program: str, action: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ParticipationError, match=message):
        change(session, program, action, **kwargs)
    assert session.scalars(select(ParticipationEvent)).all() == []


def test_history_lists_every_change_oldest_first_with_who_when_why(session: Session) -> None:
    change(session, AIAN, A.OPT_IN, authority="Resolution 2026-14", scope="record",
           effective_date=RUN - 9 * DAY, decided_by="Tribal Council")  # fmt: skip
    change(session, AIAN, A.PARTICIPATE, recipient_code=SEDS)
    change(session, AIAN, A.OPT_OUT, reason="review", effective_date=RUN, decided_by="Council")
    change(session, HS, A.PARTICIPATE, recipient_code=OTHER)
    changes = history(session, AIAN)
    assert [(c.action, c.recipient_code, c.effective_date) for c in changes] == [
        (A.PARTICIPATE, SEDS, LONG_AGO),
        (A.OPT_IN, None, RUN - 9 * DAY),
        (A.OPT_OUT, None, RUN),
    ]
    assert (
        changes[1].authority == "Resolution 2026-14" and changes[1].decided_by == "Tribal Council"
    )
    assert changes[2].reason == "review" and changes[2].recorded_at is not None
    assert len(history(session)) == 4
    with pytest.raises(ParticipationError, match="unknown program"):
        history(session, "NOPE-01")


def test_when_recipient_unknown_then_current_participation_refuses(session: Session) -> None:
    with pytest.raises(ParticipationError, match="unknown recipient"):
        current_participation(session, "NOPE", RUN)
