"""What an Ed-Fi delivery, withdrawal or dry run reports.

Children are named by their child key (program code, local id). ``ResourceResult.natural_key``
is the resource's Ed-Fi natural key — it holds the ``studentUniqueId`` (a state student id or
pseudonym) and dates, so it is for matching and reconciling, never for logs or reports.
Problem texts come from :func:`pipelines.edfi.client.problem_message` (values removed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.destinations.base import ChildKey, DeliveryResult
from pipelines.edfi.rows import NotSent


@dataclass(frozen=True)
class ResourceResult:
    """The fate of one resource: ``sent`` (accepted now), ``unchanged`` (held already),
    ``rejected`` (refused; ``problem`` says why) or ``skipped`` (an earlier resource of the
    same child was refused)."""

    resource: str
    child_key: ChildKey | None
    status: str
    natural_key: dict[str, Any]
    http_status: int | None = None
    problem: str | None = None


@dataclass
class EdfiDeliveryResult(DeliveryResult):
    """A :class:`DeliveryResult` with the Ed-Fi detail."""

    not_sent: list[NotSent] = field(default_factory=list)
    resources: list[ResourceResult] = field(default_factory=list)
    unmapped_fields: tuple[str, ...] = ()

    def counts(self) -> dict[str, dict[str, int]]:
        """resource -> status -> count."""
        table: dict[str, dict[str, int]] = {}
        for item in self.resources:
            row = table.setdefault(item.resource, {})
            row[item.status] = row.get(item.status, 0) + 1
        return table


@dataclass(frozen=True)
class WithdrawResult:
    """One resource of a child whose consent was revoked: ``deleted``, ``already_absent`` or
    ``failed`` (``problem`` says why)."""

    child_key: ChildKey
    resource: str
    status: str
    http_status: int | None = None
    problem: str | None = None


@dataclass(frozen=True)
class DryRun:
    """The files a dry run wrote (resource -> JSONL path) and what mapping withheld."""

    files: dict[str, Path]
    not_sent: list[NotSent]


def summarize(result: EdfiDeliveryResult) -> None:
    """Fill ``accepted`` (children of whom a resource is held), ``rejected`` (children
    with a refused resource, by problem) and ``rows`` (records the API accepted now, per
    resource) from ``resources``."""
    for item in result.resources:
        if item.status == "sent":
            result.rows[item.resource] = result.rows.get(item.resource, 0) + 1
        if item.child_key is None:
            continue
        if item.status in ("sent", "unchanged"):
            result.accepted.add(item.child_key)
        elif item.status == "rejected":
            problem = f"{item.resource}: {item.problem}"
            previous = result.rejected.get(item.child_key)
            result.rejected[item.child_key] = f"{previous}; {problem}" if previous else problem
