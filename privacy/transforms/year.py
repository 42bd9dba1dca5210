"""``year``: a date reduced to its year."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from privacy.fields import Field, Kind
from privacy.transforms.base import Transform, TransformContext, date_parts, to_int


class Year(Transform):
    """Keep the year of a date only."""

    name = "year"
    kinds = frozenset({Kind.DATE})

    def apply(self, series: pd.Series, ctx: TransformContext) -> pd.Series:
        """The year as a nullable integer."""
        year, _, _ = date_parts(series)
        return to_int(year, series.index)

    def explain(self, field: Field, params: Mapping[str, Any]) -> str:
        """Plain words."""
        return "reduced to the year"
