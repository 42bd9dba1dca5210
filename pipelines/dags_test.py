"""``airflow dags test`` as ``datashare run`` starts it, minus the in-process API's old versions.

``python -m pipelines.dags_test DAG_ID DATE [--conf JSON]`` runs Airflow's own CLI
(``airflow dags test ...``, the same command, arguments and logs) after one change in this
process only: the in-process execution API, through which ``dag.test()`` runs every task,
serves only the API version that Airflow's in-process client speaks
(``airflow.sdk.api.datamodels._generated.API_VERSION``) instead of building Cadwyn's routers,
schemas and migrations for every version Airflow has ever released (ten in Airflow 3.3:
about a quarter of a small night's CPU, paid before the first task starts). Requests of the
one version served are handled exactly as before: the routes of that version are the same
(``tests/pipelines/test_dags_test.py``), and a version's own changes only tell Cadwyn how to
migrate to the versions before it, which nobody here asks for.

Nothing else is touched: the scheduler, the API server, the dag-processor and workers keep
every version. When Airflow's version bundle is not what this expects (the newest version is
not the client's, or the internals this narrows have moved), the API is left whole.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cadwyn import VersionBundle


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


def main(argv: list[str]) -> None:
    """Run ``airflow dags test *argv`` in this process, the API served for its client only."""
    import airflow  # noqa: F401  (settings first, as the airflow command does)

    with contextlib.suppress(ImportError, AttributeError, TypeError):  # moved: serve every one
        serve_client_version_only()
    from airflow.__main__ import main as airflow_main

    sys.argv = [str(Path(sys.executable).with_name("airflow")), "dags", "test", *argv]
    airflow_main()


if __name__ == "__main__":
    main(sys.argv[1:])
