"""What a run moved, in words (``datashare run``, ``datashare audit show``, the console's run
page): rows delivered and rows deleted apart; a dry run's would-be rows; summaries recorded
before deletions were counted still read."""

from __future__ import annotations

import pytest

from pipelines.reports import row_counts, row_lines

REAL = {"dry_run": False, "rows_delivered": {"hs_enrollment.csv": 1200, "students": 3}}
CASES = {
    "recorded_before_rows_deleted": (
        REAL, {"rows delivered": "hs_enrollment.csv: 1,200, students: 3"},
    ),
    "deletions_apart": (
        REAL | {"rows_deleted": {"students": 2, "studentSchoolAssociations": 0}},
        {"rows delivered": "hs_enrollment.csv: 1,200, students: 3", "rows deleted": "students: 2"},
    ),
    "only_deletions": (
        {"dry_run": False, "rows_delivered": {}, "rows_deleted": {"hs_enrollment.csv": 4}},
        {"rows delivered": "none", "rows deleted": "hs_enrollment.csv: 4"},
    ),
    "dry_run": (
        {"dry_run": True, "rows_delivered": {},
         "would_deliver": {"rows": {"hs_enrollment.csv": 7}, "rows_deleted": {"a.csv": 1}}},
        {"rows delivered": "none (dry run)", "would deliver rows": "hs_enrollment.csv: 7",
         "would delete rows": "a.csv: 1"},
    ),
    "dry_run_up_to_date": (
        {"dry_run": True, "rows_delivered": {}, "would_deliver": {"rows": {}, "rows_deleted": {}}},
        {"rows delivered": "none (dry run)",
         "would deliver rows": "none (the destination is up to date)"},
    ),
    "dry_run_recorded_before_would_deliver": (
        {"dry_run": True, "rows_delivered": {}}, {"rows delivered": "none (dry run)"},
    ),
    "no_summary": (None, {}),
}  # fmt: skip


@pytest.mark.parametrize(("summary", "lines"), list(CASES.values()), ids=list(CASES))
def test_row_lines_keep_deliveries_and_deletions_apart(summary: object, lines: dict) -> None:
    assert row_lines(summary) == lines


def test_row_counts_skip_empty_and_malformed_counts() -> None:
    assert row_counts({"b": 2, "a": 1, "c": 0, "d": "x", "e": -1}) == "a: 1, b: 2"
    assert row_counts(None) == "" and row_counts(["a"]) == ""


def test_a_run_ends_by_saying_where_to_look_next(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import io

    from rich.console import Console

    from pipelines.commands.run import where_to_look

    out = io.StringIO()
    log = tmp_path / "demo-2026-11-27.log"
    where_to_look(Console(file=out, width=80), {"run_id": "demo-20261127-ab12"}, log)
    text = out.getvalue()
    assert "datashare audit show --run demo-20261127-ab12" in text
    assert "datashare disclosures" in text and str(log) in text


def test_a_counts_only_run_does_not_read_as_nothing_permitted() -> None:
    import io

    from rich.console import Console

    from pipelines.commands.run import show_summary

    summary = {
        "run_id": "nm-1", "destination": "nm", "run_date": "2026-11-27", "dry_run": False,
        "agreement": "nm-ececd-aggregate", "output": "aggregate", "status": "success",
        "programs": {"considered": 2, "processed": ["NM-HS-05"], "stopped": [],
                     "skipped": {"NM-AIAN-06": "program_not_registered"}},
        "children": {"considered": 519, "disclosed": 0, "logged": 0, "rejected": 0},
        "withheld_by_reason": {}, "fields_removed_by_reason": {}, "quarantined_by_rule": {},
        "rows_delivered": {"hs_program_aggregate.csv": 58}, "validation": "passed",
        "report": "/state/reports/nm-1/" + "x" * 120 + "/summary.json",
    }  # fmt: skip
    out = io.StringIO()
    show_summary(Console(file=out, width=100), summary)
    text = out.getvalue()
    assert "519 considered; counts only: no child's own record is sent" in text
    assert "0 permitted" not in text
    assert "hs_program_aggregate.csv: 58" in text
    assert "summary.json" in text, "the report path is shown whole, folded, not cut"
    assert "NM-AIAN-06" in text and "not registered" in text


def test_a_run_says_which_earlier_deliveries_it_settled_and_which_were_presumed() -> None:
    import io

    from rich.console import Console

    from pipelines.commands.run import show_reconciled

    out = io.StringIO()
    presumed = "logged 3 disclosures of run r1, presumed arrived: the destination no longer shows"
    show_reconciled(
        Console(file=out, width=80),
        {"reconciled": {"VT-HS-02": "run r2 did not arrive; sent afresh", "VT-HS-01": presumed}},
    )
    lines = out.getvalue().splitlines()
    assert lines == [
        "Earlier deliveries settled (2):",
        f"  VT-HS-01: {presumed}",
        "  VT-HS-02: run r2 did not arrive; sent afresh",
    ]
    quiet = io.StringIO()
    show_reconciled(Console(file=quiet), {"reconciled": {}})
    assert quiet.getvalue() == ""
