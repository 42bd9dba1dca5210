"""Quarantine extract rows that failed the input gate: kept whole, named by rule, never lost."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pandas as pd
from sqlalchemy import insert, select

from pipelines.db import session_scope
from pipelines.submission.context import RunContext
from schemas import QuarantinedRow


def _jsonable(value: Any) -> Any:
    if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
        return None
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def quarantine_rows(context: RunContext, children: pd.DataFrame, failures: pd.DataFrame) -> int:
    """Store each failing (row, rule) with the whole extract row; an identical unresolved entry
    already there is not stored twice. Returns how many were added."""
    source = f"extract:{context.run.destination}"
    rows = children.set_index("child_id")
    now = dt.datetime.now(dt.UTC)
    entries: list[dict[str, Any]] = []
    for failure in failures.itertuples(index=False):
        raw = {k: _jsonable(v) for k, v in rows.loc[failure.child_id].items()}
        digest = hashlib.sha256(
            json.dumps([raw, failure.field, failure.rule], sort_keys=True).encode()
        ).hexdigest()
        entries.append(
            {
                "source": source,
                "line": None,
                "program_code": failure.program_code,
                "child_local_id": failure.child_local_id,
                "field": failure.field,
                "rule": failure.rule,
                "message": failure.message,
                "raw": raw,
                "row_digest": digest,
                "run_id": context.run.run_id,
                "quarantined_at": now,
                "resolved_at": None,
            }
        )
    with session_scope(context.engine) as session:
        known = set(
            session.scalars(
                select(QuarantinedRow.row_digest).where(
                    QuarantinedRow.row_digest.in_([e["row_digest"] for e in entries]),
                    QuarantinedRow.resolved_at.is_(None),
                )
            )
        )
        new = [e for e in entries if e["row_digest"] not in known]
        if new:
            session.execute(insert(QuarantinedRow), new)
    return len(new)
