"""``discard``: what a file drop batch killed mid-upload left is removed, and nothing a
complete manifest of another run vouches for (local folder, and a real SFTP server on
loopback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.destinations.base import Batch, TerminalDeliveryError, TransientDeliveryError
from pipelines.destinations.local import MANIFEST, LocalFolderDestination, discard_plan
from pipelines.destinations.sftp import SftpDestination, SftpSettings
from tests.pipelines.batches import make_batch
from tests.pipelines.conftest import GpgRecipient
from tests.sftp_server import PASSWORD, USERNAME, SftpTestServer

DATE, PROGRAM = "2026-11-27", "VT-HS-01"
NAMES = ["hs_child_identity.csv", "hs_enrollment.csv"]


def tree(root: Path) -> list[str]:
    """Every file and folder under ``root``, relative."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def killed_after_first_file(folder: Path, batch: Batch, *, part: bool = True) -> None:
    """What a local delivery killed after its first file leaves: that file written (as its
    ``.part`` file, or renamed when ``part`` is false), nothing else, no manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    first = batch.artifacts[0]
    name = f".{first.name}.part" if part else first.name
    (folder / name).write_bytes(first.csv_bytes())


# --- the rule, table-driven and as a property ----------------------------------------------


def manifest_of(run_id: str, *stored: str) -> dict:
    return {"run_id": run_id, "files": [{"name": s, "stored_as": s} for s in stored]}


CASES = [
    pytest.param(
        ["hs_child_identity.csv", ".hs_enrollment.csv.part"],
        None,
        [".hs_enrollment.csv.part", "hs_child_identity.csv"],
        [],
        id="no-manifest-everything-of-the-batch-goes",
    ),
    pytest.param(
        ["hs_child_identity.csv.pgp", ".hs_enrollment.csv.pgp.part", ".manifest.json.part"],
        None,
        [".hs_enrollment.csv.pgp.part", ".manifest.json.part", "hs_child_identity.csv.pgp"],
        [],
        id="encrypted-and-manifest-part",
    ),
    pytest.param(
        [*NAMES, MANIFEST, ".hs_child_identity.csv.part"],
        manifest_of("earlier", *NAMES),
        [".hs_child_identity.csv.part"],
        NAMES,
        id="another-runs-complete-manifest-keeps-its-files",
    ),
    pytest.param(
        [*NAMES, MANIFEST],
        manifest_of("crashed", *NAMES),
        sorted([*NAMES, MANIFEST]),
        [],
        id="the-crashed-runs-own-manifest-vouches-nothing",
    ),
    pytest.param(
        ["readme.txt", "other.csv", ".other.csv.part"],
        None,
        [],
        [],
        id="files-of-other-names-stay",
    ),
]


@pytest.mark.parametrize(("present", "manifest", "removed", "kept"), CASES)
def test_discard_plan(
    present: list[str], manifest: dict | None, removed: list[str], kept: list[str]
) -> None:
    got_removed, got_kept, vouching = discard_plan(present, NAMES, manifest, "crashed")
    assert (got_removed, got_kept) == (removed, kept)
    expected_vouching = None if manifest is None or manifest["run_id"] == "crashed" else "earlier"
    assert vouching == expected_vouching


FILE = st.sampled_from(
    [
        "a.csv",
        "b.csv",
        "c.csv",
        "a.csv.pgp",
        ".a.csv.part",
        ".b.csv.pgp.part",
        ".manifest.json.part",
        MANIFEST,
        "z.txt",
    ]
)


@given(
    present=st.sets(FILE),
    names=st.sets(st.sampled_from(["a.csv", "b.csv"])),
    listed=st.sets(FILE),
    owner=st.sampled_from([None, "crashed", "other"]),
)
def test_discard_plan_property(
    present: set[str], names: set[str], listed: set[str], owner: str | None
) -> None:
    manifest = None if owner is None else manifest_of(owner, *sorted(listed))
    removed, kept, _ = discard_plan(present, names, manifest, "crashed")

    # oracle: a file is the batch's when it is one of its names, plain or encrypted, or their
    # temporary files, or the manifest's temporary file (or the manifest, when its own)
    def batch_file(f: str) -> bool:
        bare = f[1:-5] if f.startswith(".") and f.endswith(".part") else f
        bare = bare.removesuffix(".pgp")
        if bare == MANIFEST:
            return f != MANIFEST or owner == "crashed"
        return bare in names

    vouched = listed if owner == "other" else set()
    assert set(removed) == {f for f in present if batch_file(f) and f not in vouched}
    assert set(kept) == {f for f in present if batch_file(f) and f in vouched}
    assert not set(removed) & vouched, "never a file another run's manifest vouches for"
    assert {f for f in removed if f.endswith(".part")} == {
        f for f in present if f.endswith(".part") and batch_file(f) and f not in vouched
    }, "the batch's temporary files go (unless a manifest lists one: it never does)"


# --- local folder --------------------------------------------------------------------------


def test_local_batch_killed_mid_upload_is_removed_with_its_emptied_folders(
    tmp_path: Path,
) -> None:
    destination = LocalFolderDestination("demo", tmp_path)
    batch = make_batch(4, run_id="crashed")
    folder = tmp_path / DATE / PROGRAM
    killed_after_first_file(folder, batch, part=False)
    (folder / ".hs_enrollment.csv.part").write_bytes(b"half")
    done = destination.discard(DATE, PROGRAM, NAMES, run_id="crashed")
    assert done.removed == (".hs_enrollment.csv.part", "hs_child_identity.csv")
    assert done.folder_removed and done.vouched_by is None
    assert tree(tmp_path) == [], "the program folder and the emptied date folder are gone"
    assert "removed 2 files of it from" in done.describe() and str(folder) in done.describe()


def test_local_discard_keeps_the_date_folder_of_other_programs(tmp_path: Path) -> None:
    destination = LocalFolderDestination("demo", tmp_path)
    destination.deliver(make_batch(3, run_id="other", program="VT-HS-02"))
    killed_after_first_file(tmp_path / DATE / PROGRAM, make_batch(4, run_id="crashed"))
    destination.discard(DATE, PROGRAM, NAMES, run_id="crashed")
    assert [p for p in tree(tmp_path) if PROGRAM in p] == []
    assert destination.holds(make_batch(3, run_id="other", program="VT-HS-02"))


def test_local_same_day_rerun_killed_while_writing_keeps_the_logged_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A same-day rerun killed while writing its files: the old manifest is still there
    (removed only once every new file is written), so the old folder stays complete and
    only the rerun's temporary files go."""
    destination = LocalFolderDestination("demo", tmp_path)
    first = make_batch(4, run_id="earlier")
    destination.deliver(first)
    import pipelines.destinations.local as local

    written = []

    def write_then_die(path: Path, data: bytes) -> Path:
        if written:
            raise KeyboardInterrupt("killed")
        written.append(path)
        return real(path, data)

    real = local.write_part
    monkeypatch.setattr(local, "write_part", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        destination.deliver(make_batch(5, run_id="crashed", seed=1))
    monkeypatch.undo()
    folder = tmp_path / DATE / PROGRAM
    assert (folder / ".hs_child_identity.csv.part").exists()
    assert destination.holds(first), "the old folder is complete while the rerun writes"
    done = destination.discard(DATE, PROGRAM, NAMES, run_id="crashed")
    assert done.removed == (".hs_child_identity.csv.part",)
    assert done.kept == tuple(NAMES) and done.vouched_by == "earlier"
    assert destination.holds(first) and not done.folder_removed


def test_local_discard_refuses_names_outside_the_folder(tmp_path: Path) -> None:
    destination = LocalFolderDestination("demo", tmp_path)
    for names in (["../x.csv"], [MANIFEST], ["a/b.csv"]):
        with pytest.raises(TerminalDeliveryError):
            destination.discard(DATE, PROGRAM, names, run_id="crashed")
    with pytest.raises(TerminalDeliveryError):
        destination.discard("..", PROGRAM, NAMES, run_id="crashed")


def test_local_discard_of_an_absent_folder_removes_nothing(tmp_path: Path) -> None:
    done = LocalFolderDestination("demo", tmp_path).discard(DATE, PROGRAM, NAMES, run_id="crashed")
    assert done.removed == () and not done.folder_removed
    assert "removed 0 files" in done.describe()


# --- SFTP ----------------------------------------------------------------------------------


def sftp_destination(
    server: SftpTestServer, monkeypatch: pytest.MonkeyPatch, **settings: object
) -> SftpDestination:
    monkeypatch.setenv("TEST_SFTP_PASSWORD", PASSWORD)
    values = {
        "host": "127.0.0.1",
        "port": server.port,
        "username": USERNAME,
        "password_env": "TEST_SFTP_PASSWORD",
        "host_key_fingerprint": server.fingerprint,
        "remote_root": "/in",
    } | settings
    return SftpDestination(
        "state-sftp", SftpSettings(**values), timeout=5, retries=0, retry_backoff=0
    )


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "pgp"])
def test_sftp_batch_killed_mid_upload_is_removed(
    sftp_server: SftpTestServer,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    encrypted: bool,
) -> None:
    settings = {}
    if encrypted:
        recipient: GpgRecipient = request.getfixturevalue("gpg_recipient")
        settings["pgp_public_key"] = recipient.public_key_file
    batch = make_batch(1000, run_id="crashed")
    sftp = sftp_destination(sftp_server, monkeypatch, **settings)
    first = len(sftp._prepare(batch, {})[1][0][1])
    sftp_server.kill_after_bytes = first + 100  # the first file whole, the second begun
    with pytest.raises(TransientDeliveryError):
        sftp.deliver(batch)
    root = sftp_server.root
    suffix = ".pgp" if encrypted else ""
    left = tree(root)
    assert f"in/{DATE}/{PROGRAM}/.hs_child_identity.csv{suffix}.part" in left
    assert f"in/{DATE}/{PROGRAM}/.hs_enrollment.csv{suffix}.part" in left

    with pytest.raises(TransientDeliveryError):  # the server is down: nothing is removed
        sftp.discard(DATE, PROGRAM, NAMES, run_id="crashed")
    assert tree(root) == left

    sftp_server.start()
    done = sftp.discard(DATE, PROGRAM, NAMES, run_id="crashed")
    assert set(done.removed) == {
        f".hs_child_identity.csv{suffix}.part",
        f".hs_enrollment.csv{suffix}.part",
    }
    assert done.folder_removed and tree(root) == ["in"]
    assert done.folder.startswith("sftp://127.0.0.1:") and done.folder.endswith(
        f"in/{DATE}/{PROGRAM}"
    )


def test_sftp_same_day_rerun_killed_mid_upload_keeps_the_logged_folder(
    sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sftp = sftp_destination(sftp_server, monkeypatch)
    earlier = make_batch(50, run_id="earlier")
    sftp.deliver(earlier)
    rerun = make_batch(1000, run_id="crashed", seed=1)
    sftp_server.kill_after_bytes = sftp_server.bytes_written + 20_000
    with pytest.raises(TransientDeliveryError):
        sftp.deliver(rerun)
    sftp_server.start()
    folder = sftp_server.root / "in" / DATE / PROGRAM
    assert json.loads((folder / MANIFEST).read_text())["run_id"] == "earlier"
    assert sftp.holds(earlier), "the old folder stays complete while the rerun uploads"
    done = sftp.discard(DATE, PROGRAM, NAMES, run_id="crashed")
    assert done.removed and all(n.endswith(".part") for n in done.removed)
    assert done.kept == tuple(NAMES) and done.vouched_by == "earlier"
    assert sftp.holds(earlier)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*NAMES, MANIFEST])


def test_a_batch_whose_files_the_state_took_arrived_though_it_is_not_held(
    tmp_path: Path,
) -> None:
    destination = LocalFolderDestination("demo", tmp_path)
    batch = make_batch(4, run_id="crashed")
    assert not destination.arrived(batch)
    destination.deliver(batch)
    for name in NAMES:
        (tmp_path / DATE / PROGRAM / name).unlink()  # picked up by the state
    assert not destination.holds(batch)
    assert destination.arrived(batch), "its manifest says it arrived whole"
    assert not destination.arrived(make_batch(5, run_id="crashed")), "another batch did not"


def test_local_discard_flushes_the_removals_to_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Removed files and folders stay removed after a power loss: the folders they were
    removed from are flushed (an unlogged file coming back would sit in the state's drop)."""
    import os

    destination = LocalFolderDestination("demo", tmp_path)
    destination.deliver(make_batch(3, run_id="other", program="VT-HS-02"))
    killed_after_first_file(tmp_path / DATE / PROGRAM, make_batch(4, run_id="crashed"))
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    destination.discard(DATE, PROGRAM, NAMES, run_id="crashed")
    assert synced == [str(tmp_path / DATE / PROGRAM), str(tmp_path / DATE)]
