"""``keep``: the value leaves as recorded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from privacy.fields import Field, Kind
from privacy.transforms.base import Transform, TransformContext


class Keep(Transform):
    """Pass the column through unchanged."""

    name = "keep"
    kinds = frozenset(Kind)

    def apply(self, series: pd.Series, ctx: TransformContext) -> pd.Series:
        """The column itself (pandas copy-on-write keeps the extract safe from edits)."""
        return series

    def explain(self, field: Field, params: Mapping[str, Any]) -> str:
        """Plain words."""
        return "as recorded"
