"""Clean extract frames for the quality-gate tests (every catalog field, one row per child)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from privacy.fields import CATALOG

RUN_DATE = dt.date(2026, 11, 27)
FIRST_NAMES = ["Marisol", "Thaddeus", "Wilhelmina", "Octavio", "Philippa", "Ezekiel"]
LAST_NAMES = ["Quenneville", "Abernathy-Stroud", "Okonkwo", "Vasquez-Ling", "Thistlewood"]


def clean_extract(rows: int = 20, *, program_code: str = "VT-HS-01") -> pd.DataFrame:
    """An extract frame that passes every input rule on :data:`RUN_DATE`."""
    records = []
    for i in range(rows):
        birth = dt.date(2022, 1, 1) + dt.timedelta(days=(i * 37) % 1000)
        entry = birth + dt.timedelta(days=400)
        exited = i % 4 == 0
        records.append(
            {
                "child_id": 1000 + i,
                "program_code": program_code,
                "child_local_id": f"L{i:05d}",
                "state_student_id": f"{9000000 + i}" if i % 3 else None,
                "first_name": FIRST_NAMES[i % len(FIRST_NAMES)],
                "middle_name": None,
                "last_name": LAST_NAMES[i % len(LAST_NAMES)],
                "birth_date": birth,
                "sex": ["female", "male", "not_selected"][i % 3],
                "race": ["white", "black", "asian", "two_or_more", "unknown"][i % 5],
                "ethnicity": ["hispanic", "not_hispanic"][i % 2],
                "home_language": ["eng", "spa", "som"][i % 3],
                "address_street": f"{10 + i} Maple Street",
                "address_city": "Burlington",
                "address_state": "VT",
                "address_zip": "05401",
                "guardian_first_name": "Rosalind",
                "guardian_last_name": LAST_NAMES[i % len(LAST_NAMES)],
                "guardian_relationship": "mother",
                "guardian_phone": "802-555-0100",
                "guardian_email": f"parent{i}@example.org",
                "program_type": "head_start",
                "site_code": "SITE-1",
                "program_option": "center_based",
                "entry_date": entry,
                "exit_date": entry + dt.timedelta(days=200) if exited else None,
                "exit_reason": "family_moved" if exited else None,
                "eligibility_category": "income",
                "days_scheduled": 100,
                "days_present": 90,
                "dual_language_learner": i % 2 == 0,
                "homeless": False,
                "foster_care": False,
                "income_band": "below_100",
                "disability": False,
                "iep": False,
                "ifsp": False,
                "tribal_affiliation": None,
            }
        )
    frame = pd.DataFrame.from_records(records)
    assert list(frame.columns) == ["child_id", *CATALOG]
    return frame
