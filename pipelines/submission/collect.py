"""What a program's chunks add up to while its batch is prepared."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

ChildKey = tuple[str, str]


@dataclass
class Collected:
    """One program's outgoing frames, ledger lines and counts, gathered chunk by chunk."""

    artifacts: dict[str, list[pd.DataFrame]] = field(default_factory=dict)
    keys: dict[str, list[ChildKey]] = field(default_factory=dict)
    disclosures: list[dict[str, Any]] = field(default_factory=list)
    redactions: list[dict[str, Any]] = field(default_factory=list)
    aggregate: list[pd.DataFrame] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=lambda: {"considered": 0, "disclosed": 0})
    reasons: dict[str, int] = field(default_factory=dict)
    removals: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)

    def keep(self, name: str, frame: pd.DataFrame, keys: list[ChildKey]) -> None:
        """Add rows to the outgoing frame ``name``; ``keys`` names each row's child."""
        self.artifacts.setdefault(name, []).append(frame)
        self.keys.setdefault(name, []).extend(keys)


def count_into(target: dict[str, int], values: pd.Series) -> None:
    """Add the value counts of ``values`` to ``target``."""
    for key, n in values.value_counts().items():
        if n:
            target[str(key)] = target.get(str(key), 0) + int(n)


def counts_by_program(programs: pd.Series, values: pd.Series) -> dict[str, list[tuple[str, int]]]:
    """Per program (as text), the counts of its ``values`` (as text) in the order
    ``value_counts`` gives them (most first, ties in order of first appearance): what
    :func:`count_into` adds per program, every program counted at once."""
    frame = pd.DataFrame(
        {"program": programs.astype(str).to_numpy(), "value": values.astype(str).to_numpy()}
    )
    sizes = frame.groupby(["program", "value"], sort=False).size()
    out: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for (program, value), n in sizes.items():
        out[str(program)].append((str(value), int(n)))
    return {program: sorted(items, key=lambda item: -item[1]) for program, items in out.items()}
