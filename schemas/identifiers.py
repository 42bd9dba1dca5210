"""Codes that become names of files and folders: program codes and destination names.

A program code or a destination name ends up as a path component (staging, reports, dry-run
and output folders, run logs), so each is held to a pattern wherever it enters: the pydantic
models that read it, the command line, and the database itself. A code starts with a letter
or digit (so never ``.`` or ``..``) and holds only letters, digits, ``.``, ``_`` and ``-`` (so
never a ``/`` or ``\\``).

In the database the rule is a ``CHECK`` constraint on PostgreSQL (a regular expression) and a
pair of triggers on SQLite (``GLOB``): SQLite cannot add a constraint to a table that others
reference without rebuilding it, so the triggers serve both a new and a migrated database.
"""

from __future__ import annotations

import re

from sqlalchemy import DDL, CheckConstraint, Table, event

__all__ = [
    "DESTINATION_NAME",
    "DESTINATION_RULE",
    "PROGRAM_CODE",
    "PROGRAM_CODE_RULE",
    "CodeRule",
    "is_destination_name",
    "is_program_code",
]

PROGRAM_CODE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"
"""A program code: up to 40 letters, digits, ``.``, ``_``, ``-``; a letter or digit first."""

DESTINATION_NAME = r"^[a-z0-9][a-z0-9_-]{0,79}$"
"""A destination name (its file stem): lower-case letters, digits, ``_``, ``-``."""


class CodeRule:
    """One column's pattern, as SQL for PostgreSQL and SQLite (first character, the rest)."""

    def __init__(self, name: str, table: str, column: str, first: str, rest: str) -> None:
        self.name = name
        self.table = table
        self.column = column
        self.first = first
        self.rest = rest

    @property
    def postgresql(self) -> str:
        """The CHECK expression on PostgreSQL."""
        return f"{self.column} ~ '^[{self.first}][{self.rest}]*$'"

    def sqlite(self, row: str = "") -> str:
        """True for a good value on SQLite (GLOB: a character class, then no other);
        ``row`` qualifies the column (``NEW.`` in a trigger)."""
        column = f"{row}{self.column}"
        return f"{column} GLOB '[{self.first}]*' AND {column} NOT GLOB '*[^{self.rest}]*'"

    @property
    def constraint_name(self) -> str:
        """The constraint's (and triggers') full name."""
        return f"ck_{self.table}_{self.name}"

    def sqlite_triggers(self) -> list[str]:
        """CREATE TRIGGER statements refusing a bad value on insert and on update."""
        message = f"{self.table}.{self.column} breaks its pattern ({self.constraint_name})"
        return [
            f"CREATE TRIGGER IF NOT EXISTS {self.constraint_name}_{when} "
            f"BEFORE {when.upper()} ON {self.table} FOR EACH ROW "
            f"WHEN NOT ({self.sqlite('NEW.')}) "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            for when in ("insert", "update")
        ]

    def sqlite_drops(self) -> list[str]:
        """DROP TRIGGER statements undoing :meth:`sqlite_triggers`."""
        return [
            f"DROP TRIGGER IF EXISTS {self.constraint_name}_{when}" for when in ("insert", "update")
        ]

    def attach(self, table: Table) -> None:
        """Give a model's table the rule: a CHECK on PostgreSQL, triggers made with the table
        on SQLite."""
        check = CheckConstraint(self.postgresql, name=self.name).ddl_if(dialect="postgresql")
        table.append_constraint(check)
        for statement in self.sqlite_triggers():
            event.listen(table, "after_create", DDL(statement).execute_if(dialect="sqlite"))


PROGRAM_CODE_RULE = CodeRule("code_pattern", "programs", "code", "A-Za-z0-9", "A-Za-z0-9._-")
DESTINATION_RULE = CodeRule("destination_pattern", "runs", "destination", "a-z0-9", "a-z0-9_-")

_PROGRAM = re.compile(PROGRAM_CODE)
_DESTINATION = re.compile(DESTINATION_NAME)


def is_program_code(value: object) -> bool:
    """Whether ``value`` is a well-formed program code."""
    return isinstance(value, str) and _PROGRAM.fullmatch(value) is not None


def is_destination_name(value: object) -> bool:
    """Whether ``value`` is a well-formed destination name."""
    return isinstance(value, str) and _DESTINATION.fullmatch(value) is not None
