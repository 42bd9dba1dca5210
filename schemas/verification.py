"""What verifying the ledgers leaves behind: verified-through checkpoints and verify jobs.

A checkpoint says "this ledger's chain was walked and held up to ``seq``, whose ``entry_hash``
was this": a routine verify then walks only the entries after it. ``checkpoint_hash`` covers
the other columns with the ledgers' own digest (keyed when they are), so an edited or forged
checkpoint shows. Checkpoints are appended, never updated. A verify job is one verification
the console runs in the background, with its progress and its result.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from schemas.base import Base


class LedgerCheckpoint(Base):
    """One ledger verified through ``seq`` (its chain hash there is ``entry_hash``)."""

    __tablename__ = "ledger_checkpoints"
    __table_args__ = (Index("ix_ledger_checkpoints_ledger_seq", "ledger", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ledger: Mapped[str] = mapped_column(String(20))
    seq: Mapped[int]
    entry_hash: Mapped[str] = mapped_column(String(64))
    full: Mapped[bool]
    keyed: Mapped[bool]
    verified_at: Mapped[dt.datetime]
    checkpoint_hash: Mapped[str] = mapped_column(String(64))


RUNNING_ONLY = "state = 'running'"


class LedgerVerifyJob(Base):
    """One verification the console runs in the background: ``mode`` is ``routine`` (from the
    checkpoints) or ``full``; ``state`` is ``running``, ``done``, ``failed`` or ``stalled`` (its
    progress stopped: its process ended); ``checked`` of ``total`` entries walked so far;
    ``result`` what it found (no PII: seqs, ids, hashes).

    At most one job is ``running``: a partial unique index (migration 0011) makes the database
    refuse a second, however many api-server workers (or ``datashare audit verify`` runs) ask
    at once. Its owner, the process running it, is recorded (migration 0013): ``owner_host``
    (a host name, to show), ``owner_space`` (the boot and pid namespace in which ``owner_pid``
    names it), ``owner_pid`` and ``owner_started`` (that process's start, as its kernel counts
    it, so a reused pid is not taken for it); the owner writes ``heartbeat_at`` every few
    seconds while the job runs (``pipelines/job_owners.py``, ``pipelines/verify_jobs.py``)."""

    __tablename__ = "ledger_verify_jobs"
    __table_args__ = (
        Index(
            "ux_ledger_verify_jobs_running",
            "state",
            unique=True,
            sqlite_where=text(RUNNING_ONLY),
            postgresql_where=text(RUNNING_ONLY),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mode: Mapped[str] = mapped_column(String(10))
    requested_by: Mapped[str] = mapped_column(String(120))
    state: Mapped[str] = mapped_column(String(10))
    started_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    checked: Mapped[int] = mapped_column(default=0)
    total: Mapped[int] = mapped_column(default=0)
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    owner_host: Mapped[str | None] = mapped_column(String(255))
    owner_space: Mapped[str | None] = mapped_column(String(120))
    owner_pid: Mapped[int | None]
    owner_started: Mapped[str | None] = mapped_column(String(40))
    heartbeat_at: Mapped[dt.datetime | None]
