"""One destination interface: what a state system is handed and what it says back.

A submission hands a destination one :class:`Batch` (the artifacts of one program for one
run: files for a file drop, tables for a staging database, resources for Ed-Fi) and gets a
:class:`DeliveryResult` naming exactly which children's records the destination accepted; only
those are written to the disclosure log. ``holds`` lets the next run reconcile a batch whose
delivery outcome was never recorded (a crash between sending and logging).

Errors: :class:`DeliveryError` is the root; :class:`TransientDeliveryError` (worth a retry:
connection refused or dropped, timeouts, 429/5xx) and :class:`TerminalDeliveryError` (not worth
one: authentication, a rejected layout). Messages never contain record values.

File drops also have ``discard`` (optional, not in the protocol: reconciliation looks for it),
which removes what a batch killed mid-upload left in its folder (:class:`Discarded`), and take
a ``progress`` callback in ``deliver`` (:data:`Progress`): told :data:`UPLOAD` just before the
first ``.part`` file is written and :data:`PUBLISH` just before the old manifest goes and the
first file gets its final name, it records each durably before the step starts, so the next run
can tell a batch that never left from one the state took away whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:  # pandas loads only where frames are built: `datashare` starts faster
    import pandas as pd

ChildKey = tuple[str, str]
"""(program code, program-local child id): how a delivered record is named."""

Step = Literal["upload", "publish"]
UPLOAD: Step = "upload"
PUBLISH: Step = "publish"
Progress = Callable[[Step], None]
"""A file drop's ``deliver(batch, progress=...)`` calls it, and waits for it, just before
each step (:data:`UPLOAD`, :data:`PUBLISH`); an attempt retried calls it again."""


def no_progress(step: Step) -> None:
    """The :data:`Progress` of a delivery no one follows (a dry run, a test)."""


@dataclass(frozen=True)
class Artifact:
    """One outgoing file or table: rows already in the target layout, only permitted columns.

    ``key_columns`` identify a row at the destination (upserts); ``child_keys`` names, row by
    row, the child each row belongs to (empty for aggregate artifacts) and never leaves.
    """

    name: str
    frame: pd.DataFrame
    key_columns: tuple[str, ...] = ()
    child_keys: tuple[ChildKey, ...] = ()

    def csv_bytes(self) -> bytes:
        """The artifact as CSV (UTF-8, header, ``\\n`` line ends): what file drops receive."""
        return self._csv

    @cached_property
    def _csv(self) -> bytes:
        # rendered once: the digest, the batch digest, the manifest and the write all read it
        from pipelines.destinations.csv_text import csv_bytes  # as pandas writes it, faster

        return csv_bytes(self.frame)

    @cached_property
    def sha256(self) -> str:
        """SHA-256 of :meth:`csv_bytes`, the digest manifests and ledgers record."""
        return hashlib.sha256(self._csv).hexdigest()


@dataclass(frozen=True)
class Batch:
    """What one program sends to one destination in one run."""

    run_id: str
    run_date: str
    program_code: str
    artifacts: tuple[Artifact, ...]

    @property
    def digest(self) -> str:
        """A digest over every artifact's name and digest, stable across reruns."""
        parts = sorted(f"{a.name}:{a.sha256}" for a in self.artifacts)
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    @property
    def child_keys(self) -> frozenset[ChildKey]:
        """Every child with a row in any artifact."""
        return frozenset(k for a in self.artifacts for k in a.child_keys)

    def only(self, children: Collection[ChildKey], *, program_artifacts: bool = True) -> Batch:
        """The batch with only the rows of ``children`` (a record artifact left with no row
        is left out); artifacts that belong to no child (aggregates) are kept when
        ``program_artifacts``."""
        kept = []
        for artifact in self.artifacts:
            if not artifact.child_keys:
                if program_artifacts and not artifact.frame.empty:
                    kept.append(artifact)
                continue
            mask = [k in children for k in artifact.child_keys]
            if not any(mask):
                continue
            kept.append(
                Artifact(
                    artifact.name,
                    artifact.frame.loc[mask].reset_index(drop=True),
                    artifact.key_columns,
                    tuple(k for k, m in zip(artifact.child_keys, mask, strict=True) if m),
                )
            )
        return Batch(self.run_id, self.run_date, self.program_code, tuple(kept))


@dataclass
class DeliveryResult:
    """What the destination accepted: children whose records it took, and per-child problems
    (problem text from the destination, never our record values)."""

    accepted: set[ChildKey] = field(default_factory=set)
    rejected: dict[ChildKey, str] = field(default_factory=dict)
    location: str = ""
    sent_nothing_new: bool = False
    carried: dict[ChildKey, tuple[str, ...]] | None = None
    """When the destination says it: per child, exactly what it took now (e.g. Ed-Fi's
    ``resource:field``); only these children are logged, with these fields."""
    replaced: dict[ChildKey, tuple[str, ...]] = field(default_factory=dict)
    """Per child, old copies the destination deleted because their natural key changed
    (what was deleted: resources or files, never values)."""
    rows: dict[str, int] = field(default_factory=dict)
    """What the destination took now, per file, table or resource: rows in the files written
    (file drops), rows inserted or updated (staging database), records accepted (Ed-Fi).
    Empty when nothing new was sent; the run summary's ``rows_delivered`` adds these up."""
    rows_deleted: dict[str, int] = field(default_factory=dict)
    """What the destination deleted now, per table or resource (old copies a changed natural
    key left behind; withdrawals deleted after ``deliver`` are counted by the caller). Apart
    from ``rows``: the run summary's ``rows_deleted`` adds these up."""


@dataclass(frozen=True)
class Discarded:
    """What ``discard`` removed from a batch's folder: file names only, never contents.

    ``vouched_by`` is the run id of the complete manifest left in the folder (another batch's:
    its files were kept), ``None`` when no manifest is there. ``folder_removed`` says the
    folder was left empty and removed too."""

    folder: str
    removed: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    vouched_by: str | None = None
    folder_removed: bool = False

    def describe(self) -> str:
        """For the run summary: how many files went, from which folder (names, no values)."""
        what = f"removed {len(self.removed)} file{'s' if len(self.removed) != 1 else ''}"
        text = f"{what} of it from {self.folder}"
        if self.folder_removed:
            text += " (the folder, left empty, too)"
        if self.kept:
            text += f"; kept {len(self.kept)} the manifest of run {self.vouched_by} vouches for"
        return text


class Destination(Protocol):
    """A state system that receives batches."""

    name: str

    def deliver(self, batch: Batch) -> DeliveryResult:
        """Send ``batch``; idempotent: resending an unchanged batch sends nothing new."""
        ...

    def holds(self, batch: Batch) -> bool:
        """Whether the destination already holds exactly this batch (for reconciliation)."""
        ...


class DeliveryError(Exception):
    """Root of every delivery failure."""


class TransientDeliveryError(DeliveryError):
    """A failure worth retrying: the destination was unreachable or overloaded."""


class TerminalDeliveryError(DeliveryError):
    """A failure a retry will not fix: bad credentials, a refused host key, a rejected layout."""
