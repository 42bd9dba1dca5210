"""A file drop tells its ``progress`` each step before it starts: the upload before the first
``.part`` file exists, the publish while every new file is still a ``.part`` file and the old
manifest is still there (so a mark recorded then never comes after what it announces)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace as Ctx

import pytest

from pipelines.db import make_engine
from pipelines.destinations.base import Step
from pipelines.destinations.local import MANIFEST, LocalFolderDestination
from pipelines.submission.marks import marking
from tests.pipelines.batches import make_batch
from tests.pipelines.destinations.test_discard import sftp_destination
from tests.sftp_server import SftpTestServer

DATE, PROGRAM = "2026-11-27", "VT-HS-01"


def watching(folder: Path, seen: list[tuple[Step, list[str]]]) -> Callable[[Step], None]:
    """A progress that notes, at each step, what the folder holds then."""

    def progress(step: Step) -> None:
        names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        seen.append((step, names))

    return progress


def assert_steps_before_their_work(
    seen: list[tuple[Step, list[str]]], first: bool, manifest_part: bool = False
) -> None:
    """``manifest_part``: the manifest's ``.part`` file is written with the files' (a local
    folder's), not after the publish."""
    (upload, before), (publish, during) = seen
    assert (upload, publish) == ("upload", "publish")
    assert not [n for n in before if n.endswith(".part")], "nothing written before the mark"
    parts = sorted(n for n in during if n.endswith(".part"))
    manifest = [f".{MANIFEST}.part"] if manifest_part else []
    assert parts == [".hs_child_identity.csv.part", ".hs_enrollment.csv.part", *manifest]
    finals = {"hs_child_identity.csv", "hs_enrollment.csv", MANIFEST}
    if first:
        assert not finals & set(during), "no final name before the publish mark"
    else:
        assert MANIFEST in during, "the old manifest still there at the publish mark"


@pytest.mark.parametrize("first", [True, False], ids=["new-folder", "replacing"])
def test_local_marks_each_step_before_it(tmp_path: Path, first: bool) -> None:
    local = LocalFolderDestination("state", tmp_path)
    if not first:
        local.deliver(make_batch(3, run_id="earlier"))
    seen: list[tuple[Step, list[str]]] = []
    local.deliver(make_batch(5, run_id="now"), progress=watching(tmp_path / DATE / PROGRAM, seen))
    assert_steps_before_their_work(seen, first, manifest_part=True)


@pytest.mark.parametrize("first", [True, False], ids=["new-folder", "replacing"])
def test_sftp_marks_each_step_before_it(
    sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch, first: bool
) -> None:
    sftp = sftp_destination(sftp_server, monkeypatch)
    if not first:
        sftp.deliver(make_batch(3, run_id="earlier"))
    seen: list[tuple[Step, list[str]]] = []
    folder = sftp_server.root / "in" / DATE / PROGRAM
    sftp.deliver(make_batch(5, run_id="now"), progress=watching(folder, seen))
    assert_steps_before_their_work(seen, first)


def test_unchanged_batch_marks_nothing(tmp_path: Path) -> None:
    local = LocalFolderDestination("state", tmp_path)
    local.deliver(make_batch(3))
    seen: list[tuple[Step, list[str]]] = []
    result = local.deliver(make_batch(3), progress=watching(tmp_path, seen))
    assert result.sent_nothing_new and seen == []


def test_when_the_delivery_row_is_missing_then_the_upload_mark_fails_and_nothing_is_written(
    db_url: str, tmp_path: Path
) -> None:
    """The upload mark is what makes a pending row durable before a byte leaves (the row may be
    committed without waiting for the disk): a mark that finds no row stops the delivery."""
    engine = make_engine(db_url)
    local = LocalFolderDestination("state", tmp_path / "drop")
    with pytest.raises(LookupError, match="not recorded"):
        local.deliver(make_batch(2, run_id="now"), progress=marking(Ctx(engine=engine), 424242))
    engine.dispose()
    assert not [p for p in (tmp_path / "drop").rglob("*") if p.is_file()], "nothing written"
