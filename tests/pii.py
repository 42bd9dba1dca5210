"""A scan for personal data in everything a run leaves for a person or a log shipper to read:
the command's stdout and stderr, Airflow's and the pipeline's logs, reports and XCom values.

What counts as identifying is listed here per column of the program's record tables (every
text and date column of ``children`` and of the tables that point at a child is either in
:data:`IDENTIFYING` or in :data:`NOT_SCANNED` with a reason; ``tests/test_pii.py`` checks that
a new column cannot slip between them). Findings name the column and where, never the value.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text

IDENTIFYING: dict[str, tuple[str, ...]] = {
    "children": (
        "state_student_id",
        "first_name",
        "middle_name",
        "last_name",
        "birth_date",
        "address_street",
    ),
    "guardians": ("first_name", "last_name", "phone", "email"),
}
NOT_SCANNED: dict[str, str] = {
    "children.local_id": "the program-local id is how logs and audits name a child",
    "children.home_language": "a three-letter language code shared by many children",
    "children.address_city": "a town shared by many children; program and site names carry it",
    "children.address_state": "two letters",
    "children.address_zip": "five digits collide with ports, pids and counts; the street is "
    "scanned instead",
    "children.source": "where the record came from (a tool's name), not about the child",
    "consents.signature_evidence": "a reference to the signed form, not to a person",
    "consents.purpose": "the agreement's purpose, the same for every child",
    "consents.signed_date": "dates of events collide with run dates; birth dates are scanned",
    "consents.expires_date": "as signed_date",
    "consents.revoked_date": "as signed_date",
    "enrollments.entry_date": "as signed_date",
    "enrollments.exit_date": "as signed_date",
    "enrollment_notices.notified_date": "as signed_date",
    "enrollment_notices.refused_date": "as signed_date",
    "attendance.month": "a month shared by every child",
    "guardians.relationship_start": "as signed_date",
    "guardians.relationship_end": "as signed_date",
    "children.tribal_affiliation": "a tribe's name, shared by the children of a whole AIAN "
    "program and by its name; the decision keeps it in the database unless an opt-in allows it",
    "parent_statements.field": "a catalog field name",
    "parent_statements.statement": "canned sentences in the demo world that name nobody",
    "parent_statements.filed_date": "as signed_date",
}
MIN_TEXT = 3  # shorter values (initials) are not distinctive enough to scan for


def date_forms(day: dt.date) -> set[str]:
    """How a date may be written: ISO, US with and without leading zeros."""
    return {day.isoformat(), day.strftime("%m/%d/%Y"), f"{day.month}/{day.day}/{day.year}"}


def value_forms(value: object) -> set[str]:
    """The strings a value may appear as."""
    if isinstance(value, dt.date):
        return date_forms(value)
    value = str(value).strip()
    if len(value) < MIN_TEXT:
        return set()
    digits = re.sub(r"\D", "", value)
    return {value, digits} if re.fullmatch(r"[\d\s().+-]+", value) and len(digits) >= 7 else {value}


@dataclass(frozen=True)
class PiiScan:
    """Patterns of every identifying value of a world, by column."""

    patterns: dict[str, re.Pattern[str]]

    @classmethod
    def of(cls, values: Mapping[str, Iterable[object]]) -> PiiScan:
        """From column -> values (dates, strings)."""
        patterns = {}
        for column, found in values.items():
            forms = sorted({f for v in found if v is not None for f in value_forms(v)})
            if forms:
                words = "|".join(map(re.escape, forms))
                patterns[column] = re.compile(rf"(?<![\w/-])(?:{words})(?![\w/-])")
        return cls(patterns)

    @classmethod
    def of_database(cls, engine: Engine, *, except_dates: Iterable[dt.date] = ()) -> PiiScan:
        """Every identifying value held in the program database at ``engine`` (dates in
        ``except_dates``, such as the run date, are left out: they appear legitimately)."""
        skip = set(except_dates)
        values: dict[str, list[object]] = {}
        with engine.connect() as connection:
            for table, columns in IDENTIFYING.items():
                for column in columns:
                    rows = connection.execute(text(f'SELECT "{column}" FROM "{table}"')).scalars()
                    values[f"{table}.{column}"] = [
                        _as_date(v) if column.endswith("_date") else v for v in rows
                    ]
        for column, found in values.items():
            values[column] = [v for v in found if v not in skip]
        return cls.of(values)

    def findings(self, texts: Mapping[str, str]) -> list[str]:
        """``column in where`` for every identifying value found, never the value."""
        return [
            f"{column} in {where}"
            for where, body in texts.items()
            for column, pattern in self.patterns.items()
            if pattern.search(body)
        ]

    def sees(self, body: str) -> set[str]:
        """The columns whose values appear in ``body`` (to prove the scan can see)."""
        return {column for column, pattern in self.patterns.items() if pattern.search(body)}


def _as_date(value: object) -> object:
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def run_texts(state: Path, stdout: str, stderr: str) -> dict[str, str]:
    """Everything a run under the state folder ``state`` wrote that a person or a log shipper
    could read: the command's stdout and stderr, logs, reports and Airflow's XCom values."""
    texts = {"stdout": stdout, "stderr": stderr}
    for folder in (state / "logs", state / "airflow" / "logs", state / "reports"):
        for path in sorted(folder.rglob("*")) if folder.exists() else []:
            if path.is_file():
                texts[str(path.relative_to(state))] = path.read_text(errors="replace")
    database = state / "airflow" / "airflow.db"
    if database.exists():
        with sqlite3.connect(database) as connection:
            xcoms = connection.execute("SELECT task_id, map_index, value FROM xcom").fetchall()
        texts["xcom"] = "\n".join(str(value) for *_, value in xcoms)
    return texts
