"""Write one batch of parsed rows: upsert programs, sites, children, enrollments; quarantine
bad rows.

Keys: a program by ``code``; a site by (program, code); a child by (program, local_id); an
enrollment by (child, site, entry_date); a quarantined row by ``row_digest`` among the
unresolved ones. An existing program is never changed by an import (its registry data is
managed elsewhere); sites, children and enrollments take the file's values for the fields the
mapping feeds, and keep the rest.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from pipelines.imports.rows import BadRow, ParsedRow
from schemas import Child, Enrollment, Program, QuarantinedRow, Site
from schemas.codes import ProgramType


@dataclass
class StoreCounts:
    """What a batch did to the database."""

    rows_new: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    programs_created: int = 0
    sites_created: int = 0
    sites_updated: int = 0
    children_created: int = 0
    children_updated: int = 0
    enrollments_created: int = 0
    enrollments_updated: int = 0
    quarantine_added: int = 0
    quarantine_known: int = 0


@dataclass
class Store:
    """Writes batches for one import; remembers program and site ids between batches."""

    source: str
    origin: str
    counts: StoreCounts = field(default_factory=StoreCounts)
    _programs: dict[str, int] = field(default_factory=dict)
    _sites: dict[tuple[int, str], int] = field(default_factory=dict)

    def write(self, session: Session, good: list[ParsedRow], bad: list[BadRow]) -> None:
        """Upsert ``good`` and quarantine ``bad`` in ``session`` (the caller commits)."""
        if session.get_bind().dialect.name == "postgresql":
            # The lookups bind one parameter per key; after a few runs PostgreSQL would switch
            # the prepared statement to a generic plan that is ~30x slower for such lists.
            session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        if good:
            self._write_good(session, good)
        if bad:
            self._quarantine(session, bad)

    def _write_good(self, session: Session, rows: list[ParsedRow]) -> None:
        site_ids = [
            self._site(session, self._program(session, row.program), row.site) for row in rows
        ]
        program_ids = [self._programs[row.program["code"]] for row in rows]
        children = self._existing_children(session, program_ids, rows)
        touched: list[tuple[Child, str]] = []
        for program_id, row in zip(program_ids, rows, strict=True):
            key = (program_id, row.child["local_id"])
            child = children.get(key)
            if child is None:
                child = Child(program_id=program_id, source=self.origin, **row.child)
                session.add(child)
                children[key] = child
                self.counts.children_created += 1
                touched.append((child, "new"))
            elif _assign(child, row.child):
                self.counts.children_updated += 1
                touched.append((child, "updated"))
            else:
                touched.append((child, "unchanged"))
        session.flush()
        enrollments = self._existing_enrollments(session, [c.id for c, _ in touched])
        for (child, child_status), site_id, row in zip(touched, site_ids, rows, strict=True):
            enrollment_key = (child.id, site_id, row.enrollment["entry_date"])
            enrollment = enrollments.get(enrollment_key)
            if enrollment is None:
                enrollment = Enrollment(child_id=child.id, site_id=site_id, **row.enrollment)
                session.add(enrollment)
                enrollments[enrollment_key] = enrollment
                self.counts.enrollments_created += 1
                status = "new"
            elif _assign(enrollment, row.enrollment):
                self.counts.enrollments_updated += 1
                status = "new" if child_status == "new" else "updated"
            else:
                status = child_status
            setattr(self.counts, f"rows_{status}", getattr(self.counts, f"rows_{status}") + 1)
        session.flush()

    def _program(self, session: Session, values: dict[str, Any]) -> int:
        code = values["code"]
        if code not in self._programs:
            program = session.scalars(select(Program).where(Program.code == code)).one_or_none()
            if program is None:
                program_type = ProgramType(values["program_type"])
                is_aian = bool(values.get("is_aian")) or program_type is ProgramType.AIAN
                values = {**values, "is_aian": is_aian}
                program = Program(**values)
                session.add(program)
                session.flush()
                self.counts.programs_created += 1
            self._programs[code] = program.id
        return self._programs[code]

    def _site(self, session: Session, program_id: int, values: dict[str, Any]) -> int:
        key = (program_id, values["code"])
        if key not in self._sites:
            site = session.scalars(
                select(Site).where(Site.program_id == program_id, Site.code == values["code"])
            ).one_or_none()
            if site is None:
                site = Site(program_id=program_id, **values)
                session.add(site)
                session.flush()
                self.counts.sites_created += 1
            elif _assign(site, values):
                self.counts.sites_updated += 1
            self._sites[key] = site.id
        return self._sites[key]

    def _existing_children(
        self, session: Session, program_ids: list[int], rows: list[ParsedRow]
    ) -> dict[tuple[int, str], Child]:
        wanted: dict[int, set[str]] = defaultdict(set)
        for program_id, row in zip(program_ids, rows, strict=True):
            wanted[program_id].add(row.child["local_id"])
        found: dict[tuple[int, str], Child] = {}
        for program_id, local_ids in wanted.items():
            query = select(Child).where(
                Child.program_id == program_id, Child.local_id.in_(sorted(local_ids))
            )
            for child in session.scalars(query):
                found[program_id, child.local_id] = child
        return found

    def _existing_enrollments(
        self, session: Session, child_ids: list[int]
    ) -> dict[tuple[int, int, dt.date], Enrollment]:
        query = select(Enrollment).where(Enrollment.child_id.in_(sorted(set(child_ids))))
        return {(e.child_id, e.site_id, e.entry_date): e for e in session.scalars(query)}

    def _quarantine(self, session: Session, rows: list[BadRow]) -> None:
        digests = sorted({row.digest for row in rows})
        known = set(
            session.scalars(
                select(QuarantinedRow.row_digest).where(
                    QuarantinedRow.row_digest.in_(digests), QuarantinedRow.resolved_at.is_(None)
                )
            )
        )
        now = dt.datetime.now(dt.UTC)
        for row in rows:
            if row.digest in known:
                self.counts.quarantine_known += 1
                continue
            known.add(row.digest)
            first = row.errors[0]
            session.add(
                QuarantinedRow(
                    source=self.source[:255],
                    line=row.line,
                    program_code=row.program_code,
                    child_local_id=row.child_local_id,
                    field=first.field,
                    rule=str(first.rule),
                    message="; ".join(str(error) for error in row.errors),
                    raw=row.raw,
                    row_digest=row.digest,
                    quarantined_at=now,
                )
            )
            self.counts.quarantine_added += 1
        session.flush()


def _assign(record: Any, values: dict[str, Any]) -> bool:
    """Set ``values`` on ``record``; whether anything changed."""
    changed = False
    for name, value in values.items():
        if getattr(record, name) != value:
            setattr(record, name, value)
            changed = True
    return changed
