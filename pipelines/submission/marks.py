"""Durable marks of a file drop's delivery steps, on its delivery row.

A file drop (local folder, SFTP) tells its ``progress`` (``destinations.base.Progress``) just
before it writes the batch's first ``.part`` file (``upload``) and just before the folder's old
manifest goes and the first file takes its final name (``publish``). Each mark is committed
before the step starts (a local folder commits the publish mark while its written files are
flushed to disk, and starts the publish once both are done), so a run killed at any point
leaves on its delivery row how far the batch got: the next run's reconciliation
(:mod:`.reconcile`) tells a batch that never left from one the state took away whole before
anyone looked. A mark keeps the first time it was set (a retried attempt does not move it).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, select, update

from pipelines.db import autocommit
from pipelines.destinations.base import PUBLISH, UPLOAD, Batch, DeliveryResult, Progress, Step
from pipelines.submission.context import RunContext
from schemas import Delivery

FILE_DROPS = ("local", "sftp")
_COLUMNS = {UPLOAD: Delivery.upload_began_at, PUBLISH: Delivery.publish_began_at}
_MARKS = {
    step: update(Delivery)
    .where(Delivery.id == bindparam("delivery"), column.is_(None))
    .values({column: bindparam("at")})
    for step, column in _COLUMNS.items()
}
"""Each step's mark, built once (a shard marks every program's steps)."""
_ROW = select(Delivery.id).where(Delivery.id == bindparam("delivery"))


def marking(context: RunContext, delivery_id: int) -> Progress:
    """The ``progress`` that records each step on delivery ``delivery_id``: one ``UPDATE``
    that commits by itself (autocommit: no ``BEGIN`` and ``COMMIT`` round trips of its own),
    and waits for the disk like any commit."""

    def mark(step: Step) -> None:
        at = {"delivery": delivery_id, "at": dt.datetime.now(dt.UTC)}
        with autocommit(context.engine) as connection:
            marked = cast(  # an UPDATE's result is a CursorResult (it has the rowcount)
                CursorResult[Any], connection.execute(_MARKS[step], at)
            ).rowcount
            if not marked and connection.scalar(_ROW, at) is None:  # fail closed
                raise LookupError(f"delivery {delivery_id} is not recorded: nothing is sent")

    return mark


def flushed_by_mark(context: RunContext) -> bool:
    """Whether a pending delivery row may commit without waiting for the disk: on PostgreSQL,
    for a file drop, whose upload mark's synchronous commit flushes it before any byte leaves."""
    postgres = context.engine.dialect.name == "postgresql"
    return postgres and context.destination.type.value in FILE_DROPS


def deliver_marked(
    context: RunContext, destination: Any, batch: Batch, delivery_id: int
) -> DeliveryResult:
    """``destination.deliver(batch)``; a file drop's with its steps marked on the row."""
    if context.destination.type.value in FILE_DROPS:
        return destination.deliver(batch, progress=marking(context, delivery_id))
    return destination.deliver(batch)
