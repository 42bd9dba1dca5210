"""Program-level counts for aggregate outputs, small-cell suppressed.

One-way tables: for each breakdown the agreement permits and the spec declares (age band,
sex, race, ethnicity, disability, dual language learner), the children per category of the
breakdown's declared domain (zeros included) plus a ``Total`` row, each line suppressed on its
own by ``privacy.suppression`` with zeros hidden and the whole domain listed (the rules and
their sources are in ``schemas/formats/hs_program_aggregate.yaml``). A missing value counts as
``unknown``. A program with fewer contributing children than the minimum cell size publishes
no line, and one with none publishes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from privacy.suppression import TOTAL, suppress
from privacy.transforms import FieldPlan
from privacy.transforms.bucket import band_labels
from schemas.filespec import FileSpec

BREAKDOWNS = ("age_band", "sex", "race", "ethnicity", "disability", "dual_language_learner")
COLUMNS = ["program_code", "dimension", "category", "count"]


def _category(series: pd.Series) -> pd.Series:
    values = series.astype(object).where(series.notna(), "unknown")
    return values.map(lambda v: ("Y" if v else "N") if isinstance(v, bool) else str(v))


def breakdown_domains(spec: FileSpec, plan: FieldPlan) -> dict[str, tuple[str, ...]]:
    """Each breakdown's declared categories (age bands from the plan's ``bucket`` bins)."""
    bins = {r.column: r.params.get("bins") for r in plan.rules if r.transform.name == "bucket"}
    return {
        name: breakdown.domain(band_labels(bins[name]) if bins.get(name) else None)
        for name, breakdown in spec.breakdowns.items()
        if breakdown.bands is None or bins.get(name)
    }


def program_counts(
    program_code: str,
    permitted: pd.DataFrame,
    threshold: int,
    domains: Mapping[str, Sequence[str]],
) -> tuple[pd.DataFrame, int]:
    """The program's suppressed count rows (:data:`COLUMNS`) and how many cells were hidden.

    Empty when fewer than ``threshold`` children contribute (nothing to publish, not even a
    Total). Only breakdowns with a declared domain are counted; a value outside its domain
    raises ``ValueError`` naming the breakdown.
    """
    if len(permitted) < max(threshold, 1):
        return pd.DataFrame(columns=COLUMNS), 0
    frames: list[pd.DataFrame] = []
    hidden = 0
    for dimension in (b for b in BREAKDOWNS if b in permitted.columns and b in domains):
        counts = _category(permitted[dimension]).value_counts().rename_axis("category")
        table = counts.rename("count").reset_index()
        try:
            result = suppress(
                table,
                ["category"],
                threshold=threshold,
                suppress_zeros=True,
                domains={"category": list(domains[dimension])},
            )
        except ValueError as error:
            raise ValueError(f"aggregate breakdown {dimension}: {error}") from None
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
