"""Local folder destination: atomic files, manifest last, idempotent, exact ``holds``."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from pipelines.destinations.base import (
    Artifact,
    Batch,
    TerminalDeliveryError,
    TransientDeliveryError,
)
from pipelines.destinations.local import MANIFEST, LocalFolderDestination
from tests.pipelines.batches import make_batch


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_when_delivered_then_files_and_manifest_match_the_batch(tmp_path: Path) -> None:
    destination = LocalFolderDestination("demo", tmp_path)
    batch = make_batch(4, run_id="run-1")
    result = destination.deliver(batch)
    folder = tmp_path / "2026-11-27" / "VT-HS-01"
    assert result.location == str(folder)
    assert result.accepted == set(batch.child_keys) and len(result.accepted) == 4
    assert not result.sent_nothing_new
    assert sorted(p.name for p in folder.iterdir()) == [
        "hs_child_identity.csv",
        "hs_enrollment.csv",
        MANIFEST,
    ]
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["run_id"] == "run-1" and manifest["batch_digest"] == batch.digest
    for entry, artifact in zip(manifest["files"], batch.artifacts, strict=True):
        assert entry["name"] == artifact.name
        assert entry["rows"] == 4
        assert entry["sha256"] == artifact.sha256 == sha(folder / artifact.name)
        assert (folder / artifact.name).read_bytes() == artifact.csv_bytes()
        assert stat.S_IMODE((folder / artifact.name).stat().st_mode) == 0o600
    assert destination.holds(batch)


def test_when_resent_unchanged_then_nothing_is_rewritten(tmp_path: Path) -> None:
    destination = LocalFolderDestination("demo", tmp_path)
    destination.deliver(make_batch(3, run_id="run-1"))
    folder = tmp_path / "2026-11-27" / "VT-HS-01"
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}
    again = destination.deliver(make_batch(3, run_id="run-2"))
    assert again.sent_nothing_new
    assert again.accepted == set(make_batch(3).child_keys)
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}
    assert after == before
    assert json.loads((folder / MANIFEST).read_text())["run_id"] == "run-1"


def test_when_one_file_changes_then_only_it_and_the_manifest_are_rewritten(tmp_path: Path) -> None:
    destination = LocalFolderDestination("demo", tmp_path)
    first = make_batch(3)
    destination.deliver(first)
    folder = tmp_path / "2026-11-27" / "VT-HS-01"
    identity_inode = (folder / "hs_child_identity.csv").stat().st_ino
    changed = Batch(
        "run-2",
        first.run_date,
        first.program_code,
        (first.artifacts[0], make_batch(3, seed=7).artifacts[1]),
    )
    result = destination.deliver(changed)
    assert not result.sent_nothing_new
    assert (folder / "hs_child_identity.csv").stat().st_ino == identity_inode
    assert (folder / "hs_enrollment.csv").read_bytes() == changed.artifacts[1].csv_bytes()
    assert destination.holds(changed) and not destination.holds(first)


@pytest.mark.parametrize(
    "damage",
    [
        lambda folder: (folder / MANIFEST).unlink(),
        lambda folder: (folder / "hs_enrollment.csv").unlink(),
        lambda folder: (folder / "hs_enrollment.csv").write_text("ProgramID\nforged\n"),
        lambda folder: (folder / MANIFEST).write_text("{not json"),
    ],
    ids=["manifest_missing", "file_missing", "file_altered", "manifest_garbled"],
)
def test_when_folder_damaged_then_not_held_and_redelivery_repairs_it(
    tmp_path: Path, damage
) -> None:  # type: ignore[no-untyped-def]
    destination = LocalFolderDestination("demo", tmp_path)
    batch = make_batch(2)
    destination.deliver(batch)
    folder = tmp_path / "2026-11-27" / "VT-HS-01"
    damage(folder)
    assert not destination.holds(batch)
    assert not destination.deliver(batch).sent_nothing_new
    assert destination.holds(batch)
    assert not list(folder.glob(".*.part"))


def test_when_batch_drops_an_artifact_then_the_stale_file_goes(tmp_path: Path) -> None:
    destination = LocalFolderDestination("demo", tmp_path)
    batch = make_batch(2)
    destination.deliver(batch)
    smaller = Batch("run-2", batch.run_date, batch.program_code, batch.artifacts[:1])
    destination.deliver(smaller)
    folder = tmp_path / "2026-11-27" / "VT-HS-01"
    assert sorted(p.name for p in folder.iterdir()) == ["hs_child_identity.csv", MANIFEST]


def test_holds_is_false_for_a_batch_never_sent(tmp_path: Path) -> None:
    assert not LocalFolderDestination("demo", tmp_path).holds(make_batch(1))


@pytest.mark.parametrize(
    ("run_date", "program", "artifact"),
    [
        ("2026-11-27", "../etc", "a.csv"),
        ("2026/11/27", "VT-HS-01", "a.csv"),
        ("2026-11-27", "VT-HS-01", "../a.csv"),
        ("2026-11-27", "VT-HS-01", MANIFEST),
        ("2026-11-27", "VT-HS-01", ".hidden"),
    ],
    ids=[
        "program_escapes",
        "date_with_slashes",
        "artifact_escapes",
        "artifact_is_manifest",
        "hidden",
    ],
)
def test_when_names_are_not_plain_then_terminal(
    tmp_path: Path, run_date: str, program: str, artifact: str
) -> None:
    import pandas as pd

    batch = Batch("r", run_date, program, (Artifact(artifact, pd.DataFrame({"a": [1]})),))
    with pytest.raises(TerminalDeliveryError):
        LocalFolderDestination("demo", tmp_path / "root").deliver(batch)
    assert not (tmp_path / "root").exists()


def test_when_root_is_not_a_folder_then_terminal(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.write_text("a file, not a folder")
    with pytest.raises(TerminalDeliveryError, match="cannot write"):
        LocalFolderDestination("demo", root).deliver(make_batch(1))


def test_every_file_is_flushed_to_disk_before_publishing_and_before_its_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after the publish mark must never find a renamed file the disk does not hold
    whole: every ``.part`` file, the manifest's included, is written after the upload mark and
    on disk before the first rename (its flush runs with the publish mark's commit, both done
    before the publish step)."""
    events = recorded_fsyncs_and_renames(monkeypatch)
    batch = make_batch(3, run_id="run-1")
    LocalFolderDestination("demo", tmp_path).deliver(batch, progress=lambda s: events.append(s))
    parts = [f".{a.name}.part" for a in batch.artifacts] + [f".{MANIFEST}.part"]
    first_rename = min(i for i, e in enumerate(events) if e.startswith("rename"))
    flushed = [e.removeprefix("fsync ") for e in events[:first_rename] if e.startswith("fsync .")]
    assert sorted(flushed) == sorted(parts), "the manifest's .part too, before any rename"
    assert events.index("upload") < min(events.index(f"fsync {p}") for p in parts)
    assert events.index("publish") < first_rename
    assert not [e for e in events[first_rename:] if e.startswith("fsync .")], "no file after"


def recorded_fsyncs_and_renames(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every fsync (of the file or folder's name), noted once it returned (the name or bytes
    on disk), and rename (of its source), from now on."""
    import os

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        name = Path(os.readlink(f"/proc/self/fd/{fd}")).name
        real_fsync(fd)
        events.append("fsync " + name)

    def replace(source: str | Path, target: str | Path) -> None:
        events.append("rename " + Path(source).name)
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def test_the_folders_names_are_flushed_before_the_manifest_and_before_delivery_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file's fsync makes its bytes durable, not its name: after a power loss a manifest
    must not vouch for files whose renames were lost, nor a logged batch's folder be gone.
    The program folder is flushed after the files' renames (before the manifest's) and again
    after the manifest's, last; the new date and program folders into their parents with
    the files' flush. All before ``deliver`` returns."""
    root = tmp_path / "drop"
    root.mkdir()
    events = recorded_fsyncs_and_renames(monkeypatch)
    batch = make_batch(3, run_id="run-1")
    LocalFolderDestination("demo", root).deliver(batch, progress=lambda s: events.append(s))
    last_file = max(events.index(f"rename .{a.name}.part") for a in batch.artifacts)
    manifest = events.index(f"rename .{MANIFEST}.part")
    assert "fsync VT-HS-01" in events[last_file:manifest]
    assert events[manifest + 1 :] == ["fsync VT-HS-01"], "the manifest's name on disk at return"
    assert events.count("fsync drop") == events.count("fsync 2026-11-27") == 1, "new folders"
    assert events.index("upload") < events.index("fsync 2026-11-27") < last_file

    events.clear()
    LocalFolderDestination("demo", root).deliver(make_batch(4, run_id="run-2"))
    assert "fsync drop" not in events and "fsync 2026-11-27" not in events
    assert events.count("fsync VT-HS-01") == 2 and events[-1] == "fsync VT-HS-01"
    assert events.index("fsync VT-HS-01") < events.index(f"rename .{MANIFEST}.part")


@pytest.mark.parametrize("fails", ["publish mark", "flush"])
def test_when_the_publish_mark_or_a_flush_fails_then_nothing_is_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    """The publish mark and the files' flush run together: either failing stops the batch
    before the old manifest goes or any file takes its final name (after both are done)."""
    import os

    destination = LocalFolderDestination("demo", tmp_path)
    first = make_batch(3, run_id="earlier")
    destination.deliver(first)
    events = recorded_fsyncs_and_renames(monkeypatch)
    recorded = os.fsync

    def refused(step: str) -> None:
        if step == "publish" and fails == "publish mark":
            raise LookupError("not recorded")

    def flush(fd: int) -> None:
        if fails == "flush" and Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith("."):
            raise OSError("disk full")
        recorded(fd)

    monkeypatch.setattr(os, "fsync", flush)
    expected = LookupError if fails == "publish mark" else TransientDeliveryError
    with pytest.raises(expected):
        destination.deliver(make_batch(5, run_id="later", seed=1), progress=refused)
    monkeypatch.undo()
    assert not [e for e in events if e.startswith("rename")]
    assert destination.holds(first), "the old folder is whole: its manifest is still there"
    if fails == "publish mark":  # the flushes still ran to their end
        assert sorted(e for e in events if e.startswith("fsync .")) == [
            "fsync .hs_child_identity.csv.part",
            "fsync .hs_enrollment.csv.part",
            f"fsync .{MANIFEST}.part",
        ]


def test_the_files_and_manifest_are_byte_for_byte_what_they_were(tmp_path: Path) -> None:
    """The bytes written (files and manifest) are exactly those of the batch: pinned digests
    of a fixed batch, as written before the manifest joined the files' flush."""
    batch = make_batch(3, run_id="run-1")
    LocalFolderDestination("demo", tmp_path).deliver(batch)
    folder = tmp_path / "2026-11-27" / "VT-HS-01"
    assert {p.name: sha(p)[:16] for p in folder.iterdir()} == PINNED


PINNED = {
    "hs_child_identity.csv": "b4c3934ad1e9a685",
    "hs_enrollment.csv": "3eb4a1711d1408e8",
    MANIFEST: "1cad51503a424f8d",
}
"""The first 16 hex digits of each file's SHA-256, as the code before the change wrote them."""


def test_a_forked_process_flushes_on_threads_of_its_own() -> None:
    """The flush threads are started once per process: a process forked after a delivery
    (whose copy of them runs nothing) starts its own instead of waiting forever."""
    import os
    import signal

    from pipelines.destinations.local import at_once

    ran: list[int] = []
    at_once(lambda: ran.append(0), lambda: ran.append(1))
    assert sorted(ran) == [0, 1]
    child = os.fork()
    if child == 0:  # pragma: no cover -- the child reports by its exit code
        signal.alarm(10)
        at_once(lambda: None, lambda: ran.append(2))
        os._exit(0 if ran[-1] == 2 else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
