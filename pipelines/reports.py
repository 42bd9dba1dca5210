"""Ledger reports as data: rows (plain dicts) from the ledgers, and one way to print them.

Rows name children by program code and local id (or pseudonym) only; runs, recipients,
agreements, reasons and rules by their codes. ``emit`` prints rows as a rich table, CSV or
JSON, so every report command offers the same three formats. CSV cells that a spreadsheet
would run as a formula get a single quote in front (OWASP's rule, as the file specs do).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from privacy import ledger
from schemas import RedactionEntry, Run
from schemas.filespec import neutralise_formula
from schemas.sharing import Recipient

try:  # reason codes with descriptions; a report still works with raw codes without them
    from privacy.reasons import Reason
except ImportError:  # pragma: no cover - the module ships with the package
    Reason = None  # type: ignore[assignment,misc]


class OutputFormat(StrEnum):
    """How a report is printed."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"


def reason_description(code: str) -> str:
    """The plain-English description of a reason code, or the code itself when unknown."""
    if Reason is None:
        return code
    try:
        # Reason(code) looks a member up by value; mypy checks the call against
        # the __new__ that builds the members (value, level, description)
        return str(Reason(code).description)  # type: ignore[call-arg]
    except (ValueError, AttributeError):
        return code


def _counts(summary: Any) -> str:
    """The whole-number counts of a run summary, top level and its ``children`` section."""
    if not isinstance(summary, dict):
        return ""
    flat = {**summary, **(summary.get("children") or {})}
    parts = [
        f"{key}={value}"
        for key, value in flat.items()
        if isinstance(value, int) and not isinstance(value, bool)
    ]
    return " ".join(parts)


def row_counts(rows: Any) -> str:
    """``hs_enrollment.csv: 40, students: 12``: rows per file, table or resource (empty when
    there are none)."""
    if not isinstance(rows, dict):
        return ""
    return ", ".join(
        f"{name}: {n:,}" for name, n in sorted(rows.items()) if isinstance(n, int) and n > 0
    )


def row_lines(summary: Any) -> dict[str, str]:
    """What a run moved, in words, per label: rows delivered and rows deleted (kept apart);
    for a dry run, what a real run would deliver and delete instead. A summary recorded
    before deletions were counted has no ``rows_deleted``: that line is left out."""
    if not isinstance(summary, dict):
        return {}
    if summary.get("dry_run"):
        would = summary.get("would_deliver")
        if not isinstance(would, dict):  # a dry run recorded before these counts were kept
            return {"rows delivered": "none (dry run)"}
        lines = {
            "rows delivered": "none (dry run)",
            "would deliver rows": row_counts(would.get("rows"))
            or "none (the destination is up to date)",
        }
        if deleted := row_counts(would.get("rows_deleted")):
            lines["would delete rows"] = deleted
        return lines
    lines = {"rows delivered": row_counts(summary.get("rows_delivered")) or "none"}
    if deleted := row_counts(summary.get("rows_deleted")):
        lines["rows deleted"] = deleted
    return lines


def run_rows(session: Session) -> list[dict[str, Any]]:
    """Every run, newest first: id, destination, dates, status and the counts of its summary."""
    runs = session.scalars(select(Run).order_by(Run.started_at.desc(), Run.id)).all()
    return [
        {
            "run": run.id,
            "destination": run.destination,
            "run_date": run.run_date.isoformat(),
            "dry_run": run.dry_run,
            "status": run.status,
            "started_at": run.started_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "counts": _counts(run.summary),
            "rows": "; ".join(f"{k}: {v}" for k, v in row_lines(run.summary).items()),
            "summary": run.summary,
        }
        for run in runs
    ]


def run_exists(session: Session, run_id: str) -> bool:
    """True when the run is recorded, or has entries in the redaction audit."""
    if session.get(Run, run_id) is not None:
        return True
    query = select(RedactionEntry.id).where(RedactionEntry.run_id == run_id).limit(1)
    return session.execute(query).first() is not None


def redaction_groups(
    session: Session, run_id: str, *, program: str | None = None, reason: str | None = None
) -> list[dict[str, Any]]:
    """Withheld children and removed fields of one run, by reason, program and agreement."""
    query = (
        select(
            RedactionEntry.reason_code,
            RedactionEntry.program_code,
            RedactionEntry.agreement_id,
            RedactionEntry.field,
            func.count(),
        )
        .where(RedactionEntry.run_id == run_id)
        .group_by(
            RedactionEntry.reason_code,
            RedactionEntry.program_code,
            RedactionEntry.agreement_id,
            RedactionEntry.field,
        )
    )
    if program is not None:
        query = query.where(RedactionEntry.program_code == program)
    if reason is not None:
        query = query.where(RedactionEntry.reason_code == reason)
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    removed: dict[tuple[str, str, str], dict[str, int]] = defaultdict(dict)
    for code, program_code, agreement, field, count in session.execute(query):
        key = (code, program_code, agreement)
        group = groups.setdefault(
            key,
            {
                "reason": code,
                "description": reason_description(code),
                "program": program_code,
                "agreement": agreement,
                "children_withheld": 0,
                "fields_removed": 0,
                "fields": "",
            },
        )
        if field is None:
            group["children_withheld"] += int(count)
        else:
            group["fields_removed"] += int(count)
            removed[key][field] = int(count)
    for key, group in groups.items():
        group["fields"] = ", ".join(f"{f} ({n})" for f, n in sorted(removed[key].items()))
    return [groups[key] for key in sorted(groups)]


def redaction_detail(
    session: Session, run_id: str, *, program: str | None = None, reason: str | None = None
) -> list[dict[str, Any]]:
    """The audit entries of one run (drill-down): subject, field and rule of each."""
    return [
        {
            "seq": entry.seq,
            "program": entry.program_code,
            "subject": entry.subject,
            "agreement": entry.agreement_id,
            "reason": entry.reason_code,
            "field": entry.field or "",
            "rule": entry.rule,
        }
        for entry in ledger.redactions(
            session, run_id=run_id, program_code=program, reason_code=reason
        )
    ]


def disclosure_rows(session: Session, program: str, child: str) -> list[dict[str, Any]]:
    """A child's disclosure history for a parent (45 CFR 1303.23/1303.24(b)), oldest first."""
    entries = ledger.disclosures_for_child(session, program, child)
    names = {code: name for code, name in session.execute(select(Recipient.code, Recipient.name))}
    return [
        {
            "date": entry.disclosed_at.isoformat(timespec="seconds"),
            "run_date": entry.run_date.isoformat(),
            "action": entry.action,
            "recipient": entry.recipient_code,
            "recipient_name": names.get(entry.recipient_code, ""),
            "legal_basis": entry.legal_basis,
            "purpose": entry.purpose,
            "fields": ", ".join(entry.fields),
            "agreement": entry.agreement_id,
            "run": entry.run_id,
            "seq": entry.seq,
        }
        for entry in entries
    ]


def emit(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    fmt: OutputFormat,
    *,
    console: Console,
    title: str = "",
) -> None:
    """Print ``rows`` (only ``columns``, in order) as a rich table, CSV or JSON."""
    if fmt is OutputFormat.JSON:
        console.out(
            json.dumps([{c: r.get(c) for c in columns} for r in rows], indent=2), highlight=False
        )
        return
    if fmt is OutputFormat.CSV:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(
            {c: neutralise_formula(v) if isinstance(v, str) else v for c, v in row.items()}
            for row in rows
        )
        console.out(buffer.getvalue(), end="", highlight=False)
        return
    table = Table(title=title or None)
    for column in columns:
        table.add_column(column.replace("_", " "), overflow="fold")
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    console.print(table)


def would_settle_line(would: dict[str, Any]) -> str:
    """A dry run's ``would_settle`` (:func:`pipelines.submission.reconcile_view.report`) in
    words."""
    runs = ", ".join(would.get("runs", [])) or "(unreadable)"
    count = would.get("deliveries", 0)
    return (
        f"would settle {count} open deliver{'y' if count == 1 else 'ies'} from run {runs}: "
        f"{would.get('arrived', 0)} arrived, to be logged; {would.get('resend', 0)} to resend"
    )
