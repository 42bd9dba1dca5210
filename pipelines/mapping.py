"""Shape permitted rows into a state file spec's layout (and back into typed staging rows).

:func:`render` takes the frame the agreement permitted (``FieldPlan.apply`` output, possibly
with bookkeeping columns such as ``program_code`` / ``child_local_id`` that only name children)
and the plan's columns, and writes every spec column as text exactly as the state wants it:

- a spec column whose source the plan does not permit is left **empty** when optional; when
  required, no row can be produced and every child is returned as unrenderable with reason
  ``REQUIRED_FIELD_NOT_PERMITTED`` and the field. Never a placeholder value.
- a row missing a required value, or with a value longer than ``max_length``, is unrenderable
  with its reason; the other rows go on.
- a text value a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, carriage
  return first) is written with a single quote in front unless the spec's ``formula_guard`` is
  ``none`` (before the length check: a value the quote makes too long is unrenderable).
- a date the agreement cuts to the month (``YYYY-MM``) is written with the column's date
  pattern without the day (``%m/%d/%Y`` -> ``03/2022``); no day is made up.
- a code outside the column's code mapping, or a value of the wrong type, is a
  :class:`RenderError` naming spec, column and rule, never the value (fail closed).

:func:`typed_rows` turns a rendered frame back into typed values for a staging database, and
:func:`staging_table` builds that database's table for a spec. A date column there is SQL
``DATE``: a cell holding a month (rule ``month_in_date_column``) is refused, never stored as
a made-up day.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeEngine

from pipelines.destinations.base import Artifact, ChildKey
from schemas.filespec import (
    ColumnSpec,
    ColumnType,
    FileSpec,
    FormulaGuard,
    looks_like_formula,
    neutralise_formula,
)

CHILD_KEY_COLUMNS = ("program_code", "child_local_id")
UNRENDERABLE_COLUMNS = ["program_code", "child_local_id", "reason", "field", "column"]


class RenderReason(StrEnum):
    """Why a child's row could not be written in a spec's layout."""

    REQUIRED_FIELD_NOT_PERMITTED = "REQUIRED_FIELD_NOT_PERMITTED"
    REQUIRED_VALUE_MISSING = "REQUIRED_VALUE_MISSING"
    VALUE_TOO_LONG = "VALUE_TOO_LONG"


class RenderError(ValueError):
    """The permitted frame does not fit the spec (names spec, column and rule, not values)."""


@dataclass(frozen=True)
class RenderResult:
    """A spec's frame (text cells, ``None`` for empty), the child of each row, and the
    children whose rows could not be produced (``program_code, child_local_id, reason,
    field, column``)."""

    spec: FileSpec
    frame: pd.DataFrame
    child_keys: tuple[ChildKey, ...]
    unrenderable: pd.DataFrame

    def artifact(self) -> Artifact:
        """The frame as a destination artifact named by the spec's file name."""
        return Artifact(
            name=self.spec.file_name,
            frame=self.frame,
            key_columns=self.spec.key,
            child_keys=self.child_keys,
        )


def render(
    spec: FileSpec,
    permitted: pd.DataFrame,
    plan_columns: Iterable[str],
    *,
    child_keys: Sequence[ChildKey] | None = None,
) -> RenderResult:
    """Write ``permitted`` in ``spec``'s layout; only sources in ``plan_columns`` are used.

    ``child_keys`` names the child of each row (in order); by default it is read from the
    frame's ``program_code`` and ``child_local_id`` columns. Aggregate specs have none.
    """
    allowed = frozenset(plan_columns)
    keys = _child_keys(spec, permitted, child_keys)
    n = len(permitted)
    not_permitted = [c for c in spec.columns if c.required and c.source not in allowed]
    if not_permitted:
        problems = [
            (i, RenderReason.REQUIRED_FIELD_NOT_PERMITTED, c)
            for c in not_permitted
            for i in range(n)
        ]
        empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in spec.column_names})
        return RenderResult(spec, empty, (), _unrenderable(problems, keys))
    cells: dict[str, list[str | None]] = {}
    problems = []
    for column in spec.columns:
        if column.source not in allowed:
            cells[column.name] = [None] * n
            continue
        if column.source not in permitted.columns:
            raise RenderError(
                f"{spec.name}: column {column.name}: source {column.source} is permitted but "
                "missing from the frame (rule source)"
            )
        codes, distinct = _distinct(permitted[column.source])
        texts = _render_column(spec, column, distinct)
        if column.type is ColumnType.STRING and spec.formula_guard is FormulaGuard.QUOTE:
            texts = [
                v if v is None or not looks_like_formula(v) else neutralise_formula(v)
                for v in texts
            ]  # the guard called only where it changes the text
        table = np.array([*texts, None], dtype=object)  # code -1 (missing) picks None
        empty = np.array([t is None for t in table], dtype=bool)[codes]
        limit = column.max_length
        long = (
            np.array([t is not None and len(t) > limit for t in table], dtype=bool)[codes]
            if limit
            else np.zeros(n, bool)
        )
        missing = empty if column.required and not column.suppressible else np.zeros(n, bool)
        for i in np.flatnonzero(missing | long).tolist():
            reason = (
                RenderReason.REQUIRED_VALUE_MISSING if missing[i] else RenderReason.VALUE_TOO_LONG
            )
            problems.append((i, reason, column))
        if column.suppressible:
            table = np.array(
                [spec.suppressed_marker if t is None else t for t in table], dtype=object
            )
        cells[column.name] = table[codes]
    bad = sorted({i for i, _, _ in problems})
    keep = np.ones(n, dtype=bool)
    keep[bad] = False
    frame = pd.DataFrame(
        {name: pd.Series(values, dtype=object) for name, values in cells.items()},
        columns=list(spec.column_names),
    )
    if bad:  # one row filter for every column
        frame = frame.loc[keep].reset_index(drop=True)
    kept_keys = tuple(k for k, ok in zip(keys, keep, strict=False) if ok) if keys else ()
    return RenderResult(spec, frame, kept_keys, _unrenderable(problems, keys))


def _child_keys(
    spec: FileSpec, frame: pd.DataFrame, given: Sequence[ChildKey] | None
) -> tuple[ChildKey, ...]:
    if spec.level == "aggregate":
        return ()
    if given is not None:
        if len(given) != len(frame):
            raise RenderError(f"{spec.name}: {len(given)} child keys for {len(frame)} rows")
        return tuple((str(p), str(c)) for p, c in given)
    missing = [c for c in CHILD_KEY_COLUMNS if c not in frame.columns]
    if missing:
        raise RenderError(
            f"{spec.name}: record-level rows need child keys; pass child_keys or the columns "
            f"{', '.join(missing)} (rule child_keys)"
        )
    if frame[list(CHILD_KEY_COLUMNS)].map(_missing).to_numpy().any():
        raise RenderError(f"{spec.name}: a row has no program code or child id (rule child_keys)")
    return tuple(
        (str(p), str(c))
        for p, c in zip(frame["program_code"], frame["child_local_id"], strict=True)
    )


def _unrenderable(
    problems: list[tuple[int, RenderReason, ColumnSpec]], keys: tuple[ChildKey, ...]
) -> pd.DataFrame:
    rows = [
        (*(keys[i] if keys else ("", "")), str(reason), column.source, column.name)
        for i, reason, column in problems
    ]
    return pd.DataFrame(rows, columns=UNRENDERABLE_COLUMNS, dtype=object)


def _missing(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return bool(pd.api.types.is_scalar(value) and pd.isna(value))


_SAME_KIND = frozenset({"string", "empty", "date", "datetime"})


def _distinct(series: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Each row's position among the column's distinct values (-1 when missing), and those
    values: a column is written once per distinct value. Only a column of one kind is
    hashed together (so ``True`` and ``1``, written differently, are never merged); a mixed
    one keeps every non-missing row as its own value."""
    if series.dtype != object or pd.api.types.infer_dtype(series, skipna=True) in _SAME_KIND:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        return np.asarray(codes), _listed(uniques)
    values = series.tolist()
    codes = np.full(len(values), -1, dtype=np.intp)
    kept: list[Any] = []
    for i, value in enumerate(values):
        if not (pd.api.types.is_scalar(value) and pd.isna(value)):
            codes[i] = len(kept)
            kept.append(value)
    return codes, kept


def _listed(uniques: Any) -> list[Any]:
    """The distinct values as a list of Python values: a text column's in one conversion
    (iterating an Arrow-backed column builds each value on its own, many times slower)."""
    if isinstance(uniques.dtype, pd.StringDtype):
        return list(uniques.to_numpy(dtype=object).tolist())
    return list(uniques)


def _render_column(spec: FileSpec, column: ColumnSpec, values: list[Any]) -> list[str | None]:
    if column.type is ColumnType.STRING and all(type(v) is str for v in values):
        return [v if v.strip() else None for v in values]  # text as it is; blank is missing
    write = _WRITERS[column.type]
    out: list[str | None] = []
    for value in values:
        if _missing(value):
            out.append(None)
            continue
        text = write(column, value)
        if text is None:
            raise RenderError(
                f"{spec.name}: column {column.name} (source {column.source}): "
                f"{_RULE_TEXT[column.type]} (rule {_RULE[column.type]})"
            )
        out.append(text)
    return out


def _write_string(column: ColumnSpec, value: Any) -> str | None:
    if isinstance(value, bool | np.bool_ | dt.date | float | np.floating):
        return None
    return str(value)


MONTH_CUT = re.compile(r"(\d{4})-(\d{2})")
"""A date cut to the month by the ``month`` transform (``YYYY-MM``)."""


def _write_date(column: ColumnSpec, value: Any) -> str | None:
    if isinstance(value, str):
        if (month := MONTH_CUT.fullmatch(value)) is not None:
            try:  # written with the spec's pattern without the day: no made-up day
                first = dt.date(int(month.group(1)), int(month.group(2)), 1)
            except ValueError:
                return None
            return first.strftime(column.month_format)
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, dt.date):  # datetime and pandas Timestamp are dates too
        return value.strftime(column.date_format)
    return None


def _write_integer(column: ColumnSpec, value: Any) -> str | None:
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return None


def _write_boolean(column: ColumnSpec, value: Any) -> str | None:
    if isinstance(value, bool | np.bool_):
        true, false = column.boolean_tokens
        return true if value else false
    return None


def _write_code(column: ColumnSpec, value: Any) -> str | None:
    codes = column.codes or {}
    return codes.get(str(value)) if isinstance(value, str) else None


_WRITERS: dict[ColumnType, Callable[[ColumnSpec, Any], str | None]] = {
    ColumnType.STRING: _write_string,
    ColumnType.DATE: _write_date,
    ColumnType.INTEGER: _write_integer,
    ColumnType.BOOLEAN: _write_boolean,
    ColumnType.CODE: _write_code,
}
_RULE = {kind: kind.value for kind in ColumnType} | {ColumnType.CODE: "codes"}
_RULE_TEXT = {
    ColumnType.STRING: "value is not text",
    ColumnType.DATE: "value is not a date",
    ColumnType.INTEGER: "value is not a whole number",
    ColumnType.BOOLEAN: "value is not a yes/no flag",
    ColumnType.CODE: "value is outside the column's code mapping",
}


def typed_rows(spec: FileSpec, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rendered ``frame`` as typed rows for :func:`staging_table` (dates, ints, bools;
    empty cells and suppressed markers as ``None``)."""
    missing = [c for c in spec.column_names if c not in frame.columns]
    if missing:
        raise RenderError(f"{spec.name}: frame lacks spec column(s) {', '.join(missing)}")
    parsers = [(c.name, _reader(spec, c)) for c in spec.columns]
    records = frame[list(spec.column_names)].to_dict("records")
    return [{name: read(record[name]) for name, read in parsers} for record in records]


def _reader(spec: FileSpec, column: ColumnSpec) -> Callable[[Any], Any]:
    dates: dict[str, dt.date] = {}  # a column holds few distinct dates: each is read once

    def read(value: Any) -> Any:
        if _missing(value) or (column.suppressible and value == spec.suppressed_marker):
            return None
        text = str(value)
        try:
            if column.type is ColumnType.DATE:
                if text not in dates:
                    dates[text] = _read_date(spec, column, text)
                return dates[text]
            if column.type is ColumnType.INTEGER:
                return int(text)
            if column.type is ColumnType.BOOLEAN:
                true, false = column.boolean_tokens
                if text not in (true, false):
                    raise ValueError(column.name)
                return text == true
        except RenderError:
            raise
        except ValueError:
            raise RenderError(
                f"{spec.name}: column {column.name}: cell does not read as "
                f"{column.type.value} (rule {column.type.value})"
            ) from None
        return text

    return read


MONTH_IN_DATE_COLUMN = "month_in_date_column"
"""The rule that keeps a month out of a SQL ``DATE`` column (it would need a made-up day)."""


def _read_date(spec: FileSpec, column: ColumnSpec, text: str) -> dt.date:
    """A full date exactly as the column writes it. A date cut to the month (the column's
    pattern without its day), or any cell of a column whose pattern has no day, is refused:
    a SQL date holds a day, which the agreement did not send. Reading back must give the very
    text (``%Y%m%d`` reads ``202111`` as 2021-01-01 otherwise)."""
    month = column.month_format
    if month != column.date_format:
        try:
            value = dt.datetime.strptime(text, column.date_format).date()
        except ValueError:
            value = None
        if value is not None and value.strftime(column.date_format) == text:
            return value
        if not _reads_as(text, month):
            raise ValueError(column.name)
    raise RenderError(
        f"{spec.name}: column {column.name}: holds a date cut to the month, which a date "
        f"column cannot hold without making up a day (rule {MONTH_IN_DATE_COLUMN})"
    )


def _reads_as(text: str, pattern: str) -> bool:
    try:
        dt.datetime.strptime(text, pattern)
    except ValueError:
        return False
    return True


def _sql_type(column: ColumnSpec) -> TypeEngine[Any]:
    if column.type is ColumnType.DATE:
        return Date()
    if column.type is ColumnType.INTEGER:
        return Integer()
    if column.type is ColumnType.BOOLEAN:
        return Boolean()
    return String(column.max_length) if column.max_length else Text()


def staging_table(spec: FileSpec, metadata: MetaData) -> Table:
    """The staging-database table of ``spec``: one column per spec column, typed from it,
    primary key on the spec's key columns (the key upserts match on)."""
    if spec.table_name in metadata.tables:
        return metadata.tables[spec.table_name]
    columns = [
        Column(
            c.name,
            _sql_type(c),
            nullable=not (c.required and not c.suppressible) and c.name not in spec.key,
        )
        for c in spec.columns
    ]
    return Table(
        spec.table_name,
        metadata,
        *columns,
        PrimaryKeyConstraint(*spec.key, name=f"pk_{spec.table_name}"),
        comment=spec.description or None,
    )
