"""Row-wise Great Expectations for the output gate: each row checked against its own child.

The gate puts the row's own child's values beside the outgoing cells (helper columns that never
leave) and these multicolumn expectations compare them, row by row, in Great Expectations:

- :class:`ExpectRowValuesAbsentAll` (``column_list`` and ``groups``: a cell and its row's
  values): each cell, as :func:`~pipelines.quality.mentions.normalize` writes it, equals none of
  its row's values; :class:`ExpectRowValuesMatchAll`: each cell is empty or its row's own
  value (``groups``: ``[cell, [own, *also]]``; a cell equal to one of ``also``, the values
  the former reports, is left to it); with ``dates`` (``[cell, full, month, serial]``: a
  column's ``strftime`` patterns, ``""`` for none, and whether Excel's day number is a date
  there) a cell that holds a full date, whoever's and in any common form
  (:func:`~pipelines.quality.mentions.carries_full_date`), is a hit of the former and left to
  it by the latter (the cell is reported once, as a full date).
- Both read the columns of ``normalized`` (positions: the gate's helper columns of forms,
  months and exact texts, normalized when it made them) as they are, and normalize the others
  once each.
- :class:`ExpectColumnValuesHoldNoFullDate` (``column``, ``full``, ``month``, ``serial``): the
  same date check for one column alone (a multicolumn expectation needs two columns).
- :class:`ExpectNoOtherChildMentioned` (``column_list = [statement, own keys]``, ``keys``): the
  statement mentions no key of ``keys`` (the batch's children's full names and ids that occur
  in the frame) other than the row's own (own keys joined by :data:`KEY_SEPARATOR`).

Importing this module registers the expectations with Great Expectations.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from great_expectations.compatibility import pydantic
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import (
    ColumnMapExpectation,
    MulticolumnMapExpectation,
)
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    MulticolumnMapMetricProvider,
)
from great_expectations.expectations.metrics.map_metric_provider.column_condition_partial import (
    column_condition_partial,
)
from great_expectations.expectations.metrics.map_metric_provider.multicolumn_condition_partial import (  # noqa: E501
    multicolumn_condition_partial,
)

from pipelines.quality.mentions import (
    KeyIndex,
    arrow_strings,
    full_date_flags,
    mapped,
    normalize,
    normalized,
)
from schemas.filespec import looks_like_formula, neutralise_formula

KEY_SEPARATOR = "\x1f"
_DOMAIN = ("batch_id", "table", "column_list", "row_condition", "condition_parser", "ignore_row_if")


def _guarded(value: Any) -> str | None:
    """The normalized text a file spec's formula guard writes for ``value`` (a quote in
    front), ``None`` when the guard leaves it as it is."""
    if isinstance(value, str) and looks_like_formula(value):
        return normalize(neutralise_formula(value))
    return None


def _matches(cell: np.ndarray, own: np.ndarray, raw: pd.Series) -> np.ndarray:
    """True where the cell is empty or equals the own value (``raw``, as written or
    formula-guarded). ``cell`` and ``own`` are normalized text (no text equals ``None``)."""
    guarded = mapped(raw, _guarded)
    present = pd.notna(cell)
    same = pd.notna(own) & ((cell == own) | (pd.notna(guarded) & (cell == guarded)))
    return np.asarray(~present | same, dtype=bool)


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


def _distinct_texts(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Each value's text (``astype(str)``) as a position among the distinct texts, -1 for a
    missing value (``isna``). An Arrow string column is its own text, encoded by Arrow;
    integers, strings and dates are told apart by value before they are written (no two such
    values share a text), and their missing values are the encoding's own (pandas codes as
    -1 exactly what ``isna`` finds, so no separate pass looks for them)."""
    import pyarrow.compute as pc

    arrow = arrow_strings(values)
    if arrow is not None:
        encoded = pc.dictionary_encode(arrow).combine_chunks()
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        return codes.astype(np.intp, copy=False), encoded.dictionary.to_pylist()
    if pd.api.types.is_integer_dtype(values.dtype) or pd.api.types.infer_dtype(
        values, skipna=True
    ) in ("string", "date"):  # distinct values have distinct texts: the texts of the distinct
        codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
        return codes, [str(value) for value in uniques]
    present = values.notna().to_numpy()
    codes = np.full(len(values), -1, dtype=np.intp)
    codes[present], uniques = pd.factorize(values[present].astype(str).to_numpy(dtype=object))
    return codes, list(uniques)


class ColumnsNotMatchingRegexes(MulticolumnMapMetricProvider):
    """True where no column's value (as text, missing skipped) matches that column's regex
    (``regexes``, one per column; ``re.search``, as GE's ``column_values.not_match_regex``).
    Each distinct text of a column is searched once."""

    condition_metric_name = "datashare.columns_not_matching_regexes"
    condition_domain_keys = _DOMAIN
    condition_value_keys = ("regexes",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs: Any) -> pd.Series:
        regexes = list(kwargs.get("regexes") or ())
        hit = np.zeros(len(column_list), dtype=bool)
        for at, regex in enumerate(regexes):
            codes, uniques = _distinct_texts(column_list.iloc[:, at])
            if not uniques:  # every value missing
                continue
            pattern = re.compile(regex)
            found = [pattern.search(text) is not None for text in uniques]
            hit |= np.array([*found, False], dtype=bool)[codes]  # -1 (missing) picks False
        return pd.Series(~hit, index=column_list.index)


def _groups(kwargs: dict[str, Any]) -> list[tuple[int, list[int]]]:
    return [(int(cell), [int(i) for i in others]) for cell, others in kwargs.get("groups") or ()]


Dates = tuple[str | None, str | None, bool]
"""A column's full and month ``strftime`` patterns (``None`` for none) and whether a whole
cell of Excel's day number is a full date there."""


def _dates(kwargs: dict[str, Any]) -> dict[int, Dates]:
    """Cell position -> its column's :data:`Dates` (``[cell, full, month, serial]``; a
    missing ``serial`` is false)."""
    out: dict[int, Dates] = {}
    for cell, full, month, *serial in kwargs.get("dates") or ():
        out[int(cell)] = (full or None, month or None, bool(serial and serial[0]))
    return out


def _full_dates(texts: np.ndarray, patterns: Dates) -> np.ndarray:
    return full_date_flags(texts, *patterns)


class _Texts:
    """Each column's normalized text (:func:`normalized`), made once (a full value's forms
    serve every column made of its field). A column of ``normalized`` (positions: the gate's
    helper columns of values it normalized when it made them) is read as it is: normalizing
    normalized text changes nothing, so it is not done twice."""

    def __init__(self, column_list: pd.DataFrame, kwargs: dict[str, Any]) -> None:
        self.columns = column_list
        self.ready = {int(at) for at in kwargs.get("normalized") or ()}
        self.texts: dict[int, np.ndarray] = {}

    def __call__(self, at: int) -> np.ndarray:
        if at not in self.texts:
            column = self.columns.iloc[:, at]
            ready = at in self.ready
            self.texts[at] = column.to_numpy(dtype=object) if ready else normalized(column)
        return self.texts[at]


class RowValuesAbsentAll(MulticolumnMapMetricProvider):
    """True where no cell equals any of its row's values: ``groups`` pairs a cell's position
    in ``column_list`` with the positions of the row's values it must equal none of. Every
    column is normalized once; texts are compared as they are (no text equals ``None``)."""

    condition_metric_name = "datashare.row_values_absent_all"
    condition_domain_keys = _DOMAIN
    condition_value_keys = ("groups", "dates", "normalized")

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs: Any) -> pd.Series:
        text = _Texts(column_list, kwargs)
        hit = np.zeros(len(column_list), dtype=bool)
        for cell, others in _groups(kwargs):
            if others:
                own = text(cell)
                present = pd.notna(own)
                if not present.any():
                    continue
                values = np.column_stack([text(at) for at in others])
                hit |= ((own[:, None] == values) & present[:, None]).any(axis=1)
        for cell, patterns in _dates(kwargs).items():
            hit |= _full_dates(text(cell), patterns)
        return pd.Series(~hit, index=column_list.index)


class RowValuesMatchAll(MulticolumnMapMetricProvider):
    """True where every cell is empty or its row's own value, as written or as a file spec's
    formula guard writes it (a single quote in front: ``schemas.filespec``): ``groups`` pairs a
    cell's position in ``column_list`` with the position of the row's own value, then of any
    values the cell is left to :class:`RowValuesAbsentAll` for."""

    condition_metric_name = "datashare.row_values_match_all"
    condition_domain_keys = _DOMAIN
    condition_value_keys = ("groups", "dates", "normalized")

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs: Any) -> pd.Series:
        text = _Texts(column_list, kwargs)
        ok = np.ones(len(column_list), dtype=bool)
        dates = _dates(kwargs)
        for cell, (own, *also) in _groups(kwargs):
            mine = text(cell)
            matched = _matches(mine, text(own), column_list.iloc[:, own])
            if also:  # a value the absent rule reports (the row's full value) is its to report
                values = np.column_stack([text(at) for at in also])
                matched |= ((mine[:, None] == values) & pd.notna(mine)[:, None]).any(axis=1)
            if cell in dates:  # a full date is the full-date rule's to report
                matched |= _full_dates(mine, dates[cell])
            ok &= matched
        return pd.Series(ok, index=column_list.index)


class ColumnValuesHoldNoFullDate(ColumnMapMetricProvider):
    """True where the value holds no full date (``full``, ``month``: the column's patterns,
    ``""`` for none)."""

    condition_metric_name = "datashare.column_values_hold_no_full_date"
    condition_value_keys = ("full", "month", "serial")

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:
        patterns = (
            kwargs.get("full") or None,
            kwargs.get("month") or None,
            bool(kwargs.get("serial")),
        )
        return pd.Series(~_full_dates(normalized(column), patterns), index=column.index)


class ValuesAllMissing(MulticolumnMapMetricProvider):
    """True where every column is missing."""

    condition_metric_name = "datashare.values_all_missing"
    condition_domain_keys = _DOMAIN

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs: Any) -> pd.Series:
        return column_list.isna().all(axis=1)


class ExpectColumnsNotMatchingRegexes(MulticolumnMapExpectation):
    """No column's value matches its own regex (``regexes``, aligned with ``column_list``)."""

    regexes: list[str] = pydantic.Field(default_factory=list)
    map_metric = "datashare.columns_not_matching_regexes"
    success_keys = ("mostly", "regexes")
    args_keys = ("column_list",)


class ExpectRowValuesAbsentAll(MulticolumnMapExpectation):
    """Each ``groups`` cell of a row equals none of its group's values (case folded); each
    ``dates`` cell holds no full date."""

    groups: list[list[Any]] = pydantic.Field(default_factory=list)
    dates: list[list[Any]] = pydantic.Field(default_factory=list)
    normalized: list[int] = pydantic.Field(default_factory=list)
    map_metric = "datashare.row_values_absent_all"
    success_keys = ("mostly", "groups", "dates", "normalized")
    args_keys = ("column_list",)


class ExpectRowValuesMatchAll(MulticolumnMapExpectation):
    """Each ``groups`` cell of a row is empty or the row's own value (case folded), or, for a
    ``dates`` cell, holds a full date (reported by :class:`ExpectRowValuesAbsentAll`)."""

    groups: list[list[Any]] = pydantic.Field(default_factory=list)
    dates: list[list[Any]] = pydantic.Field(default_factory=list)
    normalized: list[int] = pydantic.Field(default_factory=list)
    map_metric = "datashare.row_values_match_all"
    success_keys = ("mostly", "groups", "dates", "normalized")
    args_keys = ("column_list",)


class ExpectColumnValuesHoldNoFullDate(ColumnMapExpectation):
    """No value of the column holds a full date (other than a reading of ``month``; with
    ``serial``, a whole value of Excel's day number is one)."""

    full: str = ""
    month: str = ""
    serial: bool = False
    map_metric = "datashare.column_values_hold_no_full_date"
    success_keys = ("mostly", "full", "month", "serial")
    args_keys = ("column",)


class ExpectValuesAllMissing(MulticolumnMapExpectation):
    """Every listed column is empty in every row."""

    map_metric = "datashare.values_all_missing"
    success_keys = ("mostly",)
    args_keys = ("column_list",)


class ExpectNoOtherChildMentioned(MulticolumnMapExpectation):
    """Each row's statement mentions no key of ``keys`` except the row's own."""

    keys: list[str] = pydantic.Field(default_factory=list)
    map_metric = "datashare.no_other_child_mentioned"
    success_keys = ("mostly", "keys")
    args_keys = ("column_list",)
