"""Local folder destination, and the manifest every file drop writes last.

Each batch lands in ``{root}/{run_date}/{program_code}/``: every artifact as CSV, written under
a temporary name (``.name.part``) and renamed when complete, then ``manifest.json`` (file names,
row counts, SHA-256 of each file, run id) renamed into place last. A folder whose manifest is
present is complete. The manifest's ``.part`` file is written with the files' (its digests
are known before any file is written), and all of them are flushed to disk together, with
the names of the folders the batch created (into their parents), before the first rename;
the folder itself (its names) is flushed after the files' renames and again, before
``deliver`` returns, after the manifest's: a power loss cannot leave a manifest whose files
have lost their names (or their bytes), nor a logged batch the folder lost.

A folder being replaced keeps its old manifest while the new files are written under their
temporary names; it loses the manifest only then, just before they are renamed into place, so
a batch killed while writing leaves the old folder complete (and ``.part`` files nobody
reads). A ``progress`` callback hears each step before it starts
(``base.Progress``): the upload, then the publish (the old manifest goes, files take their
final names, the new manifest comes). The publish is told once every file is written, and
its mark is recorded while they are flushed to disk (both wait for a disk: together, the
waits overlap); nothing is published before both are done.

A batch killed mid-upload (before its manifest) leaves files no manifest vouches for and no
disclosure log entry explains: ``discard`` removes exactly them (:func:`discard_plan`), and the
folder when it is left empty; reconciliation calls it for a batch that did not arrive.

Idempotent: when the manifest already lists exactly the batch's files and digests (and the
files are there), nothing is rewritten and the result says ``sent_nothing_new``. ``holds``
compares the manifest's digests with the batch.

A file drop cannot delete. Each folder is the program's complete current snapshot (the
submission sends the whole of it whenever anything differs from the last one, see
``pipelines/submission/state.py``), so a state that replaces a program's data with each folder
is always right; and when the destination's formats include ``hs_withdrawals``
(``schemas/formats/hs_withdrawals.yaml``) each folder also lists the children the state must
delete from whatever it keeps (consent revoked, or no longer in the agreement's scope).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path, PurePath
from typing import Any

from pipelines.destinations.base import (
    PUBLISH,
    UPLOAD,
    Batch,
    DeliveryResult,
    Discarded,
    Progress,
    TerminalDeliveryError,
    TransientDeliveryError,
    no_progress,
)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "datashare-manifest/1"
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def check_batch_names(batch: Batch, destination: str) -> None:
    """Refuse names that are not plain file/folder names (``TerminalDeliveryError``)."""
    names = [batch.run_date, batch.program_code, *(a.name for a in batch.artifacts)]
    bad = [n for n in names if not _SAFE.fullmatch(n) or ".." in n]
    if bad or MANIFEST in names[2:]:
        raise TerminalDeliveryError(
            f"{destination}: run date, program code and artifact names must be plain names "
            f"(letters, digits, . _ -) other than {MANIFEST}"
        )
    if len(set(names[2:])) != len(names) - 2:
        raise TerminalDeliveryError(f"{destination}: two artifacts share a name")


def build_manifest(batch: Batch, stored: dict[str, tuple[str, str, int]]) -> dict[str, Any]:
    """The manifest of ``batch``; ``stored`` maps an artifact name to the
    (stored file name, its SHA-256, its size) it was written as."""
    files = []
    for artifact in batch.artifacts:
        stored_as, stored_sha, size = stored[artifact.name]
        files.append(
            {
                "name": artifact.name,
                "rows": len(artifact.frame),
                "sha256": artifact.sha256,
                "stored_as": stored_as,
                "stored_sha256": stored_sha,
                "bytes": size,
            }
        )
    return {
        "format": MANIFEST_FORMAT,
        "run_id": batch.run_id,
        "run_date": batch.run_date,
        "program_code": batch.program_code,
        "batch_digest": batch.digest,
        "files": files,
    }


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """The manifest as UTF-8 JSON."""
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")


def parse_manifest(data: bytes | None) -> dict[str, Any] | None:
    """A manifest read back, or ``None`` when absent or not a manifest of ours."""
    if data is None:
        return None
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return None
    if not isinstance(manifest.get("files"), list):
        return None
    return manifest


def manifest_matches(manifest: dict[str, Any] | None, batch: Batch) -> bool:
    """Whether ``manifest`` lists exactly ``batch``'s artifacts with the same digests."""
    if manifest is None or manifest.get("batch_digest") != batch.digest:
        return False
    try:
        listed = {f["name"]: f["sha256"] for f in manifest["files"]}
    except (KeyError, TypeError):
        return False
    return listed == {a.name: a.sha256 for a in batch.artifacts}


def stored_files(manifest: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The manifest's entries by stored file name."""
    if manifest is None:
        return {}
    return {
        f["stored_as"]: f for f in manifest["files"] if isinstance(f, dict) and "stored_as" in f
    }


def stale_files(old: dict[str, Any] | None, keep: Iterable[str]) -> list[str]:
    """Stored files the old manifest lists that the new batch does not write."""
    keep = set(keep)
    return sorted(name for name in stored_files(old) if name not in keep)


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def part_name(name: str) -> str:
    """The temporary name a file is written under before it is renamed to ``name``."""
    return f".{name}.part"


class Parts:
    """``.part`` files written and still open, to be flushed to disk together
    (:meth:`flushes`, run :func:`at_once`) before any of them is renamed into place. Closed on
    leaving the ``with`` block."""

    def __init__(self) -> None:
        self.written: list[tuple[Path, Path]] = []  # (the .part file, its final name)
        self._fds: list[int] = []

    def __enter__(self) -> Parts:
        return self

    def __exit__(self, *_: object) -> None:
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)

    def write(self, path: Path, data: bytes) -> Path:
        """Write ``data`` to ``.name.part`` beside ``path`` (:func:`write_part`); returns it.
        Not yet on disk for sure: :meth:`flushes` before it is committed."""
        partial, fd = write_part(path, data)
        self._fds.append(fd)
        self.written.append((partial, path))
        return partial

    def flushes(self) -> list[Callable[[], None]]:
        """An fsync of each file written, to run (:func:`at_once`) after all are written."""
        return [partial(os.fsync, fd) for fd in self._fds]


def at_once(*calls: Callable[[], object]) -> None:
    """Run ``calls`` at the same time, the first on this thread, and return when every one is
    done (raising the first error): each waits for the disk or the database, and the flushes
    waited for together overlap instead of following one another."""
    others = [_flusher().submit(call) for call in calls[1:]]
    try:
        calls[0]()
    finally:  # on an error here too, nothing goes on before the others are done
        wait(others)
    for other in others:
        other.result()


_FLUSHER: tuple[int, ThreadPoolExecutor] | None = None


def _flusher() -> ThreadPoolExecutor:
    """The threads :func:`at_once` runs on, started once per process (a forked process, whose
    copy has none running, starts its own)."""
    global _FLUSHER
    if _FLUSHER is None or _FLUSHER[0] != os.getpid():
        _FLUSHER = (os.getpid(), ThreadPoolExecutor(max_workers=8, thread_name_prefix="flush"))
    return _FLUSHER[1]


def write_part(path: Path, data: bytes) -> tuple[Path, int]:
    """Write ``data`` to ``.name.part`` beside ``path`` (mode 0600); returns it and its
    descriptor, still open (to fsync, then close)."""
    partial = path.with_name(part_name(path.name))
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        raise
    return partial, fd


def sync_folder(folder: Path) -> None:
    """fsync ``folder`` itself: the names created, renamed or removed in it are on disk (a
    file's own fsync makes its bytes durable, not its name)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents (mode 0700); returns the folders created,
    outermost first, whose names are not yet on disk for sure (each parent's
    :func:`sync_folder` makes them so)."""
    missing = []
    for level in (folder, *folder.parents):
        if level.exists():
            break
        missing.append(level)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return missing[::-1]


def commit_part(partial: Path, path: Path) -> None:
    """Rename a written ``.name.part`` to its final name, replacing what was there."""
    os.replace(partial, path)


def check_discard_names(run_date: str, program_code: str, names: Iterable[str]) -> list[str]:
    """The artifact names of a batch to discard, refused unless plain names (as in
    :func:`check_batch_names`: nothing outside the batch's folder can be named)."""
    names = list(names)
    bad = [n for n in (run_date, program_code, *names) if not _SAFE.fullmatch(n) or ".." in n]
    if bad or MANIFEST in names:
        raise TerminalDeliveryError(
            "discard: run date, program code and artifact names must be plain names"
        )
    return names


def discard_plan(
    present: Iterable[str], names: Iterable[str], manifest: dict[str, Any] | None, run_id: str
) -> tuple[list[str], list[str], str | None]:
    """What to remove from a folder a batch of run ``run_id`` did not arrive in whole: its
    artifact files (``names``, also as ``name.pgp``: stored encrypted, whatever the setting
    is now) and their ``.part`` files, the manifest's ``.part`` file. Returns (to remove, kept,
    the run id of the manifest vouching for the folder or ``None``).

    A file a complete manifest of *another* run lists is kept: that run's batch is whole there
    and logged (the folder is a same-day rerun's, or an unchanged earlier batch). A manifest of
    ``run_id`` itself vouches for nothing (the batch is not there as that manifest says: it is
    not logged), so it goes too. ``.part`` files are never complete and go (no manifest of
    ours lists one; a manifest that did would keep it: what a manifest lists stays). Only the
    names of the batch are ever removed: a file of another name (not ours, or another batch's
    that no manifest lists) stays, so nothing unexplained is deleted blindly either."""
    present = set(present)
    own = manifest is not None and manifest.get("run_id") == run_id
    vouched = set() if manifest is None or own else set(stored_files(manifest))
    candidates = {part_name(MANIFEST)} | ({MANIFEST} if own else set())
    for name in names:
        for stored in (name, f"{name}.pgp"):
            candidates |= {stored, part_name(stored)}
    ours = candidates & present
    remove = sorted(n for n in ours if n not in vouched)
    kept = sorted(ours & vouched)
    vouching = None if manifest is None or own else str(manifest.get("run_id", ""))
    return remove, kept, vouching


def folders_to_prune(folder: PurePath, root: PurePath) -> list[PurePath]:
    """The program folder, then its date folder: each removed when left empty (never the
    root)."""
    return [f for f in (folder, folder.parent) if f != root and root in f.parents]


class LocalFolderDestination:
    """A file drop in a local folder (the demo's state system)."""

    def __init__(self, name: str, root: Path | str) -> None:
        self.name = name
        self.root = Path(root)

    def folder(self, batch: Batch) -> Path:
        """Where ``batch`` lands."""
        return self.root / batch.run_date / batch.program_code

    def deliver(self, batch: Batch, progress: Progress | None = None) -> DeliveryResult:
        """Write the batch's files, then its manifest; nothing when already there.
        ``progress`` hears :data:`UPLOAD` before the first file is written and
        :data:`PUBLISH` before the old manifest goes (``base.Progress``)."""
        check_batch_names(batch, self.name)
        folder = self.folder(batch)
        try:
            return self._deliver(batch, folder, progress or no_progress)
        except (PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
            raise TerminalDeliveryError(
                f"{self.name}: cannot write {folder} ({type(exc).__name__})"
            ) from exc
        except OSError as exc:
            raise TransientDeliveryError(
                f"{self.name}: writing {folder} failed ({type(exc).__name__})"
            ) from exc

    def _deliver(self, batch: Batch, folder: Path, progress: Progress) -> DeliveryResult:
        accepted = set(batch.child_keys)
        old = self._read_manifest(folder)
        if self._holds(batch, folder, old):
            return DeliveryResult(accepted=accepted, location=str(folder), sent_nothing_new=True)
        created = make_folder(folder)
        stored: dict[str, tuple[str, str, int]] = {}
        written: dict[str, int] = {}
        progress(UPLOAD)
        with Parts() as parts:
            for artifact in batch.artifacts:
                data, digest = artifact.csv_bytes(), artifact.sha256  # rendered and digested once
                target = folder / artifact.name
                if not (target.is_file() and sha256_file(target) == digest):
                    parts.write(target, data)
                    written[artifact.name] = len(artifact.frame)
                stored[artifact.name] = (artifact.name, digest, len(data))
            files = list(parts.written)
            manifest = parts.write(folder / MANIFEST, manifest_bytes(build_manifest(batch, stored)))
            # every file written: the publish mark is recorded while they, the manifest and the
            # new folders' names are flushed to disk; all done, and only then does the old
            # folder stop being complete
            new_names = [partial(sync_folder, new.parent) for new in created]
            at_once(partial(progress, PUBLISH), *parts.flushes(), *new_names)
        (folder / MANIFEST).unlink(missing_ok=True)
        for part, target in files:
            commit_part(part, target)
        sync_folder(folder)  # the files' names on disk before the manifest vouches for them
        commit_part(manifest, folder / MANIFEST)
        for name in stale_files(old, stored):
            (folder / name).unlink(missing_ok=True)
        sync_folder(folder)  # the manifest's name on disk before the delivery is logged
        return DeliveryResult(accepted=accepted, location=str(folder), rows=written)

    def holds(self, batch: Batch) -> bool:
        """Whether the folder's manifest and files are exactly this batch's."""
        check_batch_names(batch, self.name)
        try:
            folder = self.folder(batch)
            return self._holds(batch, folder, self._read_manifest(folder))
        except OSError as exc:
            raise TransientDeliveryError(
                f"{self.name}: reading failed ({type(exc).__name__})"
            ) from exc

    def _holds(self, batch: Batch, folder: Path, manifest: dict[str, Any] | None) -> bool:
        if not manifest_matches(manifest, batch):
            return False
        for stored_as, entry in stored_files(manifest).items():
            path = folder / stored_as
            if not path.is_file() or sha256_file(path) != entry.get("stored_sha256"):
                return False
        return True

    def arrived(self, batch: Batch) -> bool:
        """Whether the batch's own manifest is in its folder (written last: the batch arrived
        whole), whether or not its files are still there (a state may take them away)."""
        check_batch_names(batch, self.name)
        try:
            return manifest_matches(self._read_manifest(self.folder(batch)), batch)
        except OSError as exc:
            raise TransientDeliveryError(
                f"{self.name}: reading failed ({type(exc).__name__})"
            ) from exc

    def discard(
        self,
        run_date: str,
        program_code: str,
        names: Iterable[str],
        *,
        run_id: str,
        dry_run: bool = False,
    ) -> Discarded:
        """Remove what a batch of run ``run_id`` (its artifact ``names``) left in
        ``{root}/{run_date}/{program_code}/`` without arriving whole (:func:`discard_plan`:
        never a file another run's complete manifest lists); then the folder and its date
        folder when left empty. With ``dry_run`` nothing is removed: what would be is said."""
        names = check_discard_names(run_date, program_code, names)
        folder = self.root / run_date / program_code
        try:
            if not folder.is_dir():
                return Discarded(str(folder))
            manifest = self._read_manifest(folder)
            present = [p.name for p in folder.iterdir() if p.is_file()]
            remove, kept, vouching = discard_plan(present, names, manifest, run_id)
            if dry_run:
                empty = not (set(p.name for p in folder.iterdir()) - set(remove))
                return Discarded(str(folder), tuple(remove), tuple(kept), vouching, empty)
            for name in remove:
                (folder / name).unlink(missing_ok=True)
            if remove:
                sync_folder(folder)  # removed for good: a power loss does not bring them back
            pruned = False
            for prunable in folders_to_prune(folder, self.root):
                if any(Path(prunable).iterdir()):
                    break
                Path(prunable).rmdir()
                sync_folder(Path(prunable).parent)
                pruned = True
        except PermissionError as exc:
            raise TerminalDeliveryError(
                f"{self.name}: cannot remove files in {folder} ({type(exc).__name__})"
            ) from exc
        except OSError as exc:
            raise TransientDeliveryError(
                f"{self.name}: removing files in {folder} failed ({type(exc).__name__})"
            ) from exc
        return Discarded(str(folder), tuple(remove), tuple(kept), vouching, pruned)

    @staticmethod
    def _read_manifest(folder: Path) -> dict[str, Any] | None:
        path = folder / MANIFEST
        return parse_manifest(path.read_bytes()) if path.is_file() else None

    def __repr__(self) -> str:
        return f"LocalFolderDestination({self.name!r}, root={str(self.root)!r})"
