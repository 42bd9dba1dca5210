"""Validation reports and run summaries kept for data managers, as JSON. No PII."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines.paths import safe_join
from pipelines.submission.context import RunContext


def run_report_dir(context: RunContext) -> Path:
    """The folder of one run's reports."""
    return safe_join(context.settings.reports_dir, context.run.run_id, role="run id")


def write_report(context: RunContext, name: str, content: dict[str, Any]) -> str:
    """Write ``content`` as ``<reports>/<run id>/<name>.json``; returns the path."""
    folder = run_report_dir(context)
    folder.mkdir(parents=True, exist_ok=True)
    path = safe_join(folder, f"{name}.json", role="report name")
    path.write_text(json.dumps(content, indent=2, default=str, sort_keys=True))
    return str(path)
