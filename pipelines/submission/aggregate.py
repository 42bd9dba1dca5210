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

from privacy.suppression import TOTAL, suppress_line
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
        name: breakdown.domain(band_labels(edges) if (edges := bins.get(name)) else None)
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
    rows: list[tuple[str, str, str, int | None]] = []
    hidden = 0
    for dimension in sorted(b for b in BREAKDOWNS if b in permitted.columns and b in domains):
        domain = list(domains[dimension])
        counts = _category(permitted[dimension]).value_counts()
        try:
            line = suppress_line(dict(counts.items()), domain, threshold=threshold)
        except ValueError as error:
            raise ValueError(f"aggregate breakdown {dimension}: {error}") from None
        hidden += sum(n is None for n in line)
        rows += [
            (program_code, dimension, category, n)
            for category, n in zip([*domain, TOTAL], line, strict=True)
        ]
    return pd.DataFrame(rows, columns=COLUMNS, dtype=object), hidden
