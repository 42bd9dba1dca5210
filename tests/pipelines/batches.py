"""Permitted frames and batches for mapping and destination tests (fake children only)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from pipelines.destinations.base import Artifact, Batch
from pipelines.mapping import render
from schemas.filespec import load_spec

IDENTITY_FIELDS = (
    "program_code",
    "child_local_id",
    "state_student_id",
    "first_name",
    "middle_name",
    "last_name",
    "birth_date",
    "sex",
)
ENROLLMENT_FIELDS = (
    "program_code",
    "child_local_id",
    "program_type",
    "site_code",
    "program_option",
    "entry_date",
    "exit_date",
    "exit_reason",
    "eligibility_category",
    "race",
    "ethnicity",
    "home_language",
    "dual_language_learner",
    "disability",
    "iep",
    "ifsp",
    "homeless",
    "foster_care",
    "income_band",
    "days_scheduled",
    "days_present",
)
SEXES = ("female", "male", "not_selected")
RACES = ("white", "black", "asian", "two_or_more", "unknown")


def permitted_frame(n: int = 3, program: str = "VT-HS-01", *, seed: int = 0) -> pd.DataFrame:
    """``n`` fake children with every field the demo specs read; ``seed`` varies values."""
    rows = []
    for i in range(n):
        rows.append(
            {
                "program_code": program,
                "child_local_id": f"C{i + 1:04d}",
                "state_student_id": None if i % 3 == 0 else f"{1000000 + i + seed}",
                "first_name": f"Kid{i}",
                "middle_name": None if i % 2 else "M",
                "last_name": f"Family{i + seed}",
                "birth_date": dt.date(2021, 1 + i % 12, 1 + i % 28),
                "sex": SEXES[i % len(SEXES)],
                "program_type": "head_start",
                "site_code": "S1",
                "program_option": "center_based",
                "entry_date": dt.date(2025, 9, 2),
                "exit_date": None if i % 4 else dt.date(2026, 6, 12),
                "exit_reason": None if i % 4 else "transition_to_kindergarten",
                "eligibility_category": "income",
                "race": RACES[i % len(RACES)],
                "ethnicity": "not_hispanic",
                "home_language": "eng",
                "dual_language_learner": bool(i % 2),
                "disability": False,
                "iep": False,
                "ifsp": bool(i % 5 == 1),
                "homeless": False,
                "foster_care": False,
                "income_band": "below_100",
                "days_scheduled": 120 + seed,
                "days_present": 100 + i,
            }
        )
    return pd.DataFrame(rows)


def make_batch(
    n: int = 3,
    *,
    run_id: str = "run-1",
    run_date: str = "2026-11-27",
    program: str = "VT-HS-01",
    seed: int = 0,
) -> Batch:
    """An identity + enrollment batch rendered from :func:`permitted_frame`."""
    frame = permitted_frame(n, program, seed=seed)
    plan = sorted(set(IDENTITY_FIELDS) | set(ENROLLMENT_FIELDS))
    artifacts: list[Artifact] = []
    for name in ("hs_child_identity", "hs_enrollment"):
        result = render(load_spec(name), frame, plan)
        assert result.unrenderable.empty
        artifacts.append(result.artifact())
    return Batch(run_id, run_date, program, tuple(artifacts))
