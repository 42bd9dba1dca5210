"""Benchmark: the Great Expectations quality gates on a synthetic 100,000-row batch.

Run: ``.venv/bin/python benchmarks/quality_benchmark.py [ROWS]`` (default 100,000). Prints the
time of the input suite (clean, and with 2% bad rows) and of the output privacy suite (a
record-level batch with pseudonyms, each row checked against its own child, and an aggregate), after
one warm-up run that pays for importing GE and building the context.
"""

from __future__ import annotations

import datetime as dt
import resource
import sys
import time

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from pipelines.quality import validate_input, validate_output
from pipelines.quality.mentions import KeyIndex
from pipelines.quality.output_suite import Columns, RowValues
from privacy.fields import CATALOG

RUN_DATE = dt.date(2026, 11, 27)
PSEUDONYM = r"^[A-Za-z0-9_]{1,15}-[A-Z2-7]{16}$"


def synthetic_extract(rows: int, seed: int = 11) -> pd.DataFrame:
    """One row per child, every catalog column, values that pass the input suite."""
    rng = np.random.default_rng(seed)
    birth = pd.Timestamp(2021, 1, 1) + pd.to_timedelta(rng.integers(0, 1800, rows), unit="D")
    entry = birth + pd.to_timedelta(rng.integers(0, 300, rows), unit="D")
    exited = rng.random(rows) < 0.2
    frame = pd.DataFrame(
        {
            "child_id": np.arange(rows),
            "program_code": rng.choice(["VT-HS-01", "MO-HS-03", "NM-HS-05"], rows),
            "child_local_id": [f"C{i:08d}" for i in range(rows)],
            "state_student_id": [f"{1000000000 + i}" for i in range(rows)],
            "first_name": [f"First{i % 5000}" for i in range(rows)],
            "middle_name": None,
            "last_name": [f"Last{i % 20000}" for i in range(rows)],
            "birth_date": birth.date,
            "sex": rng.choice(["female", "male"], rows),
            "race": rng.choice(["white", "black", "asian", "unknown"], rows),
            "ethnicity": rng.choice(["hispanic", "not_hispanic"], rows),
            "home_language": rng.choice(["eng", "spa"], rows),
            "address_street": "1 Main Street",
            "address_city": "Burlington",
            "address_state": "VT",
            "address_zip": "05401",
            "guardian_first_name": "Pat",
            "guardian_last_name": "Doe",
            "guardian_relationship": "mother",
            "guardian_phone": "802-555-0100",
            "guardian_email": "pat@example.org",
            "program_type": "head_start",
            "site_code": "S1",
            "program_option": "center_based",
            "entry_date": entry.date,
            "exit_date": [d if e else None for d, e in zip(entry.date, exited, strict=True)],
            "exit_reason": np.where(exited, "family_moved", None),
            "eligibility_category": "income",
            "days_scheduled": 120,
            "days_present": rng.integers(0, 120, rows),
            "dual_language_learner": rng.random(rows) < 0.3,
            "homeless": False,
            "foster_care": False,
            "income_band": "below_100",
            "disability": False,
            "iep": False,
            "ifsp": False,
            "tribal_affiliation": None,  # recorded for AIAN programs only
        }
    )
    assert list(frame.columns) == ["child_id", *CATALOG], "a catalog field the frame lacks"
    return frame


def outgoing(extract: pd.DataFrame) -> pd.DataFrame:
    """A record-level outgoing batch: pseudonymized ids, codes, months, counts."""
    rng = np.random.default_rng(3)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"))
    codes = ["".join(row) for row in rng.choice(letters, (len(extract), 16))]
    return pd.DataFrame(
        {
            "student_id": [f"k2026-{c}" for c in codes],
            "state_student_id": extract["state_student_id"],
            "birth_month": pd.to_datetime(extract["birth_date"]).dt.strftime("%Y-%m"),
            "sex": extract["sex"],
            "race": extract["race"],
            "ethnicity": extract["ethnicity"],
            "home_language": extract["home_language"],
            "program_type": extract["program_type"],
            "entry_date": extract["entry_date"],
            "exit_date": extract["exit_date"],
            "days_scheduled": extract["days_scheduled"],
            "days_present": extract["days_present"],
            "dual_language_learner": extract["dual_language_learner"],
        }
    )


def timed(label: str, fn, table: Table) -> None:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    outcome = fn()
    table.add_row(label, f"{time.perf_counter() - start:.2f}", outcome)


def main(rows: int) -> None:
    extract = synthetic_extract(rows)
    bad = extract.copy()
    bad.loc[::50, "sex"] = "bogus"
    out = outgoing(extract)
    names = sorted(set(extract["first_name"]) | set(extract["last_name"]))
    aggregate = pd.DataFrame(
        {"program_code": ["VT-HS-01", "MO-HS-03"] * 500, "n": [0, 12, None, 40] * 250}
    )

    table = Table(title=f"quality gates, {rows:,} rows ({len(names):,} distinct names)")
    for column in ("run", "seconds", "outcome"):
        table.add_column(column)
    timed(
        "warm-up (import GE, context)",
        lambda: str(validate_input(extract.head(5), RUN_DATE).stopped),
        table,
    )
    timed(
        "input suite, clean",
        lambda: f"quarantined {len(validate_input(extract, RUN_DATE).quarantined)}",
        table,
    )
    timed(
        "input suite, 2% bad",
        lambda: f"quarantined {len(validate_input(bad, RUN_DATE).quarantined)}",
        table,
    )

    def run_output() -> str:
        result = validate_output(
            out,
            expected_columns=list(out.columns),
            pseudonym_columns=["student_id"],
            pseudonym_pattern=PSEUDONYM,
            numeric_id_columns=["state_student_id"],
            columns=Columns(text=("student_id",), generalized={"birth_month": "birth_date"}),
            rows=RowValues(
                extract[["first_name", "last_name", "child_local_id", "birth_date"]],
                frozenset(),
                [frozenset()] * len(extract),
                KeyIndex.of([]),
            ),
        )
        return f"ok {result.ok} {result.failures[:2]}"

    timed("output suite, record-level (13 columns)", run_output, table)
    timed(
        "output suite, aggregate (1,000 cells)",
        lambda: str(
            validate_output(
                aggregate, expected_columns=["program_code", "n"], aggregate_count_column="n"
            ).ok
        ),
        table,
    )
    Console().print(table)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Console().print(f"peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
