"""One nightly submission DAG per destination file in ``config/destinations/``.

Only wiring lives here: each task calls one function of ``pipelines.tasks``, imported inside
the task so that parsing this file stays cheap. The graph, per destination:

    plan -> prepare[program] -> deliver[program] -> finish

``prepare`` and ``deliver`` are mapped over the participating programs, so the grid shows
which program stopped where. Tasks hand each other only run ids, counts, digests and the
paths of encrypted staged files.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pendulum
import yaml
from airflow.sdk import Param, dag, task

CONFIG_DIR = Path(os.environ.get("DATASHARE_CONFIG_DIR", Path(__file__).parent.parent / "config"))
START = pendulum.datetime(2026, 1, 1, tz="UTC")


def _report_failure(context: dict) -> None:
    """Say which task of which run failed, with the error's type only: no PII, no values."""
    from pipelines.tasks import report_failure

    report_failure(context)


def build(name: str, settings: dict) -> None:
    """Declare the DAG of one destination."""
    retries = int(settings.get("retries", 2))

    @dag(
        dag_id=f"datashare_{name}",
        description=f"Nightly submission to {settings.get('recipient', name)}",
        schedule=settings.get("schedule", "0 2 * * *"),
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=["datashare", str(settings.get("type", "local"))],
        params={
            "dry_run": Param(False, type="boolean"),
            "output": Param("", type="string"),
        },
        default_args={
            "retries": retries,
            "retry_delay": dt.timedelta(seconds=int(settings.get("retry_delay_seconds", 30))),
            "retry_exponential_backoff": True,
            "max_retry_delay": dt.timedelta(minutes=30),
            "execution_timeout": dt.timedelta(minutes=int(settings.get("timeout_minutes", 60))),
            "pool": f"datashare_{name}",
            "on_failure_callback": _report_failure,
        },
    )
    def submission() -> None:
        @task
        def plan(ds: str | None = None, params: dict | None = None) -> dict:
            from pipelines.tasks import plan_run

            return plan_run(name, ds, params or {})

        @task
        def programs(run: dict) -> list[str]:
            return list(run["programs"])

        @task(map_index_template="{{ program }}")
        def prepare(program: str, run: dict) -> dict:
            from pipelines.tasks import prepare_program

            return prepare_program(run, program)

        @task(map_index_template="{{ prepared['program'] }}")
        def deliver(prepared: dict, run: dict) -> dict:
            from pipelines.tasks import deliver_program

            return deliver_program(run, prepared)

        @task(trigger_rule="all_done", retries=0)
        def finish(run: dict, delivered: list[dict]) -> dict:
            from pipelines.tasks import finish_run

            return finish_run(run, list(delivered))

        run = plan()
        prepared = prepare.partial(run=run).expand(program=programs(run))
        delivered = deliver.partial(run=run).expand(prepared=prepared)
        finish(run, delivered)

    submission()


for _path in sorted((CONFIG_DIR / "destinations").glob("*.yaml")):
    _settings = yaml.safe_load(_path.read_text()) or {}
    if _settings.get("enabled", True):
        build(_path.stem, _settings)
