"""Operational tables of a run: encrypted staged batches and why a program stopped.

Neither holds a readable child's record: staged chunks are AES-GCM ciphertext (the key is never
in the database), and a stop names a program, a step and a reason code with a PII-free line.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from schemas.base import Base


class StagedChunk(Base):
    """One chunk of one encrypted staged artifact (a batch's file or its ledger), in the
    program database so every worker of a run reaches it. ``key`` names the artifact
    (``run/program/file``); chunks are read back in ``seq`` order."""

    __tablename__ = "staged_chunks"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime]


class RunStop(Base):
    """Why one program of one run stopped (the last failure of its prepare or deliver task):
    the step, a reason code and one line that names files, rules or keys, never a value."""

    __tablename__ = "run_stops"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    program_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    step: Mapped[str] = mapped_column(String(20))
    reason_code: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    recorded_at: Mapped[dt.datetime]
