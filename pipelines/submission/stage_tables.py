"""Program frames of a shard as Arrow tables, converted from pandas once per file name.

Staging serializes each program's frames to parquet. Converting each small frame on its own
(``DataFrame.to_parquet``) costs a fixed price per column and frame that dominates a shard of
many programs; here every program's frames of one file are converted together and each
program's table is a slice of the result. A slice is typed and described exactly as its frame
converted alone would be (a column with no value in it is Arrow ``null``, pandas type
``empty``), so it reads back as the same frame.

Only text frames take this path (every column holding text or nothing, as rendered state
files do); any other frame is left for ``to_parquet``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd
import pyarrow as pa

PANDAS_KEY = b"pandas"


def as_tables(frames: Sequence[pd.DataFrame]) -> list[pa.Table] | None:
    """Each of ``frames`` (one file's frames of several programs, the same columns) as the
    Arrow table ``pa.Table.from_pandas(frame, preserve_index=False)`` would make; ``None``
    when they are not all text frames of the same columns."""
    if not frames:
        return []
    columns = list(frames[0].columns)
    for frame in frames:
        texts = all(pd.api.types.is_object_dtype(kind) for kind in frame.dtypes.tolist())
        if list(frame.columns) != columns or not texts or frame.attrs:
            return None
    if not columns or len(set(columns)) != len(columns):
        return None
    whole = pd.concat(frames, ignore_index=True)
    try:  # on this thread: a thread pool per conversion costs more than it saves here
        table = pa.Table.from_pandas(whole, preserve_index=False, nthreads=1)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if not all(pa.types.is_string(t) or pa.types.is_null(t) for t in table.schema.types):
        return None
    if not _nulls_are_none(whole, table):
        return None  # NaN or NA converts by other rules than None
    described = json.loads(table.schema.metadata[PANDAS_KEY])
    schemas: dict[tuple[bool, ...], pa.Schema] = {}  # programs mostly share one
    out = []
    start = 0
    for frame in frames:
        part = table.slice(start, len(frame))
        start += len(frame)
        empty = tuple(column.null_count == len(column) for column in part.columns)
        if empty not in schemas:
            schemas[empty] = _alone_schema(part.schema.names, empty, described)
        arrays = [
            pa.nulls(len(column)) if none else column  # a text column is string already
            for column, none in zip(part.columns, empty, strict=True)
        ]
        out.append(pa.table(arrays, schema=schemas[empty]))
    return out


def _nulls_are_none(whole: pd.DataFrame, table: pa.Table) -> bool:
    """Whether every cell of ``whole`` that ``table`` (its conversion) holds as null is
    ``None``: only the null cells are looked at, not every cell."""
    for values, column in zip(whole.to_numpy(dtype=object).T, table.columns, strict=True):
        if column.null_count:
            nulls = values[column.is_null().to_numpy()].tolist()
            if nulls.count(None) != len(nulls):
                return False
    return True


def _alone_schema(
    names: list[str], empty: tuple[bool, ...], described: dict[str, object]
) -> pa.Schema:
    """The schema of a part whose columns with no value are ``empty``, as its rows converted
    alone have it: such a column is ``null`` (pandas type ``empty``), any other text column
    ``string`` (``unicode``)."""
    fields = [
        pa.field(name, pa.null() if none else pa.string())
        for name, none in zip(names, empty, strict=True)
    ]
    columns = [
        {**entry, "pandas_type": "empty" if none else "unicode"}
        for entry, none in zip(described["columns"], empty, strict=True)  # type: ignore[call-overload]
    ]
    metadata = {PANDAS_KEY: json.dumps({**described, "columns": columns}).encode()}
    return pa.schema(fields, metadata=metadata)
