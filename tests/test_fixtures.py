"""Every reference file the tests read is in the repository and unchanged from upstream."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.fixtures import FIXTURES, PROJECT, UPSTREAM_SHA256


@pytest.mark.parametrize("path", sorted(UPSTREAM_SHA256), ids=lambda p: p.name)
def test_reference_file_is_the_upstream_file(path: Path) -> None:
    assert path.is_relative_to(PROJECT)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == UPSTREAM_SHA256[path]


def test_every_fixture_file_is_pinned_and_licensed() -> None:
    data = {p for p in FIXTURES.rglob("*") if p.is_file() and p.suffix in {".csv", ".json"}}
    assert data <= set(UPSTREAM_SHA256)
    assert "Apache License" in (FIXTURES / "LICENSE-Apache-2.0.txt").read_text()
    readme = (FIXTURES / "README.md").read_text()
    assert all(p.name in readme for p in data)


def test_no_test_or_tool_reads_outside_the_repository() -> None:
    needles = ("shared" + '" / "reference', ".." + "/shared")
    for folder in ("tests", "benchmarks", "pipelines", "scripts", "dags"):
        for path in (PROJECT / folder).rglob("*.py"):
            text = path.read_text("utf-8")
            assert not [n for n in needles if n in text], path
