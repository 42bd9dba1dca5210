"""An artifact's CSV text, byte for byte what ``frame.to_csv(index=False, lineterminator="\\n")``
writes, several times faster for the frames a submission sends: every column text (pandas'
string dtype, or objects that are each a ``str`` or missing) under a text header. Such a
frame's cells need no formatting, only the empty text for a missing value, so they go
straight to the same ``csv`` writer pandas uses (the same dialect: ``,``, ``"`` doubled,
minimal quoting). Any other frame (numbers, dates, a non-text label) is rendered by pandas.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def _texts(series: pd.Series) -> list[str] | None:
    """The column's cells as CSV text (``""`` where missing); None when one is not text."""
    import pandas as pd

    if isinstance(series.dtype, pd.StringDtype):
        if series.dtype.storage == "pyarrow":  # its Arrow array's values, None where missing
            import pyarrow as pa

            values = pa.array(series.array).to_pylist()
            return ["" if v is None else v for v in values]
        return series.to_numpy(dtype=object, na_value="").tolist()
    if series.dtype != object:
        return None
    missing = series.isna().to_numpy().tolist()
    values = series.to_numpy().tolist()
    if not all(m or type(v) is str for v, m in zip(values, missing, strict=True)):
        return None
    return ["" if m else v for v, m in zip(values, missing, strict=True)]


def _fast(frame: pd.DataFrame) -> str | None:
    labels = list(frame.columns)
    if not labels or not all(type(label) is str for label in labels):
        return None
    columns = []
    for _, series in frame.items():  # column by column, duplicate labels included
        texts = _texts(series)
        if texts is None:
            return None
        columns.append(texts)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")  # pandas' dialect: QUOTE_MINIMAL, '"'
    writer.writerow(labels)
    writer.writerows(zip(*columns, strict=True))
    return buffer.getvalue()


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` as CSV (UTF-8, header, ``\\n`` line ends), as pandas writes it."""
    text = _fast(frame)
    if text is None:
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False, lineterminator="\n")
        text = buffer.getvalue()
    return text.encode("utf-8")
