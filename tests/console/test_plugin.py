"""The plugin module Airflow loads in every process is cheap: it builds the console only when
the api-server first serves it; Airflow still finds it through the entry point."""

from __future__ import annotations

import json
import subprocess
import sys

from fastapi.testclient import TestClient

HEAVY = ("console.app", "console.routes", "console.pages", "fastapi", "jinja2", "pipelines")


def test_importing_the_plugin_imports_neither_the_app_nor_its_libraries() -> None:
    code = (
        "import json, sys\n"
        "import airflow.plugins_manager\n"
        "before = set(sys.modules)\n"
        "import console.plugin\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    added = json.loads(done.stdout.strip().splitlines()[-1])
    assert "console.plugin" in added
    assert not [m for m in added if m.startswith(HEAVY)], added


def test_airflow_finds_the_plugin_by_its_entry_point_with_an_unbuilt_app() -> None:
    from airflow import plugins_manager

    apps, _ = plugins_manager.get_fastapi_plugins()
    ours = [a for a in apps if a.get("name") == "Datashare console"]
    assert len(ours) == 1 and ours[0]["url_prefix"] == "/datashare"
    from console.plugin import DatashareConsolePlugin, LazyConsoleApp

    assert isinstance(ours[0]["app"], LazyConsoleApp)
    assert DatashareConsolePlugin.external_views[0]["href"] == "/datashare/runs"


def test_the_app_is_built_on_the_first_request_and_then_kept() -> None:
    from console.plugin import LazyConsoleApp

    lazy = LazyConsoleApp()
    assert not lazy.built
    with TestClient(lazy, base_url="http://console.test", follow_redirects=False) as client:
        response = client.get("/runs", headers={"Accept": "application/json"})
        assert response.status_code == 401  # the real app answered: its login check
        assert lazy.built
        first = lazy.build()
        client.get("/runs", headers={"Accept": "application/json"})
        assert lazy.build() is first
