"""``airflow dags test`` in ``datashare run``'s own process, minus the in-process API's old
versions.

:func:`dags_test` runs Airflow's own CLI (``airflow dags test ...``, the same command,
arguments and logs) in the calling process, changed in this process only where it pays. The
in-process execution API, through which ``dag.test()`` runs every task, serves only the API
version that Airflow's in-process client speaks
(``airflow.sdk.api.datamodels._generated.API_VERSION``) instead of building Cadwyn's routers,
schemas and migrations for every version Airflow has ever released (ten in Airflow 3.3:
about a quarter of a small night's CPU, paid before the first task starts). Requests of the
one version served are handled exactly as before: the routes of that version are the same
(``tests/pipelines/test_dags_test.py``), and a version's own changes only tell Cadwyn how to
migrate to the versions before it, which nobody here asks for. The API is built before the
command runs, with the start-up heap, so that no collection walks it
(:func:`ready_in_process_api`). A few modules the night imports but never uses are deferred
until first used (:data:`UNUSED`).

Nothing else is touched: the scheduler, the API server, the dag-processor and workers keep
every version. When Airflow's version bundle is not what this expects (the newest version is
not the client's, or the internals this narrows have moved), the API is left whole.
:mod:`pipelines.runner` sets Airflow's environment and takes its output before calling it.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cadwyn import VersionBundle

START_UP = (
    "airflow.cli.commands.dag_command",
    "airflow.sdk.execution_time.task_runner",
    "airflow.api_fastapi.execution_api.app",
    "pipelines.tasks",
)
"""Modules every ``datashare run`` night imports in this process anyway (the ``dags test``
command, the task runner, the in-process API's app, the tasks and their pandas): imported
up front, with the collector paused (:func:`dags_test`). Great Expectations is not among them: a
night with no program to prepare never imports it."""


def latest_only_bundle(bundle: object, version: str) -> VersionBundle | None:
    """A version bundle with Airflow's head version and ``version`` only (no changes of its
    own: they only describe older versions), or None when ``version`` is not the newest."""
    from cadwyn import HeadVersion, Version, VersionBundle

    versions = getattr(bundle, "versions", ())
    head = getattr(bundle, "head_version", None)
    if not versions or head is None or versions[0].value != version:
        return None
    return VersionBundle(HeadVersion(*head.changes), Version(version))


def serve_client_version_only() -> bool:
    """Make this process's in-process execution API serve only the client's version: the
    bundle narrowed (:func:`latest_only_bundle`) and the routes that exist only in older
    versions left out of the router it is built from. Whether it did."""
    from airflow.api_fastapi.execution_api import routes, versions
    from airflow.sdk.api.datamodels._generated import API_VERSION
    from cadwyn.route_generation import _DELETED_ROUTE_TAG
    from fastapi.routing import APIRoute

    narrowed = latest_only_bundle(versions.bundle, API_VERSION)
    if narrowed is None:
        return False
    router = routes.execution_api_router
    router.routes[:] = [
        route
        for route in router.routes
        if not (isinstance(route, APIRoute) and _DELETED_ROUTE_TAG in route.tags)
    ]
    versions.bundle = narrowed  # read by create_task_execution_api_app when dag.test() starts
    return True


IN_PROCESS_BASE_URL = "http://in-process.invalid./"
"""The base URL Airflow's in-process client sends its requests to (``InProcessTestSupervisor``)."""


def ready_in_process_api() -> bool:
    """Build the in-process execution API that ``dag.test()`` runs every task through, now
    rather than at the first task: the same object (Airflow caches it per process,
    ``supervisor.in_process_api_server``), its app, its transport, and Cadwyn's routers for the
    version served (made at its first request: here a ``GET /health``, which reads nothing).
    Called while the start-up heap is imported, so its objects (routes, models, their
    validators: it lives as long as the process) are frozen with that heap instead of being
    walked by every collection the night's own objects trigger. Whether it is ready."""
    import httpx
    from airflow.sdk.execution_time.supervisor import in_process_api_server

    api = in_process_api_server()
    with httpx.Client(transport=api.transport, base_url=IN_PROCESS_BASE_URL) as client:
        return client.get("/health").status_code == 200


UNUSED = ("wcwidth", "email_validator", "jwt", "httpcore")
"""Modules a ``dags test`` night imports but never uses, deferred (:mod:`pipelines.deferred`;
about 0.2 CPU-s): ``wcwidth``, which ``tabulate`` imports for the tables of Airflow's CLI
(``dags test`` prints none); ``email_validator``, which FastAPI imports for the e-mail fields
of OpenAPI documents; ``jwt``, with which the execution API checks task tokens (the
in-process API bypasses them); ``httpcore``, which Airflow's logging imports to hide its
frames from tracebacks (the in-process client sends no request over a network)."""


METRICS_REGISTRIES = (
    "airflow._shared.observability.metrics.metrics_registry",
    "airflow.sdk._shared.observability.metrics.metrics_registry",
)
"""Airflow's two copies (core and task SDK) of the module that reads its metrics registry."""


def metrics_registry_with_libyaml() -> int:
    """Make this process read Airflow's metrics registry (``metrics_template.yaml``, 29 KB,
    read once by Airflow's core and once by its task SDK, with PyYAML's pure-Python loader:
    about 0.04 CPU-s each) with libyaml: the same list of metrics, for a tenth of that. A file
    libyaml cannot read is read by Airflow's own reader, as before. How many readers it
    replaced (0 without libyaml)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        return 0
    replaced = 0
    for name in METRICS_REGISTRIES:
        module: Any = importlib.import_module(name)
        original = module.read_metrics_yaml

        def read_metrics_yaml(yaml_path: str, _original: Any = original) -> list:
            try:
                with open(yaml_path) as file:  # as Airflow opens it
                    metrics: list = yaml.load(file, Loader=loader)["metrics"]
                return metrics
            except Exception:  # Airflow's reader says what is wrong
                return list(_original(yaml_path))

        module.read_metrics_yaml = read_metrics_yaml
        replaced += 1
    return replaced


def dags_test(argv: list[str]) -> int:
    """Run ``airflow dags test *argv`` in this process, the API served for its client only;
    its exit code, as the ``airflow`` command would have exited with it (a failure's
    message or traceback written to ``sys.stderr``, as there). Ctrl-C is not caught.

    What every such run imports (Airflow, its ``dags test`` command, the task runner, the
    in-process API, and the tasks' module with pandas) is imported first with the garbage
    collector paused and then frozen (:func:`pipelines.collector.paused`): the process lives
    for one night and its start-up heap as long as it does, and the full collections its
    growth triggered walked it again and again (about a sixth of a small night's CPU). The
    in-process execution API the tasks go through is built then too
    (:func:`ready_in_process_api`), for the same reason."""
    from pipelines.collector import paused
    from pipelines.deferred import defer

    with paused(freeze=True):
        defer(UNUSED)
        import airflow  # noqa: F401  (settings first, as the airflow command does)

        with contextlib.suppress(ImportError, AttributeError, TypeError):  # moved: serve all
            serve_client_version_only()
        with contextlib.suppress(ImportError, AttributeError):  # moved: Airflow reads it
            metrics_registry_with_libyaml()
        from airflow.__main__ import main as airflow_main

        for module in START_UP:
            # one that fails to import fails again where it is used, as it did before
            with contextlib.suppress(Exception):
                importlib.import_module(module)
        with contextlib.suppress(Exception):  # built again, failing alike, at the first task
            ready_in_process_api()

    argv_before = sys.argv
    sys.argv = [str(Path(sys.executable).with_name("airflow")), "dags", "test", *argv]
    try:
        airflow_main()
    except SystemExit as end:
        return exit_code(end)
    except Exception:  # the airflow command's end: its traceback, exit code 1
        traceback.print_exc()
        return 1
    finally:
        sys.argv = argv_before
        # the process ends soon after: a collection would walk the whole heap (a third of
        # a CPU second) only to find what exit frees anyway
        gc.freeze()
    return 0


def exit_code(end: SystemExit) -> int:
    """The exit code the interpreter gives a ``SystemExit``: its number, 0 for none, else 1
    with the message written to ``sys.stderr``."""
    if end.code is None or isinstance(end.code, int):
        return end.code or 0
    sys.stderr.write(f"{end.code}\n")
    return 1
