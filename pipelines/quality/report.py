"""Quality reports for data managers: JSON for machines, a plain-text table for people.

Both are made from a suite's PII-free ``report`` dict (rule names, columns, counts), never
from GE's raw results.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.quality.input_suite import InputResult
from pipelines.quality.output_suite import OutputResult

HEADERS = ("rule", "column", "result", "unexpected", "percent")


def _report(source: InputResult | OutputResult | Mapping[str, Any]) -> Mapping[str, Any]:
    return source.report if isinstance(source, InputResult | OutputResult) else source


def _summary(report: Mapping[str, Any]) -> list[str]:
    if report.get("suite") == "input":
        outcome = (
            "STOPPED"
            if report.get("stopped")
            else "passed"
            if report.get("success")
            else "passed with quarantined rows"
        )
        return [
            f"Input quality gate (run date {report.get('run_date')}): {outcome}",
            f"rows {report['rows']}, passed {report['passed_rows']}, "
            f"quarantined {report['quarantined_rows']} "
            f"(share {report['failure_share']:.2%}, stop above "
            f"{report['max_failure_share']:.2%})",
        ]
    lines = [f"Output privacy gate: {'ok' if report.get('ok') else 'FAILED'}"]
    lines.append(f"rows {report.get('rows')}")
    lines += [f"  failure: {failure}" for failure in report.get("failures", [])]
    return lines


def render_text(
    source: InputResult | OutputResult | Mapping[str, Any], *, failures_only: bool = False
) -> str:
    """A plain-text table: one line per expectation (rule, column, ok/FAIL, count, percent)."""
    report = _report(source)
    rows = [
        (
            str(item["name"]),
            item["column"] or "(table)",
            "ok" if item["success"] else "FAIL",
            "" if item["unexpected_count"] is None else str(item["unexpected_count"]),
            "" if item["unexpected_percent"] is None else f"{item['unexpected_percent']:.2f}%",
        )
        for item in report.get("expectations", [])
        if not (failures_only and item["success"])
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(width) if i >= 3 else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    table = [line(HEADERS), line(tuple("-" * w for w in widths)), *(line(r) for r in rows)]
    return "\n".join([*_summary(report), "", *table]) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_report(
    path: str | os.PathLike[str], source: InputResult | OutputResult | Mapping[str, Any]
) -> tuple[Path, Path]:
    """Write the report as JSON at ``path`` and as text beside it (``.txt``); both paths."""
    report = _report(source)
    json_path = Path(path)
    text_path = json_path.with_suffix(".txt")
    _atomic_write(json_path, json.dumps(report, indent=2, sort_keys=False) + "\n")
    _atomic_write(text_path, render_text(report))
    return json_path, text_path
