"""Our code imports Airflow names from where Airflow 3.3 keeps them, not from the deprecated
aliases ``airflow.exceptions`` still forwards (with a ``DeprecatedImportWarning``):
``AirflowFailException`` and friends live in ``airflow.sdk.exceptions``."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

from pipelines.tasks import _terminal, verdict
from privacy.errors import MissingKeyError

PROJECT = Path(__file__).resolve().parents[2]


def deprecated_imports() -> list[str]:
    import airflow.exceptions

    moved = airflow.exceptions._DEPRECATED_EXCEPTIONS
    found = []
    for folder in ("pipelines", "dags", "console"):
        for path in sorted((PROJECT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and node.module == "airflow.exceptions":
                    found += [
                        f"{path.relative_to(PROJECT)}:{node.lineno} {alias.name}"
                        for alias in node.names
                        if alias.name in moved
                    ]
    return found


def test_no_module_imports_a_moved_airflow_exception() -> None:
    assert deprecated_imports() == []


def raise_missing_key() -> None:
    raise MissingKeyError("VT-AOE", ["environment variable DATASHARE_KEY_VT_AOE"])


@pytest.mark.parametrize(
    "call",
    [
        lambda: _terminal(raise_missing_key),
        lambda: verdict({"run_id": "r", "status": "failed", "stop_lines": ["P: stopped"]}),
    ],
    ids=["terminal", "verdict"],
)
def test_task_failure_raises_the_sdk_exception_without_a_deprecation_warning(call) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk.exceptions import AirflowFailException

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AirflowFailException):
            call()
