"""``rows_delivered`` in the run summary counts what the destination took, not what was
prepared: rows in the files written (local folder, SFTP), rows inserted or updated (staging
database), records the API accepted (Ed-Fi). A night that finds nothing changed delivers no
row, though it prepared them all."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.demo import DEMO_DATE
from tests.pipelines.submission.conftest import World
from tests.pipelines.submission.kinds import KINDS, small_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = small_world(tmp_path)
    yield made
    made.engine.dispose()


@pytest.mark.parametrize("kind", list(KINDS))
def test_rows_delivered_counts_what_the_destination_took(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    with KINDS[kind](world, tmp_path, monkeypatch) as dest:
        first = world.run("dest", run_date=DEMO_DATE)
        assert first["status"] == "success"
        took = sum(first["rows_delivered"].values())
        assert took > 0
        assert took == dest.held(), "every row it holds came in this night, and no other"
        second = world.run("dest", run_date=DEMO_DATE + dt.timedelta(days=1))
        assert second["status"] == "success"
        assert set(second["deliveries"].values()) == {"unchanged"}
        assert second["rows_delivered"] == {}, "nothing changed, nothing delivered"
