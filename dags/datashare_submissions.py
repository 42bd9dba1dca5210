"""One nightly submission DAG per destination file in ``config/destinations/``.

Only wiring lives here: each task calls one function of ``pipelines.tasks``, imported inside
the task so that parsing this file stays cheap. The graph, per destination:

    plan -> shards -> shard[s].prepare -> shard[s].deliver -> finish -> verdict

``shard`` is a task group mapped over shards of the participating programs, sized by their
children (``tasks.shard_children`` and ``tasks.shard_programs``, :mod:`pipelines.submission.
shards`): one process pays Airflow's and Great Expectations' start-up for many programs. Each
task instance is named by its programs (``VT-HS-01 … VT-HS-25 (25)``). Outcomes stay per
program: inside a shard a program that fails stops only itself (its reason is recorded and the
others go on), and each shard's deliver waits only for its own prepare. ``finish``
(trigger rule ``all_done``) writes the summary, with one line per stopped program; ``verdict``
then fails the Airflow run unless every program was delivered, so the grid is red when any
program stopped; its failure (or ``finish``'s) sends the PII-free alert
(:class:`pipelines.alerts.RunAlertNotifier`, an Airflow notifier over an SMTP connection).
Tasks hand each other only run ids, counts, digests and the references of encrypted staged
batches, each result as one XCom (``multiple_outputs=False``: a task annotated ``-> dict``
would also push every key of it as an XCom of its own, one in-process API call and one
metadata row per key, which nothing reads).

Every setting comes from the validated destination model
(:class:`pipelines.destinations.schedule.DagSettings`, which the full ``DestinationConfig``
extends): schedule, pool and pool size, task retries, retry delay and execution timeout.

A broken destination file must not raise here: Airflow records import errors per DAG file,
and an error in this file would take every destination's DAG down. Each destination file is
validated on its own (:func:`~pipelines.destinations.schedule.scan_destinations`); the
healthy ones are built, a broken one gets no DAG, and ``datashare_destination_errors.py``
turns the broken ones into an Airflow import error naming each file's ``file:line`` (the UI's
import-error banner, ``airflow dags list-import-errors``). ``datashare destinations check``
and ``datashare doctor`` report the same lines. A destination with ``enabled: false`` gets a
DAG with no schedule, so it never runs by itself but can be dry-run (``datashare run NAME
--dry-run``).

Airflow's parsing context (:func:`airflow.sdk.get_parsing_context`): when Airflow parses this
file for one DAG only (a task process, ``airflow dags test``; ``datashare run`` sets it for the
whole ``dags test`` process) only that destination's DAG is built, the documented
optimisation for files that declare many DAGs. Without it (the dag-processor) every healthy
destination gets its DAG.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import cast

import pendulum
from airflow.sdk import (
    DAG,
    Param,
    dag,
    get_current_context,
    get_parsing_context,
    task,
    task_group,
)

from pipelines.alerts import RunAlertNotifier
from pipelines.destinations.schedule import DagSettings, scan_destinations

CONFIG_DIR = Path(os.environ.get("DATASHARE_CONFIG_DIR", Path(__file__).parent.parent / "config"))
START = pendulum.datetime(2026, 1, 1, tz="UTC")


def _report_failure(context: dict) -> None:
    """Say which task of which run failed, with the error's type only: no PII, no values."""
    from pipelines.tasks import report_failure

    report_failure(context)


def build(settings: DagSettings) -> DAG:
    """Declare the DAG of one validated destination."""
    name, tasks = settings.name, settings.tasks
    alert = RunAlertNotifier(name, list(settings.alerts.email), settings.alerts.smtp_conn_id)
    on_failure = [_report_failure, alert]

    @dag(
        dag_id=settings.dag_id,
        description=settings.description or f"Nightly submission to {settings.recipient}",
        schedule=settings.schedule if settings.enabled else None,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=["datashare", settings.type, *([] if settings.enabled else ["disabled"])],
        params={
            "dry_run": Param(False, type="boolean"),
            "output": Param("", type="string"),
        },
        default_args={
            "retries": tasks.retries,
            "retry_delay": dt.timedelta(seconds=tasks.retry_delay_seconds),
            "retry_exponential_backoff": True,
            "max_retry_delay": dt.timedelta(minutes=tasks.max_retry_delay_minutes),
            "execution_timeout": dt.timedelta(minutes=tasks.execution_timeout_minutes),
            "pool": settings.pool,
            "on_failure_callback": _report_failure,
        },
    )
    def submission() -> None:
        @task(retries=0, multiple_outputs=False)
        def plan(
            ds: str | None = None,
            params: dict | None = None,
            dag_run=None,  # type: ignore[no-untyped-def]
        ) -> dict:
            from pipelines.tasks import plan_run

            ids = {"dag_id": settings.dag_id, "run_id": getattr(dag_run, "run_id", "")}
            return plan_run(name, ds, params or {}, ids)

        @task
        def shards(run: dict) -> list[list[str]]:
            return [list(shard) for shard in run["shards"]]

        def _name(programs: list[str], stopped: int = 0) -> None:
            from pipelines.submission.shards import label

            get_current_context()["shard_label"] = label(programs, stopped)  # type: ignore[typeddict-unknown-key]

        @task(map_index_template="{{ shard_label }}", multiple_outputs=False)
        def prepare(programs: list[str], run: dict) -> dict:
            from pipelines.tasks import prepare_shard

            _name(programs)
            prepared = prepare_shard(run, programs)
            _name(programs, len(prepared["stopped"]))
            return prepared

        @task(map_index_template="{{ shard_label }}", multiple_outputs=False)
        def deliver(prepared: dict, run: dict) -> dict:
            from pipelines.tasks import deliver_shard

            ti = get_current_context()["ti"]
            _name(prepared["programs"], len(prepared["stopped"]))
            final = ti.try_number > ti.max_tries  # Airflow retries a transient fault until then
            delivered = deliver_shard(run, prepared, final_attempt=final)
            _name(delivered["programs"], len(delivered["stopped"]))
            return delivered

        @task_group
        def shard(programs: list[str], run: dict):  # type: ignore[no-untyped-def]
            return deliver(cast(dict, prepare(programs, run)), run)

        @task(
            trigger_rule="all_done",
            retries=0,
            on_failure_callback=on_failure,
            multiple_outputs=False,
        )
        def finish(run: dict, delivered) -> dict:  # type: ignore[no-untyped-def]
            from pipelines.tasks import finish_run

            return finish_run(run, delivered)

        @task(retries=0, on_failure_callback=on_failure, multiple_outputs=False)
        def verdict(summary: dict) -> dict:
            from pipelines.tasks import verdict as judge

            return judge(summary)

        # A task called here returns an XComArg, which Airflow resolves to the dict the task
        # returned before the next task runs; the SDK's stubs type the call's result as the
        # XComArg, not as what the next task receives, hence the casts (no runtime effect).
        run = cast(dict, plan())
        delivered = shard.partial(run=run).expand(programs=shards(run))
        verdict(cast(dict, finish(run, delivered)))

    return submission()


def wanted(settings: DagSettings, dag_id: str | None) -> bool:
    """Whether to build this destination's DAG when Airflow parses for ``dag_id`` (None: all)."""
    return dag_id is None or settings.dag_id == dag_id


_parsing_for = get_parsing_context().dag_id
for _settings in scan_destinations(CONFIG_DIR / "destinations").settings:
    if wanted(_settings, _parsing_for):
        build(_settings)
