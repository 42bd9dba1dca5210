"""Turning a prepared (staged, encrypted) program batch back into a destination ``Batch``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pipelines.destinations.base import Artifact, Batch
from pipelines.staged_store import Prefetched, Readable, load_frame, load_raw
from pipelines.staging import StagedRef, staging_key
from pipelines.submission.context import RunContext


def load_batch(
    context: RunContext,
    prepared: dict[str, Any],
    ledger: dict[str, Any],
    run_id: str | None = None,
    store: Readable | None = None,
) -> Batch:
    """The batch ``prepared`` describes, decrypted from its staged files; ``ledger`` (from
    :func:`load_ledger`) says which child each row belongs to.

    The batch keeps the identity of the run that staged it: its run id (``run_id``, given when
    that run is not this one, as in reconciliation) and its run date (``prepared["run_date"]``,
    staged with it). A crashed run's batch reconciled on a later night is looked for where that
    run put it (a file drop's ``{run_date}/{program}/`` folder) and its withdrawals file keeps
    that date, never tonight's. ``store`` hands out the staged bytes (default: the run's
    store; :func:`prefetch` reads a shard's at once)."""
    key = staging_key(context.settings.staging_key_file)
    store = store or context.staged
    child_keys = ledger["child_keys"]
    artifacts = tuple(
        Artifact(
            name=a["name"],
            frame=load_frame(store, StagedRef.from_dict(a["ref"]), key),
            key_columns=tuple(a["key_columns"]),
            child_keys=tuple((p, c) for p, c in child_keys[a["name"]]),
        )
        for a in prepared["artifacts"]
    )
    return Batch(
        run_id=run_id or context.run.run_id,
        run_date=prepared.get("run_date") or context.run.run_date.isoformat(),
        program_code=prepared["program"],
        artifacts=artifacts,
    )


def load_ledger(
    context: RunContext, prepared: dict[str, Any], store: Readable | None = None
) -> dict[str, Any]:
    """The disclosures (each with its list of ``fields``), redactions and child keys staged
    with the batch; a ledger staged with ``field_lists`` (:func:`.stage_batch.ledger_bytes`)
    has its lists put back, one shared list per distinct set of fields."""
    key = staging_key(context.settings.staging_key_file)
    ref = StagedRef.from_dict(prepared["ledger"])
    ledger: dict[str, Any] = json.loads(load_raw(store or context.staged, ref, key))
    lists = ledger.pop("field_lists", None)
    if lists is not None:
        for disclosure in ledger["disclosures"]:
            disclosure["fields"] = lists[disclosure["fields"]]
    return ledger


def _refs(prepared: Sequence[dict[str, Any]]) -> list[StagedRef]:
    return [
        StagedRef.from_dict(ref)
        for item in prepared
        for ref in (*(a["ref"] for a in item["artifacts"]), item["ledger"])
    ]


def prefetch(context: RunContext, prepared: Sequence[dict[str, Any]]) -> Prefetched:
    """The staged files of several batches read at once (one query on the database), for
    :func:`load_ledger` and :func:`load_batch` to check and open one by one."""
    return Prefetched(context.staged, _refs(prepared))


def remove_staged(context: RunContext, prepared: dict[str, Any]) -> None:
    """Delete the batch's staged files (they are no longer needed once logged)."""
    remove_staged_many(context, [prepared])


def remove_staged_many(context: RunContext, prepared: Sequence[dict[str, Any]]) -> None:
    """Delete the staged files of several batches at once (one delete on the database)."""
    context.staged.remove_many(_refs(prepared))
