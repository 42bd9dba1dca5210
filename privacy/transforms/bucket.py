"""``bucket``: a count, or a date's age in months, grouped into declared bands.

``bins`` are ascending whole numbers; ``[0, 12, 24, 36]`` makes the bands ``0-11``, ``12-23``,
``24-35`` and ``36+``. A value below the first bin becomes null. On a date the value is the
whole months to the run date (the age in months on ``birth_date``), in a column named
``age_band`` (``<field>_months_band`` on another date); on a count the column keeps its name.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from privacy.errors import TransformError
from privacy.fields import Field, Kind
from privacy.transforms.age_months import BIRTH_DATE, months_phrase
from privacy.transforms.base import Transform, TransformContext, whole_months

MAX_BINS = 50


class Bucket(Transform):
    """Group values into the bands between ascending ``bins``."""

    name = "bucket"
    kinds = frozenset({Kind.COUNT, Kind.DATE})
    BINS = "bins"
    PARAMS = frozenset({BINS})

    def validate_params(self, params: Mapping[str, Any], field: Field) -> None:
        """``bins``: 2 to 50 ascending whole numbers, none below zero."""
        bins = params.get(self.BINS)
        where = f"bucket on {field.name}"
        if not isinstance(bins, Sequence) or isinstance(bins, str):
            raise TransformError(f"{where}: needs bins, a list of ascending whole numbers")
        if not 2 <= len(bins) <= MAX_BINS:
            raise TransformError(f"{where}: bins needs 2 to {MAX_BINS} numbers")
        if not all(isinstance(b, int) and not isinstance(b, bool) and b >= 0 for b in bins):
            raise TransformError(f"{where}: bins must be whole numbers of 0 or more")
        if any(a >= b for a, b in itertools.pairwise(bins)):
            raise TransformError(f"{where}: bins must be strictly ascending")

    def output_column(self, field: Field, params: Mapping[str, Any]) -> str:
        """The field's name for a count; ``age_band`` or ``<field>_months_band`` for a date."""
        if field.kind is not Kind.DATE:
            return field.name
        return "age_band" if field.name == BIRTH_DATE else f"{field.name}_months_band"

    def apply(self, series: pd.Series, ctx: TransformContext) -> pd.Series:
        """Band labels as text; null for null, unreadable or below-range values."""
        if ctx.field.kind is Kind.DATE:
            values = whole_months(series, ctx.run_date)
        else:
            values = pd.to_numeric(series, errors="coerce").to_numpy(
                dtype="float64", na_value=np.nan
            )
        bins = np.asarray(ctx.params[self.BINS], dtype="float64")
        names = np.array([*band_labels(ctx.params[self.BINS]), None], dtype=object)
        slot = np.searchsorted(bins, values, side="right") - 1
        slot[np.isnan(values) | (slot < 0)] = len(names) - 1
        return pd.Series(names[slot], index=series.index, dtype=object)

    def explain(self, field: Field, params: Mapping[str, Any]) -> str:
        """Plain words."""
        bands = ", ".join(band_labels(params[self.BINS]))
        if field.kind is Kind.DATE:
            return f"replaced by {months_phrase(field)}, grouped into bands {bands}"
        return f"grouped into bands {bands}"


def band_labels(bins: Sequence[int]) -> list[str]:
    """``[0, 12, 24]`` -> ``["0-11", "12-23", "24+"]``."""
    labels = [f"{lo}-{hi - 1}" if hi - 1 > lo else f"{lo}" for lo, hi in itertools.pairwise(bins)]
    return [*labels, f"{bins[-1]}+"]
