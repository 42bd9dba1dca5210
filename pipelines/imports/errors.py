"""Errors of the import package, and the rules a row can break.

Exception tree (one root, translated at the CLI boundary)::

    ImportsError            anything that stops an import as a whole
    ├── MappingError        the mapping file is missing or invalid (names file, line, key)
    ├── SourceError         the export cannot be read (unreadable, no header, columns missing)
    └── StoreError          the database refused a batch (earlier batches stay committed)

A row that breaks a rule is not an exception: it becomes a :class:`RowError` and the row is
quarantined. A warning (rule ``formula_prefix``) is a :class:`RowError` too, but its row
loads. Neither kind of message ever carries a value from the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ImportsError(Exception):
    """Root of the import errors: the whole file failed, nothing more was loaded."""


class MappingError(ImportsError):
    """A mapping file is missing or breaks the mapping model.

    ``problems`` holds one ``(line, key, message)`` per problem; ``line`` is the line of the
    mapping file (``None`` when unknown) and ``key`` the dotted path of the offending key.
    """

    def __init__(self, path: str, problems: list[tuple[int | None, str, str]]) -> None:
        self.path = path
        self.problems = problems
        lines = [
            f"{path}:{line}: {key}: {message}" if line else f"{path}: {key}: {message}"
            for line, key, message in problems
        ]
        super().__init__("invalid mapping\n" + "\n".join(lines))


class SourceError(ImportsError):
    """The export file cannot be imported at all (unreadable, no header, columns missing)."""


class StoreError(ImportsError):
    """The database refused a batch; the message names the lines, never the values."""


class Rule(StrEnum):
    """The rules a row can break; each names why a row was quarantined."""

    FIELD_COUNT = "field_count"
    ENCODING = "encoding"
    REQUIRED = "required"
    MAX_LENGTH = "max_length"
    PATTERN = "pattern"
    CONTROL_CHARACTER = "control_character"
    INVALID_DATE = "invalid_date"
    FUTURE_DATE = "future_date"
    BIRTH_AFTER_ENTRY = "birth_after_entry"
    EXIT_BEFORE_ENTRY = "exit_before_entry"
    UNKNOWN_CODE = "unknown_code"
    CONFLICTING_CODES = "conflicting_codes"
    INVALID_FLAG = "invalid_flag"
    DUPLICATE_IN_FILE = "duplicate_in_file"
    FORMULA_PREFIX = "formula_prefix"  # a warning: the row loads, CSV output quotes the value


class RuleViolation(Exception):
    """Raised by a parser: ``rule`` broken, ``detail`` says how, without the value."""

    def __init__(self, rule: Rule, detail: str) -> None:
        self.rule = rule
        self.detail = detail
        super().__init__(f"{rule}: {detail}")


@dataclass(frozen=True, slots=True)
class RowError:
    """One broken rule in one row: where (file, physical line, field, source column) and why.

    ``field`` is the canonical field (``child.birth_date``), ``column`` the export's column(s).
    """

    source: str
    line: int
    field: str | None
    column: str | None
    rule: Rule
    detail: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}"
        if self.field:
            where += f": {self.field}" + (f" ({self.column})" if self.column else "")
        return f"{where}: {self.rule}: {self.detail}"
