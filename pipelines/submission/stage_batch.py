"""Stage prepared program batches encrypted at rest, and describe them without PII."""

from __future__ import annotations

import json
from collections.abc import Sequence
from operator import itemgetter
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
    child_keys: dict[str, Sequence[Sequence[str]]],
) -> bytes:
    """A program's staged ledger as JSON. Each distinct list of disclosed fields (a program
    has one or a few) is written once under ``field_lists`` and each disclosure names its own
    by position: the deliver task parses a third of the text
    (:func:`.batches.load_ledger` puts the lists back).

    The text is ``json.dumps`` of ``{"disclosures": [...], "field_lists": [...],
    "redactions": ..., "child_keys": ...}`` byte for byte, each entry written on its own, and
    without a compact copy of each disclosure (a dict per child, a third of the ledger's
    time) nor a list per child key."""
    lists: dict[tuple[str, ...], int] = {}
    fields = map(tuple, map(itemgetter("fields"), disclosures))
    at = [lists.setdefault(named, len(lists)) for named in fields]
    parts = [
        '{"disclosures": [' + _disclosures_text(disclosures, at) + "]",
        '"field_lists": ' + json.dumps([list(named) for named in lists]),
        '"redactions": ' + json.dumps(redactions),
        '"child_keys": ' + json.dumps(child_keys) + "}",
    ]
    return ", ".join(parts).encode()


DISCLOSURE_KEYS = ("program_code", "child_local_id", "fields", "digest")
_DISCLOSURE = '{"program_code": "%s", "child_local_id": "%s", "fields": %d, "digest": "%s"}'


def _disclosures_text(disclosures: Sequence[dict[str, Any]], at: list[int]) -> str:
    """The disclosures as ``json.dumps`` writes their list, without its brackets, each one's
    fields named by its position in ``at``. When every disclosure has the usual keys in order
    and plain texts (:func:`_plain`, checked once for them all), one template filled for
    them all; else each disclosure written on its own."""
    if set(map(tuple, disclosures)) <= {DISCLOSURE_KEYS}:
        codes = list(map(itemgetter("program_code"), disclosures))
        ids = list(map(itemgetter("child_local_id"), disclosures))
        digests = list(map(itemgetter("digest"), disclosures))
        if _plain(codes + ids + digests):
            cells: list[Any] = [None] * (4 * len(at))  # one row after the other, no tuple each
            cells[0::4], cells[1::4], cells[2::4], cells[3::4] = codes, ids, at, digests
            return ", ".join([_DISCLOSURE] * len(at)) % tuple(cells)
    return ", ".join(json.dumps({**d, "fields": i}) for d, i in zip(disclosures, at, strict=True))


def _plain(texts: list[Any]) -> bool:
    """Whether every one of ``texts`` is a ``str`` (not a subclass) that ``json.dumps`` writes
    as it is between quotes (printable ASCII but ``"`` and backslash): then the text in
    quotes is exactly what it writes."""
    if not set(map(type, texts)) <= {str}:
        return False
    joined = "".join(texts)
    return joined.isascii() and joined.isprintable() and '"' not in joined and "\\" not in joined


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
        child_keys: dict[str, Sequence[Sequence[str]]] = {}
        for name, (frame, keys) in frames.items():
            spec = next((s for s in p.specs if s.file_name == name), None)
            items.append(Staging(tables.get((code, name), frame), run_id, code, name))
            named.append((name, list(spec.key) if spec else []))
            child_keys[name] = keys  # pairs: JSON writes a tuple as a list
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
