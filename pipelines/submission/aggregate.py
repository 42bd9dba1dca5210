"""Program-level counts for aggregate outputs, small-cell suppressed.

One-way tables: for each breakdown the agreement permits (age band, sex, race, ethnicity,
disability, dual language learner), the children per category plus a ``Total`` row, each line
suppressed on its own (primary and complementary suppression by ``privacy.suppression``). A
missing value counts as ``unknown``. Only columns the field plan produced are used.
"""

from __future__ import annotations

import pandas as pd

from privacy.suppression import TOTAL, suppress

BREAKDOWNS = ("age_band", "sex", "race", "ethnicity", "disability", "dual_language_learner")
COLUMNS = ["program_code", "dimension", "category", "count"]


def _category(series: pd.Series) -> pd.Series:
    values = series.astype(object).where(series.notna(), "unknown")
    return values.map(lambda v: ("Y" if v else "N") if isinstance(v, bool) else str(v))


def program_counts(
    program_code: str, permitted: pd.DataFrame, threshold: int
) -> tuple[pd.DataFrame, int]:
    """The program's suppressed count rows (:data:`COLUMNS`) and how many cells were hidden."""
    frames: list[pd.DataFrame] = []
    hidden = 0
    for dimension in (b for b in BREAKDOWNS if b in permitted.columns):
        counts = _category(permitted[dimension]).value_counts().rename_axis("category")
        table = counts.rename("count").reset_index()
        if table.empty:
            table = pd.DataFrame({"category": ["unknown"], "count": [0]})
        result = suppress(table, ["category"], threshold=threshold)
        hidden += len(result.suppressed)
        out = result.table[["category", "count"]].copy()
        out.insert(0, "dimension", dimension)
        frames.append(out)
    if not frames:
        return pd.DataFrame(columns=COLUMNS), 0
    rows = pd.concat(frames, ignore_index=True)
    rows.insert(0, "program_code", program_code)
    rows["count"] = rows["count"].astype(object).where(rows["count"].notna(), None)
    order = rows["category"].eq(TOTAL)
    return rows.assign(_total=order).sort_values(["dimension", "_total"], kind="stable").drop(
        columns="_total"
    ).reset_index(drop=True)[COLUMNS], hidden
