"""Two writers at once in tests: work run on a thread, and who waits on a PostgreSQL
advisory lock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import create_engine, text


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """``work`` started on a daemon thread; its ``result`` or ``error`` lands in the dict."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = work()
        except BaseException as error:  # handed to the test
            out["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def advisory_waiters(url: str) -> int:
    """How many sessions of the database at ``url`` wait on an advisory lock now."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            query = (
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
            )
            return int(connection.execute(text(query)).scalar())
    finally:
        engine.dispose()
