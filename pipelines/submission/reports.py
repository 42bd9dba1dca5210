"""Validation reports and run summaries kept for data managers, as JSON. No PII."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipelines.paths import safe_join
from pipelines.submission.context import RunContext


def run_report_dir(context: RunContext) -> Path:
    """The folder of one run's reports."""
    return safe_join(context.settings.reports_dir, context.run.run_id, role="run id")


def report_text(value: Any) -> str:
    """``value`` as a report file writes it: indented JSON, keys sorted."""
    return json.dumps(value, indent=2, default=str, sort_keys=True)


def report_folder(context: RunContext) -> Path:
    """The folder of one run's reports, made if missing."""
    folder = run_report_dir(context)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_report(
    context: RunContext,
    name: str,
    content: dict[str, Any],
    *,
    written: Mapping[str, str] | None = None,
    folder: Path | None = None,
) -> str:
    """Write ``content`` as ``<reports>/<run id>/<name>.json``; returns the path. ``written``:
    entries of ``content`` already as :func:`report_text` writes them (an entry many reports
    share is written once); the file is the same text either way. ``folder``: that folder as
    :func:`report_folder` gave it, for reports written one after the other (made once)."""
    folder = folder or report_folder(context)
    path = safe_join(folder, f"{name}.json", role="report name")
    path.write_text(_text(content, written or {}))
    return str(path)


def _text(content: dict[str, Any], written: Mapping[str, str]) -> str:
    """:func:`report_text` of ``content``, its ``written`` entries taken as they are (JSON text
    holds no line break but between tokens, so an entry is indented by its line breaks)."""
    if not written or not content or not all(isinstance(key, str) for key in content):
        return report_text(content)
    entries = [
        f"  {json.dumps(key)}: "
        + (written[key] if key in written else report_text(content[key])).replace("\n", "\n  ")
        for key in sorted(content)
    ]
    return "{\n" + ",\n".join(entries) + "\n}"
