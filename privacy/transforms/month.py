"""``month``: a date reduced to month and year, ``"YYYY-MM"``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from privacy.fields import Field, Kind
from privacy.transforms.base import Transform, TransformContext, date_parts, per_unique


class Month(Transform):
    """Keep year and month of a date, drop the day."""

    name = "month"
    kinds = frozenset({Kind.DATE})

    def apply(self, series: pd.Series, ctx: TransformContext) -> pd.Series:
        """``"YYYY-MM"`` text, null where the date is null or unreadable."""
        year, month, _ = date_parts(series)
        codes = pd.Series(year * 100 + month, index=series.index)
        return per_unique(codes, _labels)

    def explain(self, field: Field, params: Mapping[str, Any]) -> str:
        """Plain words."""
        return "reduced to month and year"


def _labels(codes: np.ndarray) -> np.ndarray:
    return np.array([f"{int(c) // 100:04d}-{int(c) % 100:02d}" for c in codes], dtype=object)
