"""Stage prepared program batches encrypted at rest, and describe them without PII."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipelines.staged_store import Staging
from pipelines.staging import staging_key
from pipelines.submission.stage_tables import as_tables
from privacy.reasons import Reason

if TYPE_CHECKING:
    from pipelines.submission.prepare import Preparation

Frames = dict[str, Any]
"""File name -> (frame, the child each row belongs to)."""


def ledger_bytes(
    disclosures: Sequence[dict[str, Any]],
    redactions: Sequence[dict[str, Any]],
    child_keys: dict[str, list[list[str]]],
) -> bytes:
    """A program's staged ledger as JSON. Each distinct list of disclosed fields (a program
    has one or a few) is written once under ``field_lists`` and each disclosure names its own
    by position: the deliver task parses a third of the text
    (:func:`.batches.load_ledger` puts the lists back)."""
    lists: dict[tuple[str, ...], int] = {}
    compact = [
        {**d, "fields": lists.setdefault(tuple(d["fields"]), len(lists))} for d in disclosures
    ]
    ledger = {
        "disclosures": compact,
        "field_lists": [list(fields) for fields in lists],
        "redactions": redactions,
        "child_keys": child_keys,
    }
    return json.dumps(ledger).encode()


def stage_program(p: Preparation, code: str, frames: Frames, report: str) -> dict[str, Any]:
    """One program's batch staged (see :func:`stage_programs`)."""
    return stage_programs(p, [(code, frames, report)])[0]


def stage_programs(
    p: Preparation, batches: Sequence[tuple[str, Frames, str]]
) -> list[dict[str, Any]]:
    """Encrypt each program's frames, ledger lines and the child each row belongs to into the
    run's staged store (:mod:`pipelines.staged_store`), every program of ``batches`` in one
    write (one transaction on the database store); return, per program, the reference the
    deliver step takes (locations, digests, counts: nothing that names a child). Each frame is
    serialized and sealed once."""
    context = p.context
    key = staging_key(context.settings.staging_key_file)
    run_id = context.run.run_id
    items: list[Staging] = []
    layout: list[tuple[str, list[tuple[str, list[str]]], str]] = []
    tables = _tables(batches)
    for code, frames, report in batches:
        c = p.collected[code]
        named = []
        child_keys: dict[str, list[list[str]]] = {}
        for name, (frame, keys) in frames.items():
            spec = next((s for s in p.specs if s.file_name == name), None)
            items.append(Staging(tables.get((code, name), frame), run_id, code, name))
            named.append((name, list(spec.key) if spec else []))
            child_keys[name] = [list(k) for k in keys]
        ledger = ledger_bytes(c.disclosures, c.redactions, child_keys)
        items.append(Staging(ledger, run_id, code, "ledger.json"))
        layout.append((code, named, report))
    refs = iter(context.staged.put_many(items, key))
    out = []
    for code, named, report in layout:
        c = p.collected[code]
        artifacts: list[dict[str, Any]] = [
            {"name": name, "ref": next(refs).to_dict(), "key_columns": columns}
            for name, columns in named
        ]
        ledger_ref = next(refs)
        counts = {
            **c.counts,
            "withheld_by_reason": {
                k: v for k, v in c.reasons.items() if k != Reason.DISCLOSED.value and v
            },
            "fields_removed_by_reason": c.removals,
            "quarantined_by_rule": c.quarantined,
            "rows": {a["name"]: a["ref"]["rows"] for a in artifacts},
        }
        out.append(
            {
                "program": code,
                "run_date": context.run.run_date.isoformat(),
                "artifacts": artifacts,
                "ledger": ledger_ref.to_dict(),
                "counts": counts,
                "report": report,
            }
        )
    return out


def _tables(batches: Sequence[tuple[str, Frames, str]]) -> dict[tuple[str, str], Any]:
    """Each program's text frames as Arrow tables, converted once per file name for the whole
    shard (:mod:`.stage_tables`); a file whose frames are not all text is left out."""
    by_name: dict[str, list[tuple[str, pd.DataFrame]]] = {}
    for code, frames, _ in batches:
        for name, (frame, _keys) in frames.items():
            by_name.setdefault(name, []).append((code, frame))
    out: dict[tuple[str, str], Any] = {}
    for name, parts in by_name.items():
        tables = as_tables([frame for _, frame in parts])
        if tables is not None:
            out |= {(code, name): table for (code, _), table in zip(parts, tables, strict=True)}
    return out
