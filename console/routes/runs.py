"""Runs, one run's redaction audit, and the children behind one reason.

Viewers see counts; the children behind a reason (local ids, and names on screen) are for
data managers. URLs carry run ids, reason codes and program codes only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from console.app import Db
from console.auth import DataManager, Viewer
from console.charts import withheld_chart
from console.pages import export, page
from pipelines.reports import reason_description, redaction_groups, run_exists
from pipelines.review import (
    PAGE_SIZE,
    child_names,
    destinations,
    quarantine_by_rule,
    run_overview,
    run_page,
    with_citations,
    withheld_entries,
    withheld_series,
)
from privacy.reasons import citation

router = APIRouter()

RUN_COLUMNS = ("run", "destination", "run_date", "dry_run", "status", "considered", "disclosed",
               "withheld", "quarantined", "refused", "started_at", "finished_at")  # fmt: skip
GROUP_COLUMNS = ("reason", "description", "citation", "program", "agreement",
                 "children_withheld", "fields_removed", "fields")  # fmt: skip
ENTRY_COLUMNS = ("seq", "program", "subject", "agreement", "reason", "field", "rule")
Format = Annotated[str | None, Query(pattern="^(csv|json)$")]


@router.get("/runs")
def runs(
    request: Request,
    who: Viewer,
    db: Db,
    destination: str | None = None,
    page_no: Annotated[int, Query(alias="page", ge=1)] = 1,
    format: Format = None,
) -> Response:
    """Every run by destination and date, with a chart of withheld children by reason."""
    rows = run_page(db, destination=destination, limit=PAGE_SIZE, offset=(page_no - 1) * PAGE_SIZE)
    if format:
        return export(rows, RUN_COLUMNS, format, "runs")
    known = destinations(db)
    charted = destination or (known[0] if known else None)
    chart = None
    if charted:
        series = withheld_series(db, charted, last=30)
        chart = withheld_chart(series, f"Children withheld by reason, last 30 runs of {charted}")
    return page(request, who, "runs.html", rows=rows, destinations=known, destination=destination,
                charted=charted, chart=chart, page_no=page_no,
                more=len(rows) == PAGE_SIZE)  # fmt: skip


@router.get("/runs/{run_id}")
def run_detail(
    request: Request, who: Viewer, db: Db, run_id: str, format: Format = None
) -> Response:
    """One run: withheld children and removed fields by reason and program, quarantine,
    validation outcome."""
    overview = run_overview(db, run_id)
    if overview is None and not run_exists(db, run_id):
        raise HTTPException(404, f"No run {run_id} is recorded")
    groups = with_citations(redaction_groups(db, run_id))
    if format:
        return export(groups, GROUP_COLUMNS, format, f"run-{run_id}")
    quarantine = quarantine_by_rule(db, run_id)
    return page(request, who, "run.html", run_id=run_id, run=overview, groups=groups,
                quarantine=quarantine, describe=reason_description)  # fmt: skip


@router.get("/runs/{run_id}/reasons/{reason}")
def reason_children(
    request: Request,
    who: DataManager,
    db: Db,
    run_id: str,
    reason: str,
    program: str | None = None,
    after: Annotated[int, Query(ge=0)] = 0,
    format: Format = None,
) -> Response:
    """The children (and removed fields) behind one reason of one run, a page at a time."""
    if not run_exists(db, run_id):
        raise HTTPException(404, f"No run {run_id} is recorded")
    rows = withheld_entries(db, run_id, reason, program=program, after_seq=after)
    if format:
        return export(rows, ENTRY_COLUMNS, format, f"run-{run_id}-{reason}")
    names: dict[tuple[str, str], str] = {}
    for code in {r["program"] for r in rows}:
        subjects = [r["subject"] for r in rows if r["program"] == code]
        names.update({(code, k): v for k, v in child_names(db, code, subjects).items()})
    next_after = rows[-1]["seq"] if len(rows) == PAGE_SIZE else None
    return page(request, who, "reason.html", run_id=run_id, reason=reason, program=program,
                description=reason_description(reason), citation=citation(reason), rows=rows,
                names=names, next_after=next_after, after=after)  # fmt: skip
