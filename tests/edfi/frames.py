"""Synthetic permitted frames shaped like the extract: catalog field names as columns, values
of the canonical code sets, deterministic for a seed. No real people."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable

import pandas as pd

from pipelines.destinations.base import Artifact, Batch, ChildKey
from privacy.fields import CATALOG
from schemas.codes import EligibilityCategory, ExitReason, IncomeBand, ProgramType, Race, Sex

FIRST = ["Ana", "Ben", "Chloe", "Dev", "Eli", "Fatima", "Gus", "Hana", "Ivan", "June"]
LAST = ["Lopez", "Nguyen", "Smith", "Okafor", "Begay", "Haddad", "Kowalski", "Tran"]
LANGUAGES = ["eng", "eng", "eng", "spa", "nep", "swa", "som", "ara", "vie", "nav"]
CITIES = [
    ("Burlington", "VT", "05401"),
    ("Winooski", "VT", "05404"),
    ("Kansas City", "MO", "64105"),
]
DEMO_DATE = dt.date(2026, 11, 27)


def synthetic_frame(
    n: int,
    *,
    program_code: str = "VT-HS-01",
    program_type: ProgramType = ProgramType.HEAD_START,
    seed: int = 7,
    fields: Iterable[str] | None = None,
) -> tuple[pd.DataFrame, list[ChildKey]]:
    """``n`` children of one program with every catalog field (or only ``fields``)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        young = program_type is ProgramType.EARLY_HEAD_START
        age_days = rng.randint(120, 1000) if young else rng.randint(1100, 1800)
        entry = DEMO_DATE - dt.timedelta(days=rng.randint(30, 400))
        exited = rng.random() < 0.1
        city, state, zip_code = rng.choice(CITIES)
        disability = rng.random() < 0.13
        rows.append(
            {
                "program_code": program_code,
                "child_local_id": f"C{i:06d}",
                "state_student_id": f"9{i:09d}" if rng.random() < 0.7 else None,
                "first_name": rng.choice(FIRST),
                "middle_name": rng.choice([None, "Lee", "Mae"]),
                "last_name": rng.choice(LAST),
                "birth_date": DEMO_DATE - dt.timedelta(days=age_days),
                "sex": rng.choice(list(Sex)).value,
                "race": rng.choice(list(Race)).value,
                "ethnicity": rng.choice(["hispanic", "not_hispanic", "unknown"]),
                "home_language": rng.choice(LANGUAGES),
                "address_street": f"{rng.randint(1, 999)} Main St" if rng.random() < 0.95 else None,
                "address_city": city,
                "address_state": state,
                "address_zip": zip_code,
                "guardian_first_name": rng.choice(FIRST),
                "guardian_last_name": rng.choice(LAST),
                "guardian_relationship": "mother",
                "guardian_phone": "802-555-0100",
                "guardian_email": "parent@example.org",
                "program_type": program_type.value,
                "site_code": "S01",
                "program_option": "center_based",
                "entry_date": entry,
                "exit_date": entry + dt.timedelta(days=20) if exited else None,
                "exit_reason": rng.choice(list(ExitReason)).value if exited else None,
                "eligibility_category": rng.choice(list(EligibilityCategory)).value,
                "days_scheduled": 100,
                "days_present": rng.randint(60, 100),
                "dual_language_learner": rng.random() < 0.3,
                "homeless": rng.random() < 0.05,
                "foster_care": rng.random() < 0.03,
                "income_band": rng.choice(list(IncomeBand)).value,
                "disability": disability,
                "iep": disability and not young,
                "ifsp": disability and young,
            }
        )
    frame = pd.DataFrame(rows, columns=list(CATALOG))
    if fields is not None:
        frame = frame[[c for c in CATALOG if c in set(fields)]]
    keys = [(program_code, f"C{i:06d}") for i in range(n)]
    return frame, keys


def records_batch(
    frame: pd.DataFrame,
    keys: list[ChildKey],
    *,
    program_code: str = "VT-HS-01",
    run_id: str = "run-1",
) -> Batch:
    """A batch with one ``records`` artifact, as the pipeline hands Ed-Fi destinations."""
    artifact = Artifact("records", frame, child_keys=tuple(keys))
    return Batch(run_id, DEMO_DATE.isoformat(), program_code, (artifact,))
