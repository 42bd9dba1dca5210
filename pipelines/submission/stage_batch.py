"""Stage a prepared program batch encrypted at rest, and describe it without PII."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pipelines.staging import staging_key
from privacy.reasons import Reason

if TYPE_CHECKING:
    from pipelines.submission.prepare import Preparation


def stage_program(p: Preparation, code: str, frames: dict[str, Any], report: str) -> dict[str, Any]:
    """Encrypt the program's frames, ledger lines and the child each row belongs to into the
    run's staged store (:mod:`pipelines.staged_store`); return the reference the deliver step
    takes (locations, digests, counts: nothing that names a child)."""
    context, c = p.context, p.collected[code]
    key = staging_key(context.settings.staging_key_file)
    artifacts = []
    child_keys: dict[str, list[list[str]]] = {}
    for name, (frame, keys) in frames.items():
        spec = next((s for s in p.specs if s.file_name == name), None)
        ref = context.staged.put(frame, key, run_id=context.run.run_id, program=code, name=name)
        artifacts.append(
            {"name": name, "ref": ref.to_dict(), "key_columns": list(spec.key) if spec else []}
        )
        child_keys[name] = [list(k) for k in keys]
    ledger = json.dumps(
        {"disclosures": c.disclosures, "redactions": c.redactions, "child_keys": child_keys}
    ).encode()
    ledger_ref = context.staged.put(
        ledger, key, run_id=context.run.run_id, program=code, name="ledger.json"
    )
    counts = {
        **c.counts,
        "withheld_by_reason": {
            k: v for k, v in c.reasons.items() if k != Reason.DISCLOSED.value and v
        },
        "fields_removed_by_reason": c.removals,
        "quarantined_by_rule": c.quarantined,
        "rows": {a["name"]: a["ref"]["rows"] for a in artifacts},
    }
    return {
        "program": code,
        "run_date": context.run.run_date.isoformat(),
        "artifacts": artifacts,
        "ledger": ledger_ref.to_dict(),
        "counts": counts,
        "report": report,
    }
