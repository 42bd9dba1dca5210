"""Who looked at a child's disclosure history: record each look, read the looks back.

A look is recorded with the viewer's login name (from the login, never typed), the time, the
child by program code and local id, and how many log entries were shown.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas import DisclosureAccess


def record_access(
    session: Session, viewer: str, program: str, child: str, entries: int, via: str = "console"
) -> None:
    """Record that ``viewer`` looked at the disclosures of ``program``/``child`` now."""
    session.add(
        DisclosureAccess(
            viewed_at=dt.datetime.now(dt.UTC),
            viewer=viewer,
            program_code=program,
            child_local_id=child,
            entries=entries,
            via=via,
        )
    )
    session.flush()


def access_rows(
    session: Session, program: str, child: str, limit: int = 50
) -> list[dict[str, Any]]:
    """The latest looks at one child's disclosures, newest first."""
    query = (
        select(DisclosureAccess)
        .where(DisclosureAccess.program_code == program, DisclosureAccess.child_local_id == child)
        .order_by(DisclosureAccess.id.desc())
        .limit(limit)
    )
    return [
        {
            "viewed_at": a.viewed_at.isoformat(timespec="seconds"),
            "viewer": a.viewer,
            "entries": a.entries,
            "via": a.via,
        }
        for a in session.scalars(query)
    ]
