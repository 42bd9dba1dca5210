"""One safe path join: a component from data or arguments never leaves its folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.destinations.registry import DestinationConfigError, load_destination
from pipelines.paths import UnsafePathError, safe_join
from schemas.identifiers import is_destination_name, is_program_code

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "destinations"


@pytest.mark.parametrize(
    "part",
    ["..", ".", "", "../esc", "../../../../esc", "a/b", "a\\b", "/etc/passwd", "x\x00y"],
)
def test_when_a_component_is_not_one_plain_name_then_refused(tmp_path: Path, part: str) -> None:
    with pytest.raises(UnsafePathError, match="program code"):
        safe_join(tmp_path, "run-1", part, role="program code")


@pytest.mark.parametrize("part", ["VT-HS-01", "a..b", ".hidden", "report.json", "x y"])
def test_when_a_component_is_a_plain_name_then_joined_inside(tmp_path: Path, part: str) -> None:
    path = safe_join(tmp_path, "run-1", part)
    assert path == tmp_path / "run-1" / part and tmp_path in path.resolve().parents


def test_when_a_symlink_leads_outside_then_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "state", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "reports")
    with pytest.raises(UnsafePathError, match="would lead outside"):
        safe_join(root, "reports", "summary.json")


@pytest.mark.parametrize(
    ("value", "program", "destination"),
    [
        ("VT-HS-01", True, False),
        ("demo", True, True),
        ("mo-dese-demo", True, True),
        ("A" * 40, True, False),
        ("A" * 41, False, False),
        ("../../../../esc", False, False),
        ("..", False, False),
        (".x", False, False),
        ("-x", False, False),
        ("a/b", False, False),
        ("a b", False, False),
        ("", False, False),
        ("Demo", True, False),
        ("x" * 80, False, True),
        ("x" * 81, False, False),
    ],
)
def test_code_patterns_at_their_boundaries(value: str, program: bool, destination: bool) -> None:
    assert is_program_code(value) is program
    assert is_destination_name(value) is destination


@pytest.mark.parametrize(
    "name", ["../destinations/demo", "/abs/path.yaml", "demo.yaml", "Demo", "a/b", "demo\n"]
)
def test_when_a_destination_name_is_a_path_then_one_line_error(name: str) -> None:
    with pytest.raises(DestinationConfigError) as caught:
        load_destination(name, SHIPPED)
    assert "is not a destination name" in str(caught.value)
    assert "\n" not in str(caught.value).replace(repr(name), "")
