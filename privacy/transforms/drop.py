"""``drop``: the field never leaves; naming it documents that the agreement considered it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from privacy.fields import Field, Kind
from privacy.transforms.base import Transform, TransformContext


class Drop(Transform):
    """Remove the field; a plan leaves no column for it."""

    name = "drop"
    kinds = frozenset(Kind)
    leaves = False

    def apply(self, series: pd.Series, ctx: TransformContext) -> pd.Series:
        """An all-null column (plans never call this: a dropped field has no column)."""
        return pd.Series(None, index=series.index, dtype=object)

    def explain(self, field: Field, params: Mapping[str, Any]) -> str:
        """Plain words."""
        return "dropped: never leaves"
