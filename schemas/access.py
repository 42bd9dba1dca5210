"""Who looked at what: a record of each time someone opened a child's disclosure history.

A parent may ask who saw the record of what was disclosed about their child; the console
records each look here (the viewer's login name, when, and the child by program code and
program-local id only, never a name or birth date).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from schemas.base import Base


class DisclosureAccess(Base):
    """One look at one child's disclosure history: who (a login name), when, how many entries
    were shown, and through which interface."""

    __tablename__ = "disclosure_access"
    __table_args__ = (
        Index("ix_disclosure_access_program_child", "program_code", "child_local_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    viewed_at: Mapped[dt.datetime]
    viewer: Mapped[str] = mapped_column(String(120))
    program_code: Mapped[str] = mapped_column(String(40))
    child_local_id: Mapped[str] = mapped_column(String(40))
    entries: Mapped[int] = mapped_column(default=0)
    via: Mapped[str] = mapped_column(String(20), default="console")
