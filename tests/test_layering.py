"""The import layering, checked on the source (AST, every import including those inside
functions and under ``TYPE_CHECKING``)::

    console ->
    dags    ->  pipelines  ->  privacy  ->  schemas

Each layer imports only layers below it; nothing imports ``console`` or ``dags``; ``privacy/``
imports no Airflow, Great Expectations or network client. Tests, benchmarks and scripts are
exempt.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures import PROJECT

# which of our packages each layer may import (besides itself)
ALLOWED = {
    "schemas": set(),
    "privacy": {"schemas"},
    "pipelines": {"privacy", "schemas"},
    "dags": {"pipelines", "privacy", "schemas"},
    "console": {"pipelines", "privacy", "schemas"},
}
FORBIDDEN_THIRD_PARTY = {
    "privacy": (
        "airflow",
        "great_expectations",
        "httpx",
        "requests",
        "paramiko",
        "asyncssh",
        "socket",
        "urllib.request",
    )
}


@dataclass(frozen=True)
class Violation:
    """One import that breaks the layering: where, and what it imports."""

    path: str
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: imports {self.imported} ({self.rule})"


def _module_of(root: Path, path: Path) -> list[str]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(root: Path, path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute dotted name) of every import in ``path``."""
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    package = _module_of(root, path)
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # ``from urllib import request`` is urllib.request
                yield node.lineno, f"{module}.{alias.name}"


def violations(root: Path) -> list[Violation]:
    """Every layering violation in the layers under ``root``."""
    found: list[Violation] = []
    for layer, allowed in ALLOWED.items():
        folder = root / layer
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.py")):
            where = str(path.relative_to(root))
            for line, name in _imports(root, path):
                top = name.split(".")[0]
                if top in ALLOWED and top != layer and top not in allowed:
                    below = ", ".join(sorted(allowed)) or "nothing of ours"
                    rule = (
                        f"nothing imports {top}"
                        if top in {"console", "dags"}
                        else f"{layer} may import only {below}"
                    )
                    found.append(Violation(where, line, name, rule))
                for banned in FORBIDDEN_THIRD_PARTY.get(layer, ()):
                    if name == banned or name.startswith(banned + "."):
                        found.append(Violation(where, line, name, f"{layer} imports no {banned}"))
    unique = {(v.path, v.line, v.rule): v for v in reversed(found)}  # one per statement and rule
    return sorted(unique.values(), key=lambda v: (v.path, v.line, v.rule))


def test_the_project_keeps_its_layers() -> None:
    assert [d for d in ALLOWED if (PROJECT / d).is_dir()], "the checker sees the layers"
    found = violations(PROJECT)
    assert not found, "\n".join(map(str, found))


# id: (file, source, words of the rule it breaks)
PLANTED = {
    "schemas_up": ("schemas/model.py", "from privacy import decision", "schemas may import only"),
    "privacy_up": ("privacy/rules.py", "import pipelines.tasks", "privacy may import only"),
    "relative_up": ("privacy/sub/deep.py", "from ...pipelines import x", "privacy may import"),
    "pipelines_dags": ("pipelines/step.py", "from dags import nightly", "nothing imports dags"),
    "to_console": ("pipelines/step.py", "import console.app", "nothing imports console"),
    "dags_console": ("dags/nightly.py", "from console import pages", "nothing imports console"),
    "console_dags": ("console/app.py", "import dags.nightly", "nothing imports dags"),
    "in_function": ("privacy/keys.py", "def f():\n    import airflow.sdk", "no airflow"),
    "gx": ("privacy/keys.py", "import great_expectations as gx", "no great_expectations"),
    "httpx": ("privacy/keys.py", "from httpx import Client", "no httpx"),
    "requests": ("privacy/keys.py", "import requests", "no requests"),
    "paramiko": ("privacy/keys.py", "import paramiko", "no paramiko"),
    "asyncssh": ("privacy/keys.py", "import asyncssh", "no asyncssh"),
    "socket": ("privacy/keys.py", "import socket", "no socket"),
    "urllib_from": ("privacy/keys.py", "from urllib import request", "no urllib.request"),
    "urllib": ("privacy/keys.py", "import urllib.request", "no urllib.request"),
    "type_checking": (
        "privacy/keys.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pipelines import x",
        "privacy may import only",
    ),
}


def _tree(root: Path, files: dict[str, str]) -> Path:
    for layer in ALLOWED:
        (root / layer).mkdir(parents=True, exist_ok=True)
        (root / layer / "__init__.py").write_text("")
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")
    return root


@pytest.mark.parametrize(("path", "source", "rule"), PLANTED.values(), ids=PLANTED)
def test_the_checker_catches_a_planted_violation(
    tmp_path: Path, path: str, source: str, rule: str
) -> None:
    root = _tree(tmp_path, {path: source})
    [found] = violations(root)
    assert found.path == path and rule in found.rule


ALLOWED_IMPORTS = [
    "import schemas\nfrom schemas.base import Base",
    "from . import sibling\nfrom .sub import thing",
    "import urllib.parse\nimport sqlalchemy",
    "import socketserver_is_not_socket",
]


@pytest.mark.parametrize("source", ALLOWED_IMPORTS)
def test_the_checker_allows_downward_and_own_imports(tmp_path: Path, source: str) -> None:
    root = _tree(tmp_path, {"privacy/rules.py": source, "pipelines/step.py": "import privacy.x"})
    assert violations(root) == []
