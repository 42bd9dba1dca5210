"""Combined Great Expectations for the input gate's screen: one expectation per rule family.

GE's cost is mostly per expectation (about 8 ms each on a 25,000-row batch, whatever the
check), so the screen checks a family of per-column rules as one multicolumn expectation:

- :class:`ExpectValuesAllPresent`: every listed column present (``missing_required``);
- :class:`ExpectValuesInSets`: each column missing or in its own value set (``unknown_code``);
- :class:`ExpectValueLengthsAtMost`: each column missing or, as text, at most its own length
  (``too_long``);
- :class:`ExpectDatesInOrder`: the five date rules of ``birth_date``, ``entry_date`` and
  ``exit_date`` (``birth_date_future``, ``birth_date_over_age``, ``birth_date_before_1900``,
  ``birth_after_entry``, ``exit_before_entry``), each as GE's own expectation checks it
  (``between`` on the present birth dates; a column pair only where both are present).

Each row condition is the union of what GE's own per-column expectations flag, computed the
same way (``isnull``; ``isin`` on the present values; ``astype(str).str.len()`` on the present
values, a length that is not a number counting as too long). Rows are never skipped
(``ignore_row_if="never"``). A family that fails (or cannot be evaluated) is checked again
column by column (rule by rule for the dates) with GE's own expectations, whose results alone
name the rows.

Importing this module registers the expectations with Great Expectations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from great_expectations.compatibility import pydantic
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import MulticolumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    MulticolumnMapMetricProvider,
)
from great_expectations.expectations.metrics.map_metric_provider.multicolumn_condition_partial import (  # noqa: E501
    multicolumn_condition_partial,
)

_DOMAIN = ("batch_id", "table", "column_list", "row_condition", "condition_parser", "ignore_row_if")


class ValuesAllPresent(MulticolumnMapMetricProvider):
    """True where no column is missing (GE's ``column_values.nonnull``: ``isnull``)."""

    condition_metric_name = "datashare.values_all_present"
    condition_domain_keys = _DOMAIN

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs: Any) -> pd.Series:
        return ~column_list.isnull().any(axis=1)


class ValuesInSets(MulticolumnMapMetricProvider):
    """True where each column is missing or in its own value set (``value_sets``, aligned
    with the columns; GE's ``column_values.in_set``: ``isin`` on the present values)."""

    condition_metric_name = "datashare.values_in_sets"
    condition_domain_keys = _DOMAIN
    condition_value_keys = ("value_sets",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs: Any) -> pd.Series:
        sets = list(kwargs.get("value_sets") or ())
        bad = np.zeros(len(column_list), dtype=bool)
        for at, value_set in enumerate(sets):
            column = column_list.iloc[:, at]
            present = column.notnull().to_numpy()
            if present.any():
                inside = column[present].isin(value_set).to_numpy(dtype=bool)
                bad[np.flatnonzero(present)] |= ~inside
        return pd.Series(~bad, index=column_list.index)


class ValueLengthsAtMost(MulticolumnMapMetricProvider):
    """True where each column is missing or its text is at most its own length (``lengths``;
    GE's ``column_values.value_length.between``: ``astype(str).str.len() <= max``)."""

    condition_metric_name = "datashare.value_lengths_at_most"
    condition_domain_keys = _DOMAIN
    condition_value_keys = ("lengths",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs: Any) -> pd.Series:
        lengths = [int(n) for n in kwargs.get("lengths") or ()]
        bad = np.zeros(len(column_list), dtype=bool)
        for at, most in enumerate(lengths):
            column = column_list.iloc[:, at]
            present = column.notnull().to_numpy()
            if present.any():
                size = column[present].astype(str).str.len()
                fits = (size <= most).to_numpy(dtype=bool, na_value=False)
                bad[np.flatnonzero(present)] |= ~fits
        return pd.Series(~bad, index=column_list.index)


class DatesInOrder(MulticolumnMapMetricProvider):
    """True where no date rule is broken; the columns are birth, entry and exit date
    (``datetime64``, missing as ``NaT``). A birth date present must be at most
    ``latest_birth``, after ``over_age_cutoff`` and at least ``earliest_birth``; an entry date
    at least the birth date, and an exit date at least the entry date, where both are present."""

    condition_metric_name = "datashare.dates_in_order"
    condition_domain_keys = _DOMAIN
    condition_value_keys = ("latest_birth", "over_age_cutoff", "earliest_birth")

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs: Any) -> pd.Series:
        born, entry, exit_ = (column_list.iloc[:, at] for at in range(3))
        latest = pd.Timestamp(kwargs["latest_birth"])
        cutoff = pd.Timestamp(kwargs["over_age_cutoff"])
        earliest = pd.Timestamp(kwargs["earliest_birth"])
        has_birth, has_entry = born.notna(), entry.notna()
        bad = has_birth & ((born > latest) | (born <= cutoff) | (born < earliest))
        bad |= has_birth & has_entry & (entry < born)
        bad |= has_entry & exit_.notna() & (exit_ < entry)
        return ~bad


class ExpectValuesAllPresent(MulticolumnMapExpectation):
    """No listed column is missing in any row."""

    map_metric = "datashare.values_all_present"
    success_keys = ("mostly",)
    args_keys = ("column_list",)


class ExpectValuesInSets(MulticolumnMapExpectation):
    """Each listed column is missing or in its own value set (``value_sets``)."""

    value_sets: list[list[Any]] = pydantic.Field(default_factory=list)
    map_metric = "datashare.values_in_sets"
    success_keys = ("mostly", "value_sets")
    args_keys = ("column_list",)


class ExpectValueLengthsAtMost(MulticolumnMapExpectation):
    """Each listed column is missing or at most its own length as text (``lengths``)."""

    lengths: list[int] = pydantic.Field(default_factory=list)
    map_metric = "datashare.value_lengths_at_most"
    success_keys = ("mostly", "lengths")
    args_keys = ("column_list",)


class ExpectDatesInOrder(MulticolumnMapExpectation):
    """The five date rules of birth, entry and exit date (``column_list`` in that order)."""

    latest_birth: Any = None
    over_age_cutoff: Any = None
    earliest_birth: Any = None
    map_metric = "datashare.dates_in_order"
    success_keys = ("mostly", "latest_birth", "over_age_cutoff", "earliest_birth")
    args_keys = ("column_list",)
