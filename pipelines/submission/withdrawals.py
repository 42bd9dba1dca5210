"""The withdrawals file of a file-drop destination (``schemas/formats/hs_withdrawals.yaml``).

A file drop cannot delete; when its formats include a ``withdrawals``-level spec, every
delivered folder carries that file, listing the children the state must delete, named exactly
as the identity file named them (the held row keys, so a pseudonym stays the pseudonym).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import pandas as pd

from pipelines.destinations.base import Artifact, ChildKey
from pipelines.submission.state import Held
from schemas.filespec import FileSpec

IDENTIFIERS = ("program_code", "child_local_id")


def withdrawals_spec(specs: Sequence[FileSpec]) -> FileSpec | None:
    """The destination's withdrawals spec, if its formats carry one."""
    return next((s for s in specs if s.level == "withdrawals"), None)


def _as_sent(key: ChildKey, held: Held, specs: Sequence[FileSpec]) -> dict[str, str]:
    """The child's program code and id as a record file carried them (its held row key)."""
    for spec in specs:
        if spec.level != "record" or spec.file_name not in held.rows:
            continue
        sources = {spec.column(name).source: i for i, name in enumerate(spec.key)}
        if all(s in sources for s in IDENTIFIERS) and held.rows[spec.file_name]:
            row = held.rows[spec.file_name][0]
            return {s: row[sources[s]] for s in IDENTIFIERS}
    return dict(zip(IDENTIFIERS, key, strict=True))


def withdrawals_artifact(
    spec: FileSpec,
    specs: Sequence[FileSpec],
    withdraw: Mapping[ChildKey, str],
    held: Mapping[ChildKey, Held],
    run_date: dt.date,
) -> Artifact:
    """The withdrawals file for ``withdraw`` (child -> reason), in ``spec``'s layout."""
    rows = []
    keys = []
    for key, reason in sorted(withdraw.items()):
        source = {**_as_sent(key, held[key], specs), "withdrawal_reason": reason}
        row = {}
        for column in spec.columns:
            value = source.get(column.source, "")
            if column.codes is not None:
                value = column.codes.get(str(value), "")
            elif column.type.value == "date" and column.source == "run_date":
                value = run_date.strftime(column.date_format)
            row[column.name] = value
        rows.append(row)
        keys.append(key)
    frame = pd.DataFrame(rows, columns=list(spec.column_names), dtype=object)
    return Artifact(spec.file_name, frame, tuple(spec.key), tuple(keys))
