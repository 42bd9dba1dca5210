"""Reconciling a file drop's unlogged batch: what the log says happened must never be less
than what did, and never something that provably did not (45 CFR 1303.51: every disclosure
logged).

The table names each case; the property runs a model of a file drop (steps in order, a kill
after any of them, a state that takes whole folders, greedily or only complete ones) and
checks :func:`decide` against the truth of the model, written from the rule, not from the code.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.submission.arrival import Marks, Verdict, decide

NONE, UPLOAD, BOTH = Marks(False, False), Marks(True, False), Marks(True, True)


@pytest.mark.parametrize(
    ("whole", "shows", "missing", "marks", "expected"),
    [
        pytest.param(True, False, True, BOTH, Verdict.ARRIVED, id="own-manifest-there-arrived"),
        pytest.param(True, None, False, NONE, Verdict.ARRIVED, id="held-by-a-database-arrived"),
        pytest.param(True, False, True, NONE, Verdict.ARRIVED, id="arrived-even-without-marks"),
        pytest.param(False, True, False, BOTH, Verdict.NOT_ARRIVED, id="mid-rename-remnants"),
        pytest.param(False, True, False, UPLOAD, Verdict.NOT_ARRIVED, id="part-files-there"),
        pytest.param(False, True, True, UPLOAD, Verdict.NOT_ARRIVED, id="some-parts-unwritten"),
        pytest.param(False, False, True, BOTH, Verdict.TAKEN, id="published-then-taken"),
        pytest.param(False, True, True, BOTH, Verdict.TAKEN, id="visible-files-taken-parts-left"),
        pytest.param(False, False, True, UPLOAD, Verdict.PARTS_TAKEN, id="parts-taken-logged"),
        pytest.param(False, False, True, NONE, Verdict.NOT_ARRIVED, id="never-written"),
        pytest.param(False, False, True, Marks(False, True), Verdict.TAKEN, id="publish-mark-only"),
        pytest.param(False, None, False, BOTH, Verdict.NOT_ARRIVED, id="not-a-file-drop"),
    ],
)
def test_reconcile_decision(
    whole: bool, shows: bool | None, missing: bool, marks: Marks, expected: Verdict
) -> None:
    assert decide(whole=whole, shows=shows, missing=missing, marks=marks) is expected


LOGGED = {"arrived", "taken", "parts_taken"}

# -- a model of a file drop's delivery, from the rule -------------------------------------


@dataclass
class Folder:
    """The batch's folder at the destination: files by name -> whose (``old``: an earlier
    logged batch of the same date; ``new``: the crashed run's), and whose manifest."""

    files: dict[str, str]
    manifest: str | None


def steps(names: list[str]) -> list[tuple[str, str]]:
    """A file drop's delivery, in order: mark, write each ``.part``, mark, drop the old
    manifest, rename each, write the manifest's ``.part``, rename it."""
    return [
        ("mark", "upload"),
        *(("write", n) for n in names),
        ("mark", "publish"),
        ("unmanifest", ""),
        *(("rename", n) for n in names),
        ("write", "manifest"),
        ("rename", "manifest"),
    ]


@given(
    files=st.integers(min_value=1, max_value=3),
    crash_after=st.integers(min_value=0, max_value=20),
    earlier=st.booleans(),
    state=st.sampled_from(["away", "complete-only", "greedy", "visible-only"]),
)
def test_decision_never_under_logs_and_never_logs_what_provably_did_not_happen(
    files: int, crash_after: int, earlier: bool, state: str
) -> None:
    names = [f"f{i}.csv" for i in range(files)]
    plan = steps(names)[: crash_after + 1]  # past the last step: it was not killed at all
    folder = Folder({n: "old" for n in names}, "old") if earlier else Folder({}, None)
    upload = publish = False
    new_bytes_left = False  # any byte of the crashed batch reached the state's server
    for step, name in plan:
        if step == "mark":
            upload, publish = upload or name == "upload", publish or name == "publish"
        elif step == "write":
            folder.files[f".{name}.part"] = "new"
            new_bytes_left = True
        elif step == "unmanifest":
            folder.manifest = None
        elif name == "manifest":
            del folder.files[".manifest.part"]
            folder.manifest = "new"
        else:
            folder.files[name] = folder.files.pop(f".{name}.part")
    # then the state takes a folder whole (files and manifest), greedily or only a complete
    # one, or takes every file it can see and leaves the hidden (``.part``) ones
    arrived_whole = folder.manifest == "new"  # the batch's own manifest: complete, readable
    if state == "visible-only":
        taken = {n: w for n, w in folder.files.items() if not n.startswith(".")}
        left = Folder({n: w for n, w in folder.files.items() if n.startswith(".")}, None)
    elif state == "greedy" or (state == "complete-only" and folder.manifest is not None):
        taken, left = dict(folder.files), Folder({}, None)
    else:
        taken, left = {}, folder
    truth = arrived_whole or "new" in taken.values()
    shows = bool(left.files)  # the crashed batch's files, or an earlier batch's
    missing = any(n not in left.files and f".{n}.part" not in left.files for n in names)
    verdict = decide(
        whole=left.manifest == "new", shows=shows, missing=missing, marks=Marks(upload, publish)
    )
    logged = verdict.value in LOGGED
    if truth:
        assert logged, "a disclosure that happened is logged"
    if logged and not truth:
        # the one case nothing can tell apart from a batch taken away: the upload marked,
        # then killed before its first byte was written (the folder shows nothing of it)
        assert upload and not new_bytes_left and not shows
    if not upload and not publish:
        assert not logged or arrived_whole, "nothing left us: nothing logged"
    if logged and not arrived_whole:
        assert verdict in (Verdict.TAKEN, Verdict.PARTS_TAKEN), "marked as presumed"
