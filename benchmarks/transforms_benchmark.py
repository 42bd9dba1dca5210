"""Benchmark: compile each demo agreement's field plan and apply it to a synthetic extract.

Run: ``.venv/bin/python benchmarks/bench_transforms.py [ROWS]`` (default 1,000,000). Prints
wall and CPU time per agreement (CPU time is the honest figure on a shared, busy machine).
Pseudonymizing costs about one HMAC per distinct value: the ``uvm-crc-study`` plan makes two
such columns of a million distinct ids.
"""

from __future__ import annotations

import datetime as dt
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from privacy.agreements import load_agreements
from privacy.fields import CATALOG, Kind
from privacy.keys import RecipientKey
from privacy.transforms import compile_plan

RUN_DATE = dt.date(2026, 11, 27)
AGREEMENTS = Path(__file__).resolve().parents[1] / "config" / "agreements"


class _BenchKeys:
    def key(self, recipient_code: str) -> RecipientKey:
        return RecipientKey("bench", bytes(range(32)))


def synthetic_extract(rows: int, seed: int = 7) -> pd.DataFrame:
    """One row per child, every catalog column, about 2% nulls; no real data."""
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 6 * 365, rows)
    start = np.datetime64("2020-01-01")
    frame: dict[str, object] = {"child_id": np.arange(rows)}
    for name, f in CATALOG.items():
        if f.kind is Kind.DATE:
            values = pd.Series((start + days).astype("datetime64[D]").astype(object))
        elif f.kind is Kind.IDENTIFIER:
            values = pd.Series([f"C{i:08d}" for i in range(rows)], dtype=object)
        elif f.kind is Kind.ZIP:
            values = pd.Series(rng.choice(["05401", "05401-1234", "6511", "87501"], rows))
        elif f.kind is Kind.COUNT:
            values = pd.Series(rng.integers(0, 200, rows))
        elif f.kind is Kind.FLAG:
            values = pd.Series(rng.random(rows) < 0.1)
        else:
            values = pd.Series(rng.choice(["a", "b", "c"], rows), dtype=object)
        frame[name] = values.astype(object).where(rng.random(rows) > 0.02, None)
    return pd.DataFrame(frame)


def main(rows: int) -> None:
    """Time every demo plan on ``rows`` synthetic children."""
    frame = synthetic_extract(rows)
    table = Table(title=f"Field plans on {rows:,} rows")
    for column in ("agreement", "columns", "wall s", "cpu s", "rows/cpu s"):
        table.add_column(column, justify="right" if column != "agreement" else "left")
    for agreement in load_agreements(AGREEMENTS).values():
        plan = compile_plan(agreement, _BenchKeys(), recipient_code=agreement.recipient)
        began, began_cpu = time.perf_counter(), time.process_time()
        out = plan.apply(frame, RUN_DATE)
        took, cpu = time.perf_counter() - began, time.process_time() - began_cpu
        assert tuple(out.columns) == plan.columns
        table.add_row(
            agreement.id, str(len(plan.columns)), f"{took:.2f}", f"{cpu:.2f}", f"{rows / cpu:,.0f}"
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table.caption = f"peak memory {peak_mb:,.0f} MB (includes the synthetic frame)"
    Console().print(table)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
