"""Ledger integrity: ``verify_ledgers`` (the same as ``datashare audit verify``) on the
disclosure log and the redaction audit, run as a background job (``pipelines/verify_jobs.py``),
never inside a request. The page shows the newest job's progress, then what it verified (every
entry, or the entries after each ledger's checkpoint) and what it found."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from console.app import State
from console.auth import Viewer, checked_form
from console.pages import NO_STORE, base_path, page, wants_json
from pipelines import verify_jobs as jobs

router = APIRouter()
STALE_SECONDS = int(jobs.STALE_AFTER.total_seconds())


@router.get("/ledgers")
def ledgers(request: Request, who: Viewer, console: State) -> Response:
    """The newest verify job (its progress or its result) and the buttons to start one."""
    job = jobs.latest(console.engine)
    if wants_json(request):
        return JSONResponse({"job": job}, headers=NO_STORE)
    marks = jobs.newest_checkpoints(console.engine)
    return page(
        request, who, "ledgers.html", job=job, checkpoints=marks, stale_seconds=STALE_SECONDS
    )


@router.get("/ledgers/jobs/{job_id}")
def job(request: Request, job_id: int, who: Viewer, console: State) -> Response:
    """One verify job: its progress, then its result."""
    found = jobs.find(console.engine, job_id)
    if found is None:
        raise HTTPException(404, f"no verify job {job_id}")
    if wants_json(request):
        return JSONResponse({"job": found}, headers=NO_STORE)
    marks = jobs.newest_checkpoints(console.engine)
    return page(
        request, who, "ledgers.html", job=found, checkpoints=marks, stale_seconds=STALE_SECONDS
    )


@router.post("/ledgers/verify")
async def verify(request: Request, who: Viewer, console: State) -> Response:
    """Start a verify job (``mode`` routine or full) or join the one running; answers at once:
    202 with the job's address for a client, a redirect to the page for a browser."""
    form = await checked_form(request, who)
    mode = str(form.get("mode") or "routine")
    if mode not in jobs.MODES:
        raise HTTPException(400, f"mode must be one of {', '.join(jobs.MODES)}")
    job_id = jobs.start(console.engine, mode, who.name, console.jobs)
    where = f"{base_path(request)}/ledgers/jobs/{job_id}"
    if wants_json(request):
        return JSONResponse({"job": job_id, "url": where}, 202, headers=NO_STORE)
    return RedirectResponse(where, status_code=303, headers=NO_STORE)
