"""The extract's attendance columns: each child's current enrollment's days up to the run date,
0 when it has none, checked on SQLite and PostgreSQL against sums made in Python from the
rule (latest enrollment begun by the run date; its months on or before the run date)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import Engine, delete, insert, select

from pipelines.demo import seed
from pipelines.extract import extract
from schemas import Attendance, Child, Enrollment, Program

RUN = dt.date(2026, 11, 27)


def _oracle(engine: Engine) -> dict[int, tuple[int, int]]:
    """Child id -> (scheduled, present) by the rule, for children with a current enrollment."""
    with engine.connect() as connection:
        enrollments = connection.execute(
            select(Enrollment.id, Enrollment.child_id, Enrollment.entry_date)
        ).all()
        months = connection.execute(
            select(
                Attendance.enrollment_id,
                Attendance.month,
                Attendance.days_scheduled,
                Attendance.days_present,
            )
        ).all()
    latest: dict[int, tuple[dt.date, int]] = {}
    for enrollment_id, child_id, entry in enrollments:
        if entry <= RUN and (entry, enrollment_id) > latest.get(child_id, (dt.date.min, 0)):
            latest[child_id] = (entry, enrollment_id)
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for enrollment_id, month, scheduled, present in months:
        if month <= RUN:
            totals[enrollment_id][0] += scheduled
            totals[enrollment_id][1] += present
    return {child: tuple(totals[e]) for child, (_, e) in latest.items()}  # type: ignore[misc]


def test_attendance_is_the_current_enrollments_days_up_to_the_run_date(engine: Engine) -> None:
    seed(engine, children=40, seed=5)
    with engine.begin() as connection:
        current = connection.execute(
            select(Enrollment.id, Enrollment.child_id)
            .where(Enrollment.exit_date.is_(None), Enrollment.entry_date <= RUN)
            .order_by(Enrollment.id)
        ).all()
        assert len(current) >= 3
        (none, _), (later, _), (older_of, child) = current[:3]
        # a current enrollment with no month at all gives 0, not a missing value
        connection.execute(delete(Attendance).where(Attendance.enrollment_id == none))
        # a month after the run date does not count
        connection.execute(
            delete(Attendance).where(
                Attendance.enrollment_id == later, Attendance.month == dt.date(2027, 1, 1)
            )
        )
        connection.execute(
            insert(Attendance).values(
                enrollment_id=later, month=dt.date(2027, 1, 1), days_scheduled=20, days_present=9
            )
        )
        # an earlier enrollment of the same child does not count either
        site = connection.scalar(select(Enrollment.site_id).where(Enrollment.id == older_of))
        connection.execute(
            insert(Enrollment).values(
                id=10_000,
                child_id=child,
                site_id=site,
                program_option="center_based",
                entry_date=dt.date(2020, 9, 1),
                exit_date=dt.date(2021, 6, 1),
                eligibility_category="income",
            )
        )
        connection.execute(
            insert(Attendance).values(
                enrollment_id=10_000, month=dt.date(2020, 10, 1), days_scheduled=30, days_present=7
            )
        )
        codes = connection.scalars(select(Program.code)).all()
        children = connection.scalar(select(Child.id).order_by(Child.id.desc()).limit(1))
    frames = [c.children for c in extract(engine, codes, RUN, chunk_size=9)]
    got = {
        int(row.child_id): (int(row.days_scheduled), int(row.days_present))
        for frame in frames
        for row in frame.itertuples()
    }
    expected = _oracle(engine)
    assert got and children
    assert got.items() <= expected.items()
    assert got[next(c for e, c in current if e == none)] == (0, 0)
    assert set(got) >= {c for _, c in current}
