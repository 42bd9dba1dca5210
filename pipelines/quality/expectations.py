"""Row-wise Great Expectations for the output gate: each row checked against its own child.

The gate puts the row's own child's values beside the outgoing cells (helper columns that never
leave) and these multicolumn expectations compare them, row by row, in Great Expectations:

- :class:`ExpectRowValuesAbsent` (``column_list = [cell, value, value, ...]``): the cell, as
  :func:`~pipelines.quality.mentions.normalize` writes it, equals none of the row's values.
- :class:`ExpectRowValueMatches` (``column_list = [cell, own]``): the cell is empty or equals
  the row's own value.
- :class:`ExpectNoOtherChildMentioned` (``column_list = [statement, own keys]``, ``keys``): the
  statement mentions no key of ``keys`` (the batch's children's full names and ids that occur
  in the frame) other than the row's own (own keys joined by :data:`KEY_SEPARATOR`).

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

from pipelines.quality.mentions import KeyIndex, normalized
from schemas.filespec import neutralise_formula

KEY_SEPARATOR = "\x1f"
_DOMAIN = ("batch_id", "table", "column_list", "row_condition", "condition_parser", "ignore_row_if")


def _normalized(series: pd.Series) -> pd.Series:
    return pd.Series(normalized(series.to_numpy(dtype=object)), index=series.index, dtype=object)


class RowValuesAbsent(MulticolumnMapMetricProvider):
    """True where the first column's value is none of the other columns' values.

    Every cell is normalized once per distinct value, then each normalized text becomes an
    integer code: a hit is an integer equality in the row."""

    condition_metric_name = "datashare.row_values_absent"
    condition_domain_keys = _DOMAIN

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs: Any) -> pd.Series:
        texts = np.column_stack(
            [normalized(column_list[name].to_numpy(dtype=object)) for name in column_list]
        )
        codes, _ = pd.factorize(texts.ravel(), use_na_sentinel=True)  # text or None
        codes = codes.reshape(texts.shape)
        cell, others = codes[:, :1], codes[:, 1:]
        hit = ((cell == others) & (cell >= 0)).any(axis=1)
        return pd.Series(~hit, index=column_list.index)


class RowValueMatches(MulticolumnMapMetricProvider):
    """True where the first column is empty or equals the second, as written or as a file
    spec's formula guard writes it (a single quote in front: ``schemas.filespec``)."""

    condition_metric_name = "datashare.row_value_matches"
    condition_domain_keys = _DOMAIN

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs: Any) -> pd.Series:
        cell = _normalized(column_list.iloc[:, 0])
        raw = column_list.iloc[:, 1]
        own = _normalized(raw)
        quote = lambda v: neutralise_formula(v) if isinstance(v, str) else v  # noqa: E731
        guarded = _normalized(raw.map(quote, na_action="ignore"))
        return cell.isna() | (own.notna() & ((cell == own) | (cell == guarded)))


class NoOtherChildMentioned(MulticolumnMapMetricProvider):
    """True where the statement mentions no key but the row's own."""

    condition_metric_name = "datashare.no_other_child_mentioned"
    condition_domain_keys = _DOMAIN
    condition_value_keys = ("keys",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs: Any) -> pd.Series:
        index = KeyIndex.of(kwargs.get("keys") or ())
        statements = column_list.iloc[:, 0].tolist()
        owns = column_list.iloc[:, 1].tolist()
        ok = []
        for text, own in zip(statements, owns, strict=True):
            found = index.find(text)
            if found and isinstance(own, str):
                found -= set(own.split(KEY_SEPARATOR))
            ok.append(not found)
        return pd.Series(ok, index=column_list.index)


class ExpectRowValuesAbsent(MulticolumnMapExpectation):
    """Each row's first column equals none of the row's other columns (case folded)."""

    map_metric = "datashare.row_values_absent"
    success_keys = ("mostly",)
    args_keys = ("column_list",)


class ExpectRowValueMatches(MulticolumnMapExpectation):
    """Each row's first column is empty or equals its second column (case folded)."""

    map_metric = "datashare.row_value_matches"
    success_keys = ("mostly",)
    args_keys = ("column_list",)


class ExpectNoOtherChildMentioned(MulticolumnMapExpectation):
    """Each row's statement mentions no key of ``keys`` except the row's own."""

    keys: list[str] = pydantic.Field(default_factory=list)
    map_metric = "datashare.no_other_child_mentioned"
    success_keys = ("mostly", "keys")
    args_keys = ("column_list",)
