"""``age_months``: a date replaced by the whole months from it to the run date.

On ``birth_date`` that is the child's age in months; the column is then named ``age_months``
(on another date, ``<field>_months``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from privacy.fields import Field, Kind
from privacy.transforms.base import Transform, TransformContext, to_int, whole_months

AGE_COLUMN = "age_months"
BIRTH_DATE = "birth_date"


def months_column(field: Field) -> str:
    """``age_months`` for the birth date, ``<field>_months`` for another date."""
    return AGE_COLUMN if field.name == BIRTH_DATE else f"{field.name}_months"


def months_phrase(field: Field) -> str:
    """What the months of ``field`` are, in plain words."""
    if field.name == BIRTH_DATE:
        return "the child's age in whole months on the run date"
    return "the whole months from it to the run date"


class AgeMonths(Transform):
    """Whole months between the date and the run date (null for a date after the run date)."""

    name = "age_months"
    kinds = frozenset({Kind.DATE})

    def output_column(self, field: Field, params: Mapping[str, Any]) -> str:
        """``age_months`` or ``<field>_months``."""
        return months_column(field)

    def apply(self, series: pd.Series, ctx: TransformContext) -> pd.Series:
        """Whole months as a nullable integer."""
        return to_int(whole_months(series, ctx.run_date), series.index)

    def explain(self, field: Field, params: Mapping[str, Any]) -> str:
        """Plain words."""
        return f"replaced by {months_phrase(field)}"
