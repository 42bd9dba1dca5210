"""What we sent where: the ledgers that make delivery idempotent and reconcilable."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from schemas.base import Base


class Delivery(Base):
    """One program's batch to one destination in one run, through its states: ``pending``
    (about to be sent), ``delivered`` (the destination accepted it), ``logged`` (disclosures
    recorded), ``failed``; or ``unchanged`` (nothing needed sending, the audit is recorded).
    ``artifacts["outcome"]`` of a ``logged`` or ``unchanged`` row is the program's outcome, so
    a retried task does not send it again. A batch stuck before ``logged`` is reconciled by
    the next run.
    Whether a batch is unchanged is decided against :class:`DeliveredRecord` (what the
    destination holds now), never against this history: the same batch digest may be sent
    again (a correction that reverts, ``resend: full``). ``staged_path`` is the encrypted file
    holding what must be logged once the destination is known to hold the batch.
    ``upload_began_at`` / ``publish_began_at`` let reconciliation tell a file drop's batch
    that never left from one the state took away before the next run looked."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("destination", "program_code", "run_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    destination: Mapped[str] = mapped_column(String(80))
    program_code: Mapped[str] = mapped_column(String(40))
    batch_digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    artifacts: Mapped[dict[str, Any]]
    staged_path: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    upload_began_at: Mapped[dt.datetime | None]
    """A file drop's: committed just before its first ``.part`` file is written."""
    publish_began_at: Mapped[dt.datetime | None]
    """A file drop's: committed just before the old manifest goes and the first file is
    renamed to its final name (from then on the state may see, and take, the batch)."""


class SentResource(Base):
    """A record-level resource held by an API destination (Ed-Fi), by natural key: the digest
    of what was last sent makes an unchanged record not be resent, ``status`` says whether
    it is still there or was deleted after a revocation, and ``fields`` which fields the body
    last sent carried."""

    __tablename__ = "sent_resources"
    __table_args__ = (UniqueConstraint("destination", "resource", "key_digest"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    destination: Mapped[str] = mapped_column(String(80))
    resource: Mapped[str] = mapped_column(String(80))
    key_digest: Mapped[str] = mapped_column(String(64))
    natural_key: Mapped[dict[str, Any]]
    program_code: Mapped[str] = mapped_column(String(40))
    child_local_id: Mapped[str] = mapped_column(String(40))
    payload_digest: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10))
    run_id: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime]
    fields: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    """The source fields whose values the body last sent carried (sorted): what a crashed run
    whose staged batch is lost is logged with. ``NULL`` on a row last sent before migration
    0014 (its fields are not known); a deletion keeps what the deleted copy carried."""


class DeliveredRecord(Base):
    """What one destination holds now for one child of one program (``child_local_id`` empty:
    the program's own artifacts, e.g. aggregate tables): the digest of the rows last delivered,
    the key of every row by artifact (so rows whose key changed, and children withdrawn, can be
    deleted where the destination deletes), and ``status`` ``held`` or ``deleted``. Written in
    the transaction that logs the delivery; a batch is unchanged only when it equals this."""

    __tablename__ = "delivery_state"
    __table_args__ = (UniqueConstraint("destination", "program_code", "child_local_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    destination: Mapped[str] = mapped_column(String(80))
    program_code: Mapped[str] = mapped_column(String(40))
    child_local_id: Mapped[str] = mapped_column(String(40))
    digest: Mapped[str] = mapped_column(String(64))
    rows: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(10))
    run_id: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime]
