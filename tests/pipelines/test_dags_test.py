"""``pipelines.dags_test``: the in-process execution API built for its client's version only
serves that version exactly as the whole API does (same routes, same schemas), and is left
whole when Airflow's newest version is not the client's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT

OPENAPI_OF_CLIENT_VERSION = """
import json, sys
import airflow
narrowed = sys.argv[1] == "narrowed"
if narrowed:
    from pipelines.dags_test import serve_client_version_only
    assert serve_client_version_only()
from airflow.api_fastapi.execution_api.app import InProcessExecutionAPI
from airflow.sdk.api.datamodels._generated import API_VERSION
from fastapi.openapi.utils import get_openapi
app = InProcessExecutionAPI().app
app._cadwyn_initialize()
routers = app.router.versioned_routers
spec = get_openapi(title="t", version=API_VERSION, routes=routers[API_VERSION].routes)
print(json.dumps({"versions": sorted(routers), "api_version": API_VERSION, "spec": spec}))
"""


def _night_script(script: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``script`` (given ``args``) run by a fresh interpreter with this project's Airflow
    settings, Airflow's home in ``home`` and no other datashare or Airflow variable."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATASHARE_", "AIRFLOW"))},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(PROJECT / "airflow.cfg"),
        "DATASHARE_HOME": str(PROJECT),
        "PYTHONPATH": str(PROJECT),
    }
    return subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True
    )


def openapi_of_client_version(tmp_path: Path, mode: str) -> dict:
    """The OpenAPI document of the in-process API's routes for the client's version, whole
    or narrowed, built in a fresh interpreter (narrowing changes Airflow's module state)."""
    out = _night_script(OPENAPI_OF_CLIENT_VERSION, tmp_path / mode, mode)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_narrowed_api_serves_the_client_version_as_the_whole_api_does(
    tmp_path: Path,
) -> None:
    whole = openapi_of_client_version(tmp_path, "whole")
    narrowed = openapi_of_client_version(tmp_path, "narrowed")
    assert len(whole["versions"]) > 1  # Airflow builds every version it has released
    assert narrowed["versions"] == [narrowed["api_version"]]
    assert narrowed["spec"]["paths"], "no routes served"
    assert narrowed["spec"] == whole["spec"]


class _Version:
    def __init__(self, value: str) -> None:
        self.value = value
        self.changes: tuple = ()


class _Bundle:
    def __init__(self, *values: str) -> None:
        self.head_version = _Version("head")
        self.versions = tuple(_Version(v) for v in values)


@pytest.mark.parametrize(
    ("versions", "client", "narrowed"),
    [
        (("2026-06-30", "2026-04-06"), "2026-06-30", True),
        (("2026-06-30", "2026-04-06"), "2026-04-06", False),  # client older than the newest
        (("2026-04-06",), "2026-06-30", False),  # client newer than the server knows
        ((), "2026-06-30", False),
    ],
)
def test_the_api_is_narrowed_only_when_the_client_speaks_the_newest_version(
    versions: tuple[str, ...], client: str, narrowed: bool
) -> None:
    from pipelines.dags_test import latest_only_bundle

    bundle = latest_only_bundle(_Bundle(*versions), client)
    assert (bundle is not None) == narrowed
    if bundle is not None:
        assert [v.value for v in bundle.versions] == [client]


START_UP_STATE = """
import gc, sys
import airflow.__main__
seen = {}
def fake_airflow_main():
    seen.update(
        enabled=gc.isenabled(),
        frozen=gc.get_freeze_count(),
        tasks="pipelines.tasks" in sys.modules,
        ge="great_expectations" in sys.modules,
        argv=sys.argv[1:],
    )
airflow.__main__.main = fake_airflow_main
from pipelines.dags_test import dags_test
argv = list(sys.argv)
code = dags_test(["datashare_demo", "2026-11-27"])
print(seen["enabled"], seen["frozen"] > 100_000, seen["tasks"], seen["ge"], *seen["argv"])
young = len(gc.get_objects())  # what a collection would walk (the frozen are not in it)
print(young < 1_000, gc.isenabled(), code, sys.argv == argv)
def broken_airflow_main():
    raise RuntimeError("no such DAG")
airflow.__main__.main = broken_airflow_main
print(dags_test(["datashare_demo", "2026-11-27"]), sys.argv == argv)
"""


def test_the_start_up_heap_is_imported_paused_then_frozen(tmp_path: Path) -> None:
    """``dags_test`` imports what every night imports (the tasks' module among them, not Great
    Expectations) with the collector paused, freezes it, and runs ``dags test`` with the
    collector on; at the end it freezes what is left, so exit walks nothing (next to nothing
    is left in the collector's generations, against the hundreds of thousands frozen), and
    gives the caller its ``sys.argv`` back."""
    out = _night_script(START_UP_STATE, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    first, last, broken = out.stdout.strip().splitlines()[-3:]
    assert first.split() == [
        "True", "True", "True", "False", "dags", "test", "datashare_demo", "2026-11-27",
    ]  # fmt: skip
    assert last.split() == ["True", "True", "0", "True"]
    assert broken.split() == ["1", "True"]  # a failing command: exit code 1, its traceback
    assert out.stderr.rstrip().endswith("RuntimeError: no such DAG"), out.stderr[-3000:]


IN_PROCESS_API_AT_START = """
import gc, json
import airflow.__main__
seen = {}
def fake_airflow_main():
    from airflow.sdk.api.datamodels._generated import API_VERSION
    from airflow.sdk.execution_time.supervisor import in_process_api_server
    api = in_process_api_server()
    app = api._app  # built already? (read without building it, unlike api.app)
    young = {id(o) for o in gc.get_objects()}  # the collector's generations: not the frozen
    routes = app.router.versioned_routers[API_VERSION].routes if app is not None else []
    seen.update(
        built=app is not None,
        routes=len(routes),
        frozen=app is not None and gc.is_tracked(app) and id(app) not in young
        and not any(id(route) in young for route in routes),
    )
    import httpx
    from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor
    client = InProcessTestSupervisor._api_client()  # what dag.test() gives each task
    seen["same"] = client._transport is api.transport
    seen["health"] = httpx.Client(transport=api.transport, base_url="http://x./").get(
        "/health").json()
airflow.__main__.main = fake_airflow_main
from pipelines.dags_test import dags_test
code = dags_test(["datashare_demo", "2026-11-27"])
print(json.dumps({**seen, "code": code}))
"""


def test_the_in_process_api_is_built_with_the_start_up_heap(tmp_path: Path) -> None:
    """Before ``dags test`` runs, the in-process execution API its tasks go through is built,
    Cadwyn's routers for the version served included, and frozen with the start-up heap (no
    collection walks it); the tasks' client gets that same API, and it serves requests."""
    out = _night_script(IN_PROCESS_API_AT_START, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["routes"] > 20, seen
    assert seen == {
        "built": True,
        "routes": seen["routes"],
        "frozen": True,
        "same": True,
        "health": {"status": "healthy"},
        "code": 0,
    }


@pytest.mark.parametrize(
    ("end", "code", "said"),
    [
        (SystemExit(), 0, ""),
        (SystemExit(0), 0, ""),
        (SystemExit(3), 3, ""),
        (SystemExit("DagRun failed"), 1, "DagRun failed\n"),  # how `airflow dags test` fails
    ],
)
def test_a_command_ends_with_the_exit_code_the_interpreter_would_give(
    end: SystemExit, code: int, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.dags_test import exit_code

    assert exit_code(end) == code
    assert capsys.readouterr().err == said


METRICS_REGISTRY = """
import json, sys, yaml
import airflow
from pipelines.dags_test import METRICS_REGISTRIES, metrics_registry_with_libyaml
import importlib
modules = [importlib.import_module(name) for name in METRICS_REGISTRIES]
airflows = [m.MetricsRegistry()._metrics for m in modules]
pure_python = []
real_safe_load = yaml.safe_load
def counting_safe_load(stream):
    pure_python.append(1)
    return real_safe_load(stream)
yaml.safe_load = counting_safe_load
replaced = metrics_registry_with_libyaml()
ours = [m.MetricsRegistry()._metrics for m in modules]
other = modules[0].read_metrics_yaml(sys.argv[1])
print(json.dumps({"replaced": replaced, "same": ours == airflows, "size": len(ours[0]),
                  "pure_python": len(pure_python), "other": other}))
"""


def test_airflows_metrics_registry_reads_the_same_with_libyaml(tmp_path: Path) -> None:
    """Both of Airflow's metrics registries hold the same metrics read by libyaml, without
    the pure-Python loader; a file libyaml refuses goes to Airflow's own reader."""
    tabbed = tmp_path / "bad.yaml"
    tabbed.write_text("metrics:\n\t- name: x\n")  # a tab: both parsers refuse it
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATASHARE_", "AIRFLOW"))},
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW_CONFIG": str(PROJECT / "airflow.cfg"),
        "PYTHONPATH": str(PROJECT),
    }
    out = subprocess.run(
        [sys.executable, "-c", METRICS_REGISTRY, str(tabbed)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "ScannerError" in out.stderr  # Airflow's reader's error
    good = tmp_path / "good.yaml"
    good.write_text("metrics:\n  - name: x\n    type: counter\n")
    out = subprocess.run(
        [sys.executable, "-c", METRICS_REGISTRY, str(good)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {
        "replaced": 2,
        "same": True,
        "size": result["size"],
        "pure_python": 0,
        "other": [{"name": "x", "type": "counter"}],
    }
    assert result["size"] > 50
