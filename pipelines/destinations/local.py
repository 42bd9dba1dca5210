"""Local folder destination, and the manifest every file drop writes last.

Each batch lands in ``{root}/{run_date}/{program_code}/``: every artifact as CSV, written under
a temporary name (``.name.part``) and renamed when complete, then ``manifest.json`` (file names,
row counts, SHA-256 of each file, run id) written the same way, last. A folder whose manifest
is present is complete; a folder being replaced loses its manifest first.

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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipelines.destinations.base import (
    Batch,
    DeliveryResult,
    TerminalDeliveryError,
    TransientDeliveryError,
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


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``.name.part`` beside ``path`` (mode 0600), fsync, then rename."""
    partial = path.with_name(f".{path.name}.part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


class LocalFolderDestination:
    """A file drop in a local folder (the demo's state system)."""

    def __init__(self, name: str, root: Path | str) -> None:
        self.name = name
        self.root = Path(root)

    def folder(self, batch: Batch) -> Path:
        """Where ``batch`` lands."""
        return self.root / batch.run_date / batch.program_code

    def deliver(self, batch: Batch) -> DeliveryResult:
        """Write the batch's files, then its manifest; nothing when already there."""
        check_batch_names(batch, self.name)
        folder = self.folder(batch)
        try:
            return self._deliver(batch, folder)
        except (PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
            raise TerminalDeliveryError(
                f"{self.name}: cannot write {folder} ({type(exc).__name__})"
            ) from exc
        except OSError as exc:
            raise TransientDeliveryError(
                f"{self.name}: writing {folder} failed ({type(exc).__name__})"
            ) from exc

    def _deliver(self, batch: Batch, folder: Path) -> DeliveryResult:
        accepted = set(batch.child_keys)
        if self._holds(batch, folder):
            return DeliveryResult(accepted=accepted, location=str(folder), sent_nothing_new=True)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        old = self._read_manifest(folder)
        (folder / MANIFEST).unlink(missing_ok=True)
        stored: dict[str, tuple[str, str, int]] = {}
        written: dict[str, int] = {}
        for artifact in batch.artifacts:
            data = artifact.csv_bytes()
            digest = hashlib.sha256(data).hexdigest()
            target = folder / artifact.name
            if not (target.is_file() and sha256_file(target) == digest):
                write_atomic(target, data)
                written[artifact.name] = len(artifact.frame)
            stored[artifact.name] = (artifact.name, digest, len(data))
        write_atomic(folder / MANIFEST, manifest_bytes(build_manifest(batch, stored)))
        for name in stale_files(old, stored):
            (folder / name).unlink(missing_ok=True)
        return DeliveryResult(accepted=accepted, location=str(folder), rows=written)

    def holds(self, batch: Batch) -> bool:
        """Whether the folder's manifest and files are exactly this batch's."""
        check_batch_names(batch, self.name)
        try:
            return self._holds(batch, self.folder(batch))
        except OSError as exc:
            raise TransientDeliveryError(
                f"{self.name}: reading failed ({type(exc).__name__})"
            ) from exc

    def _holds(self, batch: Batch, folder: Path) -> bool:
        manifest = self._read_manifest(folder)
        if not manifest_matches(manifest, batch):
            return False
        for stored_as, entry in stored_files(manifest).items():
            path = folder / stored_as
            if not path.is_file() or sha256_file(path) != entry.get("stored_sha256"):
                return False
        return True

    @staticmethod
    def _read_manifest(folder: Path) -> dict[str, Any] | None:
        path = folder / MANIFEST
        return parse_manifest(path.read_bytes()) if path.is_file() else None

    def __repr__(self) -> str:
        return f"LocalFolderDestination({self.name!r}, root={str(self.root)!r})"
