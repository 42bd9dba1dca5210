"""Stream a CSV export row by row, with the physical line each row starts on.

The file is decoded with ``surrogateescape`` so a stray byte spoils one row (the row parser
quarantines it under the ``encoding`` rule) rather than the whole import.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from pipelines.imports.errors import SourceError
from pipelines.imports.mapping import Mapping

FIELD_SIZE_LIMIT = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One record of the export: the physical line it starts on and its fields."""

    line: int
    values: list[str]


class ExportReader:
    """Open an export, find and check its header, then iterate over its data rows.

    Use as a context manager; :class:`SourceError` when the file cannot be read, ends before
    the header, or lacks a column the mapping reads.
    """

    def __init__(self, path: Path, mapping: Mapping) -> None:
        self.path = path
        self.mapping = mapping
        self.header: list[str] = []
        self._file: IO[str] | None = None
        self._reader: Iterator[list[str]] | None = None
        self._last_line = 0

    def __enter__(self) -> ExportReader:
        if csv.field_size_limit() < FIELD_SIZE_LIMIT:
            csv.field_size_limit(FIELD_SIZE_LIMIT)
        try:
            self._file = self.path.open(
                encoding=self.mapping.encoding, errors="surrogateescape", newline=""
            )
        except OSError as error:
            raise SourceError(f"{self.path}: cannot read the file: {error.strerror}") from None
        self._reader = csv.reader(self._file, delimiter=self.mapping.delimiter)
        try:
            self.header = self._read_header()
        except BaseException:
            self._file.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()

    def _next(self) -> SourceRow | None:
        assert self._reader is not None
        try:
            values = next(self._reader)
        except StopIteration:
            return None
        except csv.Error as error:
            line = self._last_line + 1
            raise SourceError(f"{self.path.name}:{line}: not valid CSV: {error}") from None
        except OSError as error:
            raise SourceError(f"{self.path}: cannot read the file: {error}") from None
        start = self._last_line + 1
        self._last_line = self._reader.line_num  # type: ignore[attr-defined]
        return SourceRow(start, values)

    def _read_header(self) -> list[str]:
        wanted = self.mapping.header_line
        while (row := self._next()) is not None:
            if row.line == wanted:
                return self._check_header([name.strip() for name in row.values])
            if row.line > wanted:
                break
        raise SourceError(
            f"{self.path.name}: no header on line {wanted} (mapping {self.mapping.name!r})"
        )

    def _check_header(self, header: list[str]) -> list[str]:
        if any("\udc80" <= ch <= "\udcff" for name in header for ch in name):
            raise SourceError(
                f"{self.path.name}:{self.mapping.header_line}: the header is not valid "
                f"{self.mapping.encoding} (mapping {self.mapping.name!r})"
            )
        missing = sorted(self.mapping.columns() - set(header))
        if missing:
            raise SourceError(
                f"{self.path.name}:{self.mapping.header_line}: the header lacks "
                f"{len(missing)} column(s) the mapping {self.mapping.name!r} reads: "
                + ", ".join(repr(name) for name in missing)
            )
        doubled = sorted(n for n in self.mapping.columns() if header.count(n) > 1)
        if doubled:
            raise SourceError(
                f"{self.path.name}:{self.mapping.header_line}: the header has these mapped "
                "columns more than once: " + ", ".join(repr(name) for name in doubled)
            )
        return header

    def rows(self) -> Iterator[SourceRow]:
        """The data rows after the header; blank lines are skipped."""
        while (row := self._next()) is not None:
            if any(value.strip() for value in row.values):
                yield row
