"""``pipelines.deferred``: a deferred module is not executed when imported, only when an
attribute of it is first read; then it is the real module, everywhere."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.deferred import Deferred, defer

HEAVY = "from heavy_pkg import log\nlog.RUNS.append(__name__)\nVALUE = 42\n"


@pytest.fixture
def heavy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A package with a module inside (``heavy_pkg.heavy``) and a top-level one
    (``heavy_top``), each recording in ``heavy_pkg.log.RUNS`` that it was executed."""
    package = tmp_path / "heavy_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "log.py").write_text("RUNS: list = []\n")
    (package / "heavy.py").write_text(HEAVY)
    (tmp_path / "heavy_top.py").write_text(HEAVY)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield importlib.import_module("heavy_pkg.log").RUNS
    for name in [n for n in sys.modules if n.startswith(("heavy_pkg", "heavy_top"))]:
        del sys.modules[name]


def test_when_a_deferred_module_is_imported_then_it_is_not_executed(heavy: list[str]) -> None:
    assert defer(["heavy_pkg.heavy", "heavy_top"]) == ["heavy_pkg.heavy", "heavy_top"]
    import heavy_pkg.heavy
    import heavy_top as alias  # a top-level module too (LazyLoader would run it here)
    from heavy_pkg import heavy as stand_in

    assert heavy == []
    assert isinstance(stand_in, Deferred) and stand_in is heavy_pkg.heavy
    assert isinstance(alias, Deferred) and sys.modules["heavy_top"] is alias


def test_when_an_attribute_is_first_read_then_the_real_module_replaces_the_stand_in(
    heavy: list[str],
) -> None:
    defer(["heavy_pkg.heavy", "heavy_top"])
    import heavy_pkg
    import heavy_top
    from heavy_pkg import heavy as stand_in

    assert stand_in.VALUE == 42 and heavy_top.VALUE == 42
    assert stand_in.VALUE == 42  # read again through the stand-in: executed once
    assert heavy == ["heavy_pkg.heavy", "heavy_top"]
    real = sys.modules["heavy_pkg.heavy"]
    assert not isinstance(real, Deferred) and heavy_pkg.heavy is real
    assert not isinstance(sys.modules["heavy_top"], Deferred)
    from heavy_pkg.heavy import VALUE

    assert VALUE == 42 and heavy == ["heavy_pkg.heavy", "heavy_top"]


def test_a_name_imported_already_or_not_installed_is_left_alone(heavy: list[str]) -> None:
    import heavy_pkg.heavy

    assert defer(["heavy_pkg.heavy", "heavy_pkg.missing", "no_such_module_here"]) == []
    assert sys.modules["heavy_pkg.heavy"] is heavy_pkg.heavy and heavy == ["heavy_pkg.heavy"]
    assert "no_such_module_here" not in sys.modules
    with pytest.raises(ImportError):
        import heavy_pkg.missing
