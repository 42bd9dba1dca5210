"""Every destination type as a context manager that configures destination ``dest`` in a world
and yields how many rows (records) the destination holds, and where a file drop's files land:
a local folder, SFTP (a real server on loopback), a staging database (SQLite) and Ed-Fi (the
local contract server). For tables of tests that must hold for every type."""

from __future__ import annotations

import copy
import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.edfi.contract_server import EdfiContractServer
from tests.pipelines.submission.conftest import World, make_world
from tests.sftp_server import PASSWORD, USERNAME, SftpTestServer

FORMATS = ["hs_child_identity", "hs_enrollment"]
VT = {"recipient": "VT-AOE", "agreements": ["vt-aoe-ecids"], "formats": FORMATS}


@dataclass
class Dest:
    """A configured destination: ``root`` where a file drop's date folders are (else None),
    ``held()``, the rows it holds in all, and ``content()``, everything it holds (to tell
    whether anything changed there)."""

    root: Path | None
    held: Callable[[], int]
    content: Callable[[], object] = lambda: None


def _files(root: Path) -> dict[str, str]:
    """Every file under ``root`` (``.part`` files and manifests too), by path: its digest."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _csv_rows(root: Path) -> int:
    return sum(len(pd.read_csv(p, dtype=str)) for p in root.rglob("*.csv"))


@contextmanager
def local(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dest]:
    root = tmp_path / "drop"
    world.destination("dest", type="local", **VT, local={"root": str(root)})
    yield Dest(root, lambda: _csv_rows(root), lambda: _files(root) if root.exists() else {})


@contextmanager
def sftp(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dest]:
    root = tmp_path / "sftp-root"
    (root / "incoming").mkdir(parents=True)
    with SftpTestServer(root) as server:
        known = tmp_path / "known_hosts"
        known.write_text(server.known_hosts_line())
        monkeypatch.setenv("TEST_SFTP_PASSWORD", PASSWORD)
        world.destination(
            "dest",
            type="sftp",
            **VT,
            retries=1,
            retry_backoff_seconds=0.05,
            timeout_seconds=10,
            sftp={
                "host": "127.0.0.1",
                "port": server.port,
                "username": USERNAME,
                "password_env": "TEST_SFTP_PASSWORD",
                "known_hosts": str(known),
                "remote_root": "/incoming",
            },
        )
        incoming = root / "incoming"
        yield Dest(incoming, lambda: _csv_rows(incoming), lambda: _files(incoming))


@contextmanager
def staging(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dest]:
    path = tmp_path / "staging.db"
    monkeypatch.setenv("TEST_STAGING_URL", f"sqlite:///{path}")
    world.destination(
        "dest", type="staging_db", **VT, retries=0, staging_db={"url_env": "TEST_STAGING_URL"}
    )

    def held() -> int:
        with sqlite3.connect(path) as connection:
            tables = [
                name
                for (name,) in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'"
                )
                if not name.startswith("datashare_")  # markers, the agreement record
            ]
            return sum(
                connection.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables
            )

    def content() -> dict[str, list[tuple[object, ...]]]:
        with sqlite3.connect(path) as connection:
            tables = [
                name
                for (name,) in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"
                )
            ]
            return {
                t: sorted(map(tuple, connection.execute(f'SELECT * FROM "{t}"')), key=repr)
                for t in tables
            }

    yield Dest(None, held, content)


@contextmanager
def edfi(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dest]:
    with EdfiContractServer(5) as server:
        world.edfi_destination("dest", server.base_url, monkeypatch)
        yield Dest(
            None,
            lambda: sum(len(items) for items in server.store.values()),
            lambda: copy.deepcopy(server.store),
        )


KINDS: dict[str, Callable[[World, Path, pytest.MonkeyPatch], AbstractContextManager[Dest]]] = {
    "local": local,
    "sftp": sftp,
    "staging_db": staging,
    "edfi": edfi,
}


def small_world(tmp_path: Path) -> World:
    """A small demo world on SQLite (enough children for every program to send some)."""
    return make_world(f"sqlite:///{tmp_path / 'program.db'}", tmp_path, children=120)
