"""Program aggregates give away nothing they hide: the whole declared domain is listed, no
small cell or zero is published, no hidden cell is pinned by what a reader knows, no line says
"everyone in this program is X", and a program too small publishes nothing.

Checked against child records counted with pandas and an LP attacker
(``tests/disclosure_oracle.py``) that knows the layout: every category of the domain is
listed and zeros are hidden, so each hidden cell is known only to be at least 0.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.submission.aggregate import COLUMNS, breakdown_domains, program_counts
from privacy.agreements import load_agreements
from privacy.transforms import compile_plan
from schemas.filespec import load_spec
from tests.disclosure_oracle import TOTAL, feasible_ranges, published, true_cells

AGREEMENTS = Path(__file__).resolve().parents[2] / "config" / "agreements"
SEX = ("female", "male", "not_selected", "unknown")
RACE = ("american_indian_alaska_native", "asian", "black", "white", "two_or_more", "unknown")
FLAG = ("Y", "N", "unknown")
DOMAINS = {"sex": SEX, "race": RACE, "disability": FLAG}


def children(**columns: list[object]) -> pd.DataFrame:
    return pd.DataFrame(columns)


def line(rows: pd.DataFrame, dimension: str) -> dict[str, int | None]:
    part = rows.loc[rows["dimension"] == dimension]
    return dict(zip(part["category"], part["count"], strict=True))


def test_white_20_total_22_hides_what_the_listing_would_pin() -> None:
    kids = children(race=["white"] * 20 + ["black", "asian"])
    rows, _ = program_counts("P", kids, 10, DOMAINS)
    race = line(rows, "race")
    assert list(race) == [*RACE, TOTAL]  # every category, zeros included
    # white 20 shown would publish "2 children are not white": a small count by subtraction
    assert race[TOTAL] == 22 and all(race[c] is None for c in RACE)
    ranges = feasible_ranges(published(rows.loc[rows["dimension"] == "race"], ["category"],
                                       "count"), ["category"], lambda _: 0)  # fmt: skip
    assert all((low, high) == (0, 22) for low, high in ranges.values())


def test_small_group_in_one_category_shows_no_category() -> None:
    rows, _ = program_counts("P", children(sex=["female"] * 12), 10, DOMAINS)
    sex = line(rows, "sex")
    assert sex[TOTAL] == 12 and all(sex[c] is None for c in SEX)


@pytest.mark.parametrize(
    ("yes", "expected"),
    [pytest.param(12, {"Y": None, "N": 25, "unknown": None}, id="zero_hidden_with_a_complement"),
     pytest.param(5, {"Y": None, "N": None, "unknown": None}, id="small_remainder_hides_all")],
)  # fmt: skip
def test_zero_categories_are_listed_and_hidden(yes: int, expected: dict[str, int | None]) -> None:
    kids = children(disability=[False] * 25 + [True] * yes)
    disability = line(program_counts("P", kids, 10, DOMAINS)[0], "disability")
    assert disability == {**expected, TOTAL: 25 + yes}


@pytest.mark.parametrize(
    "n",
    [pytest.param(0, id="no_child_publishes_nothing"),
     pytest.param(9, id="group_under_threshold_publishes_no_line")],
)  # fmt: skip
def test_when_too_few_children_then_nothing_is_published(n: int) -> None:
    rows, hidden = program_counts("P", children(sex=["female"] * n), 10, DOMAINS)
    assert rows.empty and list(rows.columns) == COLUMNS and hidden == 0


def test_group_at_threshold_is_published() -> None:
    rows, _ = program_counts("P", children(sex=["female"] * 5 + ["male"] * 5), 10, DOMAINS)
    assert line(rows, "sex")[TOTAL] == 10


def test_when_a_value_is_outside_its_domain_then_refused_naming_the_breakdown() -> None:
    with pytest.raises(ValueError, match="breakdown sex"):
        program_counts("P", children(sex=["female"] * 9 + ["x"] * 3), 10, DOMAINS)


def test_domains_come_from_the_spec_and_the_agreements_bands() -> None:
    agreement = load_agreements(AGREEMENTS)["nm-ececd-aggregate"]
    plan = compile_plan(agreement, None, recipient_code=agreement.recipient)
    domains = breakdown_domains(load_spec("hs_program_aggregate"), plan)
    assert domains["age_band"] == ("0-11", "12-23", "24-35", "36-47", "48-59", "60+", "unknown")
    assert domains["sex"] == SEX and domains["disability"] == FLAG


# -- property -------------------------------------------------------------------------------

CATEGORY = {
    "sex": st.sampled_from(["female", "male", "not_selected", None]),
    "race": st.sampled_from(["white", "white", "black", "asian", "two_or_more", None]),
    "disability": st.sampled_from([False, False, False, True, None]),
}


@st.composite
def programs(draw: st.DrawFn) -> pd.DataFrame:
    """A program's contributing children: a few category mixes repeated, so that cells of
    every size occur, including whole groups in one category."""
    mixes = draw(st.lists(st.fixed_dictionaries(CATEGORY), min_size=1, max_size=4))
    sizes = draw(st.lists(st.one_of(st.integers(0, 9), st.integers(10, 40)),
                          min_size=len(mixes), max_size=len(mixes)))  # fmt: skip
    rows = [mix for mix, n in zip(mixes, sizes, strict=True) for _ in range(n)]
    return pd.DataFrame(rows, columns=list(CATEGORY))


def as_category(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "unknown"
    return ("Y" if value else "N") if isinstance(value, bool) else str(value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.sampled_from([5, 10, 11]))
def test_property_aggregates_hide_what_they_hide(kids: pd.DataFrame, threshold: int) -> None:
    rows, _ = program_counts("P", kids, threshold, DOMAINS)
    if len(kids) < threshold:
        assert rows.empty  # no line for a group under the threshold, nothing for none
        return
    for dimension, domain in DOMAINS.items():
        records = pd.DataFrame({"category": kids[dimension].map(as_category)})
        truth = true_cells(records, ["category"])
        part = rows.loc[rows["dimension"] == dimension]
        assert list(part["category"]) == [*domain, TOTAL]
        shown = published(part, ["category"], "count")
        total = shown[(TOTAL,)]
        assert total == len(kids)
        for cell, value in shown.items():
            if value is not None:
                assert value == truth.get(cell, 0)  # the true count
                assert value >= threshold  # no small cell, no zero
                if cell != (TOTAL,):
                    assert value != total  # never "every child of the program is X"
        derived = total - sum(v or 0 for c, v in shown.items() if c != (TOTAL,))
        assert derived == 0 or derived >= threshold  # total - shown is no small count
        for cell, (low, high) in feasible_ranges(shown, ["category"], lambda _: 0).items():
            assert high - low >= 1, (dimension, cell, low, high)  # not pinned
            assert low <= truth.get(cell, 0) <= high
