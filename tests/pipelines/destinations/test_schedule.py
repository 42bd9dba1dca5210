"""``scan_destinations``: each destination file validated on its own, for the DAG files; the
broken ones become one error naming every file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.destinations.schedule import BrokenDestinationFiles, scan_destinations

GOOD = "type: local\nrecipient: VT-AOE\n"


def test_when_every_file_is_good_then_every_one_is_scheduled_and_nothing_is_raised(
    tmp_path: Path,
) -> None:
    (tmp_path / "b.yaml").write_text(GOOD)
    (tmp_path / "a.yaml").write_text(GOOD + "enabled: false\n")
    (tmp_path / ".draft.yaml").write_text("not: [valid\n")  # hidden: an editor's file
    scan = scan_destinations(tmp_path)
    assert [s.name for s in scan.settings] == ["a", "b"]
    assert scan.problems == () and scan.broken == ()
    scan.raise_if_broken()


def test_when_files_are_broken_then_only_they_are_left_out_and_each_line_is_named(
    tmp_path: Path,
) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "cron.yaml").write_text(GOOD + "schedule: nightly\npool_size: 0\n")
    (tmp_path / "syntax.yaml").write_text("type: local\nrecipient: [\n")
    (tmp_path / "folder.yaml").mkdir()  # cannot be read as a file
    scan = scan_destinations(tmp_path)
    assert [s.name for s in scan.settings] == ["good"]
    assert [p.name for p in scan.broken] == ["cron.yaml", "folder.yaml", "syntax.yaml"]
    assert f"{tmp_path / 'cron.yaml'}:3: schedule: " in "\n".join(scan.problems)
    assert f"{tmp_path / 'cron.yaml'}:4: pool_size: " in "\n".join(scan.problems)
    with pytest.raises(BrokenDestinationFiles) as raised:
        scan.raise_if_broken()
    message = str(raised.value)
    assert message.startswith("3 destination files are not scheduled")
    assert all(line in message for line in scan.problems)
    assert str(tmp_path / "good.yaml") not in message
