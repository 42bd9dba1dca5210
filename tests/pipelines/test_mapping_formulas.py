"""Text a spreadsheet would run as a formula is written quoted (OWASP), per the spec."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.mapping import RenderReason, render
from schemas.filespec import FormulaGuard, load_spec, neutralise_formula
from tests.pipelines.batches import ENROLLMENT_FIELDS, IDENTITY_FIELDS, permitted_frame

IDENTITY = load_spec("hs_child_identity")
ALL_FIELDS = sorted(set(IDENTITY_FIELDS) | set(ENROLLMENT_FIELDS))
# OWASP "CSV Injection": cells beginning with these are read as formulas (written from the
# guidance, not imported from the code under test).
OWASP_LEADING = {"=", "+", "-", "@", "\t", "\r"}


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ('=HYPERLINK("http://x.example","y")', '\'=HYPERLINK("http://x.example","y")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("-Ana", "'-Ana"),
        ("\tTab", "'\tTab"),
        ("\rCr", "'\rCr"),
        ("Ana-Maria", "Ana-Maria"),  # only the first character counts
        ("'quoted", "'quoted"),
        (" =space", " =space"),
        ("＝full-width", "＝full-width"),  # not read as a formula by spreadsheets
    ],
)
def test_when_a_name_begins_like_a_formula_then_it_is_written_quoted(
    name: str, written: str
) -> None:
    frame = permitted_frame(1)
    frame["first_name"] = [name]
    result = render(IDENTITY, frame, ALL_FIELDS)
    assert result.frame.loc[0, "LegalFirstName"] == written
    assert result.frame.loc[0, "ProgramID"] == "VT-HS-01"  # other columns untouched


def test_when_the_spec_says_none_then_values_are_written_as_they_are() -> None:
    raw = IDENTITY.model_copy(update={"formula_guard": FormulaGuard.NONE})
    frame = permitted_frame(1)
    frame["first_name"] = ["=1+1"]
    assert render(raw, frame, ALL_FIELDS).frame.loc[0, "LegalFirstName"] == "=1+1"


def test_when_a_spec_says_nothing_then_the_guard_is_on() -> None:
    data = IDENTITY.model_dump(exclude={"formula_guard"})
    assert type(IDENTITY).model_validate(data).formula_guard is FormulaGuard.QUOTE


def test_when_the_quote_makes_a_value_too_long_then_the_row_is_unrenderable() -> None:
    frame = permitted_frame(2)
    frame["first_name"] = ["=" + "a" * 74, "=" + "a" * 73]  # 75 and 74 characters
    result = render(IDENTITY, frame, ALL_FIELDS)
    assert list(result.unrenderable["reason"]) == [str(RenderReason.VALUE_TOO_LONG)]
    assert list(result.frame["LegalFirstName"]) == ["'=" + "a" * 73]


@given(st.text(max_size=30))
def test_neutralised_text_never_begins_like_a_formula_and_loses_nothing(text: str) -> None:
    out = neutralise_formula(text)
    assert out[:1] not in OWASP_LEADING
    if text[:1] in OWASP_LEADING:
        assert out == "'" + text
    else:
        assert out == text
