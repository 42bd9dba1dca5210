"""The transform base class and the vectorized helpers transforms share.

A transform is stateless, like a Presidio operator: its parameter names are class constants,
``validate(params, field)`` checks a rule once when a plan is compiled, and ``apply(series,
ctx)`` turns one extract column into one output column for a whole batch at once. Nulls stay
null; a value a transform cannot read (a malformed date or ZIP) becomes null, never the raw
value.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from privacy.errors import TransformError
from privacy.fields import Field, Kind
from privacy.keys import RecipientKey


@dataclass(frozen=True, slots=True)
class TransformContext:
    """What ``apply`` may use besides the column: the field, its params, the run date, a key."""

    field: Field
    params: Mapping[str, Any]
    run_date: dt.date
    key: RecipientKey | None = dataclasses.field(default=None, repr=False)


class Transform(ABC):
    """One field transform. Subclasses set ``name``, ``kinds`` and ``PARAMS``."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[Kind]]
    PARAMS: ClassVar[frozenset[str]] = frozenset()
    leaves: ClassVar[bool] = True
    needs_key: ClassVar[bool] = False

    def validate(self, params: Mapping[str, Any], field: Field) -> None:
        """Check that this transform fits ``field`` with ``params``; ``TransformError`` if not."""
        if field.kind not in self.kinds:
            fits = ", ".join(sorted(self.kinds))
            raise TransformError(
                f"{self.name} does not fit {field.name} (kind: {field.kind}); {self.name} fits "
                f"kinds: {fits}"
            )
        unknown = sorted(set(params) - self.PARAMS)
        if unknown:
            allowed = ", ".join(sorted(self.PARAMS)) or "none"
            raise TransformError(
                f"{self.name} on {field.name}: unknown parameter {', '.join(unknown)} "
                f"(allowed: {allowed})"
            )
        self.validate_params(params, field)

    def validate_params(self, params: Mapping[str, Any], field: Field) -> None:
        """Check the parameter values (the names are checked already); override when needed."""
        return None

    def output_column(self, field: Field, params: Mapping[str, Any]) -> str:
        """The name of the column this transform makes of ``field``."""
        return field.name

    @abstractmethod
    def apply(self, series: pd.Series, ctx: TransformContext) -> pd.Series:
        """The transformed column, same length and index as ``series``."""

    @abstractmethod
    def explain(self, field: Field, params: Mapping[str, Any]) -> str:
        """What happens to the field, in plain words (``"reduced to month and year"``)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def as_datetime(series: pd.Series) -> pd.Series:
    """``series`` as datetime64; values that are not dates become NaT."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series
    return pd.to_datetime(series, errors="coerce")


def date_parts(series: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month and day of a date column as float arrays, NaN where null or unreadable."""
    dates = as_datetime(series).dt
    return tuple(  # type: ignore[return-value]
        part.to_numpy(dtype="float64", na_value=np.nan)
        for part in (dates.year, dates.month, dates.day)
    )


def whole_months(series: pd.Series, on: dt.date) -> np.ndarray:
    """Whole months from each date to ``on`` as floats (NaN for null or a date after ``on``).

    A month is complete on the same day of a later month, or on that month's last day when it
    is shorter: born Jan 31 -> one month on Feb 28; born Feb 29 -> twelve months on Feb 28 of
    a common year.
    """
    year, month, day = date_parts(series)
    next_month = dt.date(on.year + on.month // 12, on.month % 12 + 1, 1)
    days_in_month = (next_month - dt.timedelta(days=1)).day
    months = (on.year - year) * 12 + (on.month - month)
    months -= on.day < np.minimum(day, days_in_month)
    months[months < 0] = np.nan
    return months


def to_int(values: np.ndarray, index: pd.Index) -> pd.Series:
    """A float array with NaN as a nullable integer column."""
    return pd.Series(pd.array(values, dtype="Float64"), index=index).astype("Int64")


def per_unique(series: pd.Series, fn: Callable[[np.ndarray], np.ndarray]) -> pd.Series:
    """Apply ``fn`` once per distinct non-null value; nulls (and None results) stay null.

    ``fn`` takes an object array of distinct values and returns an object array of results.
    """
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    results = np.asarray(fn(np.asarray(uniques, dtype=object)), dtype=object)
    if len(results) != len(uniques):
        raise TransformError("a transform returned the wrong number of values")
    with_null = np.concatenate([results, np.array([None], dtype=object)])
    out = with_null[np.where(codes < 0, len(results), codes)]
    return pd.Series(out, index=series.index, dtype=object)
