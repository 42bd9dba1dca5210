"""``zip3``: a ZIP code reduced to its first three digits.

Accepts ``12345``, ``12345-6789`` and ``123456789``; anything else (short, letters, a number
that lost its leading zero) becomes null rather than leave in an unknown shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from privacy.fields import Field, Kind
from privacy.transforms.base import Transform, TransformContext, per_unique

_ZIP = re.compile(r"(\d{3})\d{2}(?:-?\d{4})?")


class Zip3(Transform):
    """The three-digit ZIP prefix."""

    name = "zip3"
    kinds = frozenset({Kind.ZIP})

    def apply(self, series: pd.Series, ctx: TransformContext) -> pd.Series:
        """Three-digit text, null when the ZIP is null or malformed."""
        return zip3_of(series)

    def explain(self, field: Field, params: Mapping[str, Any]) -> str:
        """Plain words."""
        return "reduced to its first three digits"


def zip3_of(series: pd.Series) -> pd.Series:
    """What the transform writes for each ZIP of ``series`` (each distinct value once): its
    three-digit prefix, null when the ZIP is null or malformed."""
    return per_unique(series, _prefixes)


def _prefixes(values: np.ndarray) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        match = _ZIP.fullmatch(value.strip()) if isinstance(value, str) else None
        out[i] = match.group(1) if match else None
    return out
