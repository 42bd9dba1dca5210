"""Build the demo world from a seed and write it: ``seed(engine, children, seed)``."""

from __future__ import annotations

import datetime as dt

import numpy as np
from sqlalchemy import Engine, Table

from pipelines.db import autocommit
from pipelines.demo import draw, enrollment, family, load, population, scenarios
from pipelines.demo.draw import Columns
from pipelines.demo.summary import FLAGS, NOTICE_KINDS, ProgramCount, SeedSummary
from pipelines.demo.world import DECIDED_BY, EVENTS, PROGRAMS, RECIPIENTS
from schemas import (
    Attendance,
    Base,
    Child,
    Consent,
    Enrollment,
    EnrollmentNotice,
    Guardian,
    ParentStatement,
    ParticipationEvent,
    Program,
    Site,
)

DEFAULT_CHILDREN = 2000
DEFAULT_SEED = 42
MODELS = (
    Program,
    Site,
    ParticipationEvent,
    Child,
    Guardian,
    Enrollment,
    Attendance,
    Consent,
    EnrollmentNotice,
    ParentStatement,
)
TABLES: tuple[Table, ...] = tuple(Base.metadata.tables[m.__tablename__] for m in MODELS)
STREAMS = (
    "children",
    "consent_scenarios",
    "guardians",
    "enrollments",
    "consents",
    "notices",
    "statements",
)


def seed(engine: Engine, children: int = DEFAULT_CHILDREN, seed: int = DEFAULT_SEED) -> SeedSummary:
    """Replace the demo world in the database behind ``engine`` (tables must exist) with one
    of ``children`` children drawn from ``seed``, in one transaction. Same seed, same rows."""
    if children < 0:
        raise ValueError("children must be zero or more")
    with engine.begin() as conn:
        load.delete_demo(conn)
        recipients = load.upsert_recipients(conn)
        first = load.next_ids(conn, TABLES)
        tables, summary = build(children, seed, first, recipients)
        checked = np.array([not e.unchecked for e in EVENTS])
        events = tables["participation_events"]
        unchecked = {k: v[~checked] for k, v in events.items()}
        tables["participation_events"] = {k: v[checked] for k, v in events.items()}
        for table in TABLES:
            load.insert_columns(conn, table, tables[table.name])
        load.insert_unchecked(conn, Base.metadata.tables["participation_events"], unchecked)
        load.reset_sequences(conn, TABLES)
    if engine.dialect.name == "postgresql":  # fresh planner statistics after a bulk load
        with autocommit(engine) as conn:
            conn.exec_driver_sql("ANALYZE")
    return summary


def build(
    n: int, seed: int, first: dict[str, int], recipients: dict[str, int]
) -> tuple[dict[str, Columns], SeedSummary]:
    """Every demo table as columns (ids from ``first``), and the summary of what they hold."""
    rng = draw.streams(seed, STREAMS)
    fixed = _fixed(first, recipients)
    program_ids = fixed["programs"]["id"]
    site_ids = _site_grid(fixed["sites"], program_ids)
    kids_table, kids = population.children(rng["children"], n, first["children"], program_ids)
    consent_sc = scenarios.consent_scenarios(rng["consent_scenarios"], n)
    non_parent = consent_sc == scenarios.CONSENT_SCENARIOS.index(scenarios.S.NON_PARENT)
    guardians, primary, contact = family.guardians(
        rng["guardians"], kids, first["guardians"], non_parent
    )
    enrollments, attendance, entry = enrollment.enrollments(
        rng["enrollments"], kids, site_ids, (first["enrollments"], first["attendance"])
    )
    consents, (late_signers, became) = scenarios.consents(
        rng["consents"],
        kids,
        consent_sc,
        entry,
        (primary, contact),
        recipients,
        first["consents"],
    )
    guardians = family.with_relationship_dates(guardians, first["guardians"], late_signers, became)
    kids_table = {**kids_table, "tribal_affiliation": family.tribal_affiliation(kids_table, kids)}
    notices, notice_sc = scenarios.notices(
        rng["notices"], kids, recipients, first["enrollment_notices"]
    )
    statements = scenarios.statements(rng["statements"], kids, entry, first["parent_statements"])
    tables = {
        **fixed,
        "children": kids_table,
        "guardians": guardians,
        "enrollments": enrollments,
        "attendance": attendance,
        "consents": consents,
        "enrollment_notices": notices,
        "parent_statements": statements,
    }
    per_program = np.bincount(kids.program, minlength=len(PROGRAMS))
    present = {**kids_table, "state_student_id": kids_table["state_student_id"].astype(bool)}
    flags = {f: int(np.count_nonzero(present[f])) for f in FLAGS}
    summary = SeedSummary(
        programs=tuple(
            ProgramCount(p.code, p.state, p.program_type.value, p.is_aian, len(p.sites), int(c))
            for p, c in zip(PROGRAMS, per_program, strict=True)
        ),
        recipients=len(RECIPIENTS),
        participation_events=len(EVENTS),
        children=n,
        guardians=len(guardians["id"]),
        enrollments=len(enrollments["id"]),
        attendance_rows=len(attendance["id"]),
        consents=len(consents["id"]),
        notices=len(notices["id"]),
        statements=len(statements["id"]),
        consent_scenarios=_counts(consent_sc, scenarios.CONSENT_SCENARIOS),
        notice_scenarios={
            k: v
            for k, v in _counts(notice_sc, scenarios.NOTICE_SCENARIOS).items()
            if k in NOTICE_KINDS
        },
        flags=flags,
    )
    return tables, summary


def _counts(labels: np.ndarray, names: tuple[str, ...]) -> dict[str, int]:
    counts = np.bincount(labels, minlength=len(names))
    return {str(name): int(c) for name, c in zip(names, counts, strict=True)}


def _fixed(first: dict[str, int], recipients: dict[str, int]) -> dict[str, Columns]:
    """Programs, sites and participation events: the same for every seed."""
    program_ids = first["programs"] + np.arange(len(PROGRAMS), dtype=np.int64)
    site_rows = [
        (pid, s) for pid, p in zip(program_ids.tolist(), PROGRAMS, strict=True) for s in p.sites
    ]
    code_to_id = dict(zip((p.code for p in PROGRAMS), program_ids.tolist(), strict=True))
    obj = draw.objects
    return {
        "programs": {
            "id": program_ids,
            "code": obj([p.code for p in PROGRAMS]),
            "grant_number": obj([p.grant_number for p in PROGRAMS]),
            "name": obj([p.name for p in PROGRAMS]),
            "state": obj([p.state for p in PROGRAMS]),
            "program_type": obj([p.program_type.value for p in PROGRAMS]),
            "is_aian": np.array([p.is_aian for p in PROGRAMS]),
        },
        "sites": {
            "id": first["sites"] + np.arange(len(site_rows), dtype=np.int64),
            "program_id": np.array([pid for pid, _ in site_rows], dtype=np.int64),
            "code": obj([s.code for _, s in site_rows]),
            "name": obj([s.name for _, s in site_rows]),
            "zip": obj([s.zip for _, s in site_rows]),
        },
        "participation_events": {
            "id": first["participation_events"] + np.arange(len(EVENTS), dtype=np.int64),
            "program_id": np.array([code_to_id[e.program] for e in EVENTS], dtype=np.int64),
            "recipient_id": obj([recipients[e.recipient] if e.recipient else None for e in EVENTS]),
            "action": obj([e.action.value for e in EVENTS]),
            "effective_date": np.array([e.effective for e in EVENTS], dtype="M8[D]"),
            "decided_by": obj([DECIDED_BY] * len(EVENTS)),
            "recorded_by": obj([e.recorded_by for e in EVENTS]),
            "authority": obj([e.authority for e in EVENTS]),
            "scope": obj([e.scope.value if e.scope else None for e in EVENTS]),
            "excluded_fields": obj([list(e.excluded_fields) for e in EVENTS]),
            "reason": obj([e.reason for e in EVENTS]),
            "recorded_at": obj(
                [dt.datetime.combine(e.effective, dt.time(12), tzinfo=dt.UTC) for e in EVENTS]
            ),
        },
    }


def _site_grid(sites: Columns, program_ids: np.ndarray) -> np.ndarray:
    """``grid[program, k]``: the id of the k-th site of each program (-1 past its sites)."""
    grid = np.full((len(PROGRAMS), max(len(p.sites) for p in PROGRAMS)), -1, dtype=np.int64)
    for index, pid in enumerate(program_ids.tolist()):
        ids = sites["id"][sites["program_id"] == pid]
        grid[index, : len(ids)] = ids
    return grid
