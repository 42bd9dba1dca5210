"""Import one export file through one mapping, in batches, and report what happened.

The file is streamed: rows are parsed one at a time and written ``batch_size`` at a time, each
batch in its own transaction, so memory stays flat and a rerun after a crash completes the
job without duplicates (every write is an upsert, quarantine is deduplicated).

A first, read-only pass (raw values, no parsing: +12% on a 20,000-row GOLD export, 2026-12)
finds child ids the file gives more than once in rows that disagree (different child values,
or the same enrollment twice): the second pass quarantines every copy under rule
``duplicate_in_file``, since which one is right cannot be known. Rows of one child that agree
on the child's fields and give different enrollments are not duplicates.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from pipelines.db import session_scope
from pipelines.imports.errors import RowError, StoreError
from pipelines.imports.mapping import Mapping, find_mapping, load_mapping
from pipelines.imports.reader import ExportReader, SourceRow
from pipelines.imports.rows import BadRow, ParsedRow, RowParser
from pipelines.imports.store import Store, StoreCounts
from schemas.codes import ProgramType

DEFAULT_BATCH_SIZE = 500
DEFAULT_MAX_ERRORS = 1000


@dataclass
class ImportReport(StoreCounts):
    """Counts of one import, the quarantined rows by rule, and the per-row errors.

    Rows are ``new`` (created a child or an enrollment), ``updated`` (changed one) or
    ``unchanged``; ``quarantine_known`` counts bad rows already in quarantine, unresolved.
    ``errors`` keeps the first ``max_errors`` errors; ``errors_omitted`` counts the rest.
    ``duplicate_rows`` counts rows quarantined because their child id repeats in the file;
    ``warnings`` (loaded rows: file, line, field, rule) likewise keeps the first
    ``max_errors``. Nothing in it is a value from the file.
    """

    source: str = ""
    mapping: str = ""
    rows_read: int = 0
    rows_quarantined: int = 0
    quarantined_by_rule: Counter[str] = field(default_factory=Counter)
    errors: list[RowError] = field(default_factory=list)
    errors_omitted: int = 0
    duplicate_rows: int = 0
    warned_by_rule: Counter[str] = field(default_factory=Counter)
    warnings: list[RowError] = field(default_factory=list)
    warnings_omitted: int = 0

    @property
    def rows_loaded(self) -> int:
        """Rows now in the database as the file has them (new, updated or unchanged)."""
        return self.rows_new + self.rows_updated + self.rows_unchanged

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (for JSON output)."""
        data = asdict(self)
        data["quarantined_by_rule"] = dict(self.quarantined_by_rule)
        data["errors"] = [str(error) for error in self.errors]
        data["warned_by_rule"] = dict(self.warned_by_rule)
        data["warnings"] = [str(warning) for warning in self.warnings]
        data["rows_loaded"] = self.rows_loaded
        return data


def import_file(
    engine: Engine,
    mapping: Mapping | str | Path,
    path: str | Path,
    *,
    state: str | None = None,
    program_type: ProgramType | str | None = None,
    today: dt.date | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_errors: int = DEFAULT_MAX_ERRORS,
) -> ImportReport:
    """Load the export at ``path`` into the database behind ``engine``.

    ``mapping`` is a loaded mapping, a mapping file or a mapping name (``gold``). ``state``
    and ``program_type`` override the program's mapped ones; ``today`` is the date birth
    dates may not pass (default: today). Raises ``MappingError`` or ``SourceError`` when the
    whole file cannot be imported; bad rows are quarantined and reported, not raised.
    The schema must already be current (``schemas.migrate.upgrade``).
    """
    if not isinstance(mapping, Mapping):
        mapping = load_mapping(find_mapping(mapping))
    path = Path(path)
    report = ImportReport(source=path.name, mapping=mapping.name)
    store = Store(source=path.name, origin=f"import:{mapping.name}")
    options: dict[str, Any] = {
        "today": today or dt.date.today(),
        "state": state,
        "program_type": ProgramType(program_type) if program_type else None,
    }
    duplicates = _duplicates(path, mapping, options)
    with ExportReader(path, mapping) as reader:
        parser = RowParser(mapping, reader.header, path.name, **options)
        good: list[ParsedRow] = []
        bad: list[BadRow] = []
        for row in reader.rows():
            report.rows_read += 1
            result = parser.parse(row)
            key = _key(parser, row) if duplicates else None
            copies = duplicates.get(key) if key is not None else None
            if isinstance(result, ParsedRow) and copies:
                result = parser.duplicate(row, result, copies)
                report.duplicate_rows += 1
            elif isinstance(result, ParsedRow):
                _warn(report, result, max_errors)
            if isinstance(result, BadRow):
                bad.append(result)
                _note(report, result, max_errors)
            else:
                good.append(result)
            if len(good) + len(bad) >= batch_size:
                _write(engine, store, good, bad)
                good, bad = [], []
        _write(engine, store, good, bad)
    for item in fields(StoreCounts):
        setattr(report, item.name, getattr(store.counts, item.name))
    return report


def _key(parser: RowParser, row: SourceRow) -> tuple[str, ...] | None:
    identity = parser.identity(row)
    return identity.child_key if identity else None


def _duplicates(
    path: Path, mapping: Mapping, options: dict[str, Any]
) -> dict[tuple[str, ...], int]:
    """First pass: raw child keys given by more than one row that disagree -> how many rows."""
    seen: dict[tuple[str, ...], tuple[str, set[tuple[str, ...]], int]] = {}
    clash: set[tuple[str, ...]] = set()
    with ExportReader(path, mapping) as reader:
        parser = RowParser(mapping, reader.header, path.name, **options)
        for row in reader.rows():
            identity = parser.identity(row)
            if identity is None:
                continue
            key = identity.child_key
            child = "\x1f".join(identity.child_values).encode("utf-8", "surrogateescape")
            signature = hashlib.sha256(child).hexdigest()
            if key not in seen:
                seen[key] = (signature, {identity.enrollment}, 1)
                continue
            first, enrollments, count = seen[key]
            if signature != first or identity.enrollment in enrollments:
                clash.add(key)
            enrollments.add(identity.enrollment)
            seen[key] = (first, enrollments, count + 1)
    return {key: seen[key][2] for key in clash}


def _warn(report: ImportReport, row: ParsedRow, max_errors: int) -> None:
    for warning in row.warnings:
        report.warned_by_rule[str(warning.rule)] += 1
        if len(report.warnings) < max_errors:
            report.warnings.append(warning)
        else:
            report.warnings_omitted += 1


def _note(report: ImportReport, row: BadRow, max_errors: int) -> None:
    report.rows_quarantined += 1
    report.quarantined_by_rule[str(row.errors[0].rule)] += 1
    room = max(0, max_errors - len(report.errors))
    report.errors.extend(row.errors[:room])
    report.errors_omitted += len(row.errors) - min(room, len(row.errors))


def _write(engine: Engine, store: Store, good: list[ParsedRow], bad: list[BadRow]) -> None:
    if not (good or bad):
        return
    try:
        with session_scope(engine) as session:
            store.write(session, good, bad)
    except SQLAlchemyError as error:
        # The driver's message may quote row values: keep only its kind and the lines.
        lines = [row.line for row in good] + [row.line for row in bad]
        cause = type(getattr(error, "orig", None) or error).__name__
        raise StoreError(
            f"{store.source}: the database refused the batch of lines {min(lines)}-{max(lines)}"
            f" ({cause}); earlier batches are committed, a rerun resumes without duplicates"
        ) from None
