"""The review functions and the chart the console renders: honest statuses, counts, citations,
and a chart that distinguishes reasons without colour."""

from __future__ import annotations

import re

import pytest

from console.charts import withheld_chart
from pipelines.review import honest_status, run_counts
from privacy.reasons import Reason, citation


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_names_the_regulation_behind_it(reason: Reason) -> None:
    assert re.fullmatch(r"(45|34) CFR [0-9.]+.*", citation(reason.value))


@pytest.mark.parametrize(
    ("status", "finished", "summary", "shown"),
    [
        ("running", False, {}, "unfinished"),
        ("success", True, {"programs": {"stopped": []}}, "success"),
        ("success", True, {"programs": {"stopped": ["VT-HS-01"]}}, "partial"),
        ("partial", True, {"programs": {"stopped": ["VT-HS-01"]}}, "partial"),
        ("failed", True, None, "failed"),
    ],
)
def test_a_run_status_is_never_greener_than_its_programs(
    status: str, finished: bool, summary: dict | None, shown: str
) -> None:
    assert honest_status(status, finished, summary) == shown


def test_run_counts_add_up_reasons_and_rules_of_the_summary() -> None:
    summary = {
        "children": {"considered": 10, "disclosed": 5, "rejected": 1},
        "withheld_by_reason": {"no_consent": 3, "consent_expired": 1},
        "quarantined_by_rule": {"birth_date_valid": 2},
    }
    assert run_counts(summary) == {
        "considered": 10, "disclosed": 5, "withheld": 4, "quarantined": 2, "refused": 1,
    }  # fmt: skip
    assert run_counts(None) == dict.fromkeys(
        ("considered", "disclosed", "withheld", "quarantined", "refused"), 0
    )


def test_the_chart_gives_each_reason_its_own_pattern_and_words() -> None:
    series = [
        {"run": "a", "run_date": "2026-11-26", "withheld": {"no_consent": 3, "consent_expired": 1}},
        {"run": "b", "run_date": "2026-11-27", "withheld": {"no_consent": 2}},
    ]
    svg = str(withheld_chart(series, "title"))
    patterns = set(re.findall(r'fill="url\(#p-([a-z]+)\)" stroke="#000" stroke-width', svg))
    assert len(patterns) == 2  # two reasons, two patterns
    assert "no written consent on file" in svg and "the consent expired" in svg
    assert ">4</text>" in svg and ">2</text>" in svg  # each bar carries its total


def test_no_withheld_children_says_so_instead_of_an_empty_chart() -> None:
    empty = [{"run": "a", "run_date": "2026-11-26", "withheld": {}}]
    assert "No withheld children" in str(withheld_chart(empty, "title"))
