"""Whether an unfinished file-drop delivery's disclosures happened, from what its folder still
shows and how far its delivery row's marks say it got (:mod:`.marks`); reconciliation
(:mod:`.reconcile`) logs, presumes or discards by it. Never under-state a disclosure: a batch
the state may have taken is logged as presumed arrived; one that never began its upload is
not logged."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Marks:
    """How far a file drop's batch got, as its delivery row says (``deliveries``'
    ``upload_began_at``, ``publish_began_at``; :mod:`.marks`)."""

    upload_began: bool
    publish_began: bool


class Verdict(Enum):
    """What reconciliation concludes about an unfinished delivery (:func:`decide`)."""

    ARRIVED = "arrived"
    TAKEN = "taken"
    PARTS_TAKEN = "parts_taken"
    NOT_ARRIVED = "not_arrived"


PRESUMED = {
    Verdict.TAKEN: "presumed arrived: its publish had begun and the destination no longer "
    "shows it, or not all of it (the state took it); its snapshot goes again",
    Verdict.PARTS_TAKEN: "presumed arrived: its upload had begun (.part files, never "
    "published) and the destination no longer shows its folder (the state took it); its "
    "snapshot goes again",
}
"""The verdicts that log a batch the destination no longer shows, with the run summary's
words for each."""


def decide(*, whole: bool, shows: bool | None, missing: bool, marks: Marks) -> Verdict:
    """Whether an unfinished delivery's disclosures happened (see the module doc).

    ``whole``: the destination holds the batch, or its own manifest (it arrived). ``shows``:
    something of the batch (a file of its names, a ``.part`` file, a file another run's
    manifest keeps) is in its folder, ``None`` for a destination that cannot say (not a file
    drop: no presumption). ``missing``: some file of the batch is there under no name (final,
    ``.pgp``, ``.part``).

    Publish begun: every file was written (as ``.part``) before it, and renaming keeps each
    under one name or the other, so a file under no name was published and then taken: the
    batch arrived, presumed, whether the state took the whole folder or only what it could
    see. Otherwise a folder that still shows the batch was not taken (nothing was published;
    a state takes what it takes whole): what it left goes and nothing is logged. A folder
    that shows nothing of it was taken, or never written: only the upload begun means its
    ``.part`` files reached the state's server and went with the state; never published, but
    nothing proves no one read them, so it is logged too (never under-state a disclosure).
    Neither mark: nothing left us, nothing is logged."""
    if whole:
        return Verdict.ARRIVED
    if shows is None:
        return Verdict.NOT_ARRIVED
    if marks.publish_began and missing:
        return Verdict.TAKEN
    if not shows and marks.upload_began:
        return Verdict.PARTS_TAKEN
    return Verdict.NOT_ARRIVED
