"""Reason codes: unique, described, short enough for the ledgers."""

from __future__ import annotations

import pytest

from privacy.reasons import Level, Reason, describe


@pytest.mark.parametrize("reason", list(Reason), ids=lambda r: r.value)
def test_every_reason_has_a_one_line_description_and_a_level(reason: Reason) -> None:
    assert reason.description and "\n" not in reason.description
    assert isinstance(reason.level, Level)
    assert len(reason.value) <= 40 and reason.value == reason.name.lower()


def test_reason_values_are_unique_and_read_back_from_their_string() -> None:
    assert len({r.value for r in Reason}) == len(Reason)
    assert Reason("consent_revoked") is Reason.CONSENT_REVOKED
    assert describe("notice_refused") == "the parent refused the disclosure"


def test_when_code_unknown_then_describe_raises() -> None:
    with pytest.raises(ValueError):
        describe("no_such_reason")


@pytest.mark.parametrize(
    ("reason", "level"),
    [
        (Reason.DISCLOSED, Level.OK),
        (Reason.AGREEMENT_REVIEW_OVERDUE, Level.AGREEMENT),
        (Reason.AIAN_NO_OPT_IN, Level.PROGRAM),
        (Reason.CONSENT_REVOKED, Level.CHILD),
        (Reason.DISABILITY_CONSENT_MISSING, Level.FIELD),
        (Reason.PARENT_STATEMENT_NOT_CARRIED, Level.FIELD),
    ],
    ids=lambda v: str(v),
)
def test_reason_levels(reason: Reason, level: Level) -> None:
    assert reason.level is level
