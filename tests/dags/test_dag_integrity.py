"""Every destination file makes one DAG that imports cleanly, has no cycle and sane defaults
taken from the validated destination model; a broken file stops only its own destination and
is Airflow's import error of ``datashare_destination_errors.py``, naming its file and line."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import PROJECT

DESTINATIONS = {
    "vt": {"type": "local", "recipient": "VT-AOE", "agreements": ["vt-aoe-ecids"],
           "formats": ["hs_child_identity"], "local": {"root": "out/vt"}, "pool_size": 3},
    "mo": {"type": "local", "recipient": "MO-DESE", "agreements": ["mo-dese-consent"],
           "formats": ["hs_child_identity"], "local": {"root": "out/mo"}, "schedule": "30 1 * * *"},
    "off": {"type": "local", "recipient": "MO-DESE", "agreements": ["mo-dese-consent"],
            "formats": ["hs_child_identity"], "local": {"root": "out/off"}, "enabled": False},
    "tuned": {"type": "local", "recipient": "VT-AOE", "agreements": ["vt-aoe-ecids"],
              "formats": ["hs_child_identity"], "local": {"root": "out/t"}, "retries": 7,
              "tasks": {"retries": 4, "retry_delay_seconds": 90, "max_retry_delay_minutes": 20,
                        "execution_timeout_minutes": 45}},
}  # fmt: skip
BROKEN = "type: local\nrecipient: VT-AOE\nagreements: [vt-aoe-ecids]\nschedule: every night\n"


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = tmp_path_factory.mktemp("config")
    shutil.copytree(PROJECT / "config" / "agreements", config / "agreements")
    (config / "destinations").mkdir()
    for name, content in DESTINATIONS.items():
        (config / "destinations" / f"{name}.yaml").write_text(yaml.safe_dump(content))
    (config / "destinations" / "broken.yaml").write_text(BROKEN)
    return config


@pytest.fixture(scope="module")
def dagbag(config_dir: Path):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATASHARE_CONFIG_DIR", str(config_dir))
        return DagBag(dag_folder=str(PROJECT / "dags"))


def test_every_healthy_destination_makes_a_dag(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert set(dagbag.dag_ids) == {
        "datashare_vt", "datashare_mo", "datashare_off", "datashare_tuned"
    }  # fmt: skip


@pytest.mark.parametrize("dag_id", ["datashare_mo", "datashare_off"])
def test_parsing_for_one_dag_builds_only_that_destination(
    config_dir: Path, dagbag: Any, dag_id: str
) -> None:
    """Airflow's parsing context (a task process; ``datashare run`` sets it for its ``dags
    test``): only the DAG asked for is built, the same as in the full parse, and a broken
    file is still the import error."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.definitions.context import _AIRFLOW_PARSING_CONTEXT_DAG_ID
    from airflow.serialization.serialized_objects import DagSerialization

    # (Airflow's own _airflow_parsing_context_manager leaves the variable set afterwards)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(_AIRFLOW_PARSING_CONTEXT_DAG_ID, dag_id)
        patch.setenv("DATASHARE_CONFIG_DIR", str(config_dir))
        alone = DagBag(dag_folder=str(PROJECT / "dags"))
    assert alone.dag_ids == [dag_id]
    assert DagSerialization.to_dict(alone.dags[dag_id]) == DagSerialization.to_dict(
        dagbag.dags[dag_id]
    )
    assert [Path(where).name for where in alone.import_errors] == [
        "datashare_destination_errors.py"
    ]


def test_a_disabled_destination_is_never_scheduled_but_can_be_run(dagbag) -> None:  # type: ignore[no-untyped-def]
    off = dagbag.dags["datashare_off"]
    assert type(off.timetable).__name__ == "NullTimetable" and "disabled" in off.tags
    assert "shard" in off.task_group.children


def test_a_broken_destination_file_is_one_import_error_naming_its_line(dagbag) -> None:  # type: ignore[no-untyped-def]
    [(where, error)] = dagbag.import_errors.items()
    assert Path(where).name == "datashare_destination_errors.py", "not the healthy DAGs' file"
    assert "BrokenDestinationFiles: 1 destination file is not scheduled" in error
    assert "broken.yaml:4: schedule: " in error
    assert "datashare_broken" not in dagbag.dag_ids
    for dag_id in ("datashare_vt", "datashare_mo"):
        assert "shard" in dagbag.dags[dag_id].task_group.children


def test_two_broken_files_are_each_named_and_a_healthy_folder_has_no_error(tmp_path: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    (tmp_path / "destinations").mkdir()
    (tmp_path / "destinations" / "vt.yaml").write_text(yaml.safe_dump(DESTINATIONS["vt"]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATASHARE_CONFIG_DIR", str(tmp_path))
        healthy = DagBag(dag_folder=str(PROJECT / "dags"))
        (tmp_path / "destinations" / "a.yaml").write_text(BROKEN)
        (tmp_path / "destinations" / "b.yaml").write_text("type: local\nrecipient: [\n")
        broken = DagBag(dag_folder=str(PROJECT / "dags"))
    assert healthy.import_errors == {} and healthy.dag_ids == ["datashare_vt"]
    [error] = broken.import_errors.values()
    assert "2 destination files are not scheduled" in error
    assert f"{tmp_path / 'destinations' / 'a.yaml'}:4: schedule: " in error
    assert f"{tmp_path / 'destinations' / 'b.yaml'}:" in error
    assert broken.dag_ids == ["datashare_vt"]


def test_task_settings_come_from_the_model_and_client_retries_stay_separate(dagbag) -> None:  # type: ignore[no-untyped-def]
    for task in dagbag.dags["datashare_tuned"].tasks:
        assert task.retries == (0 if task.task_id in {"plan", "finish", "verdict"} else 4)
        assert task.retry_delay == dt.timedelta(seconds=90)
        assert task.max_retry_delay == dt.timedelta(minutes=20)
        assert task.execution_timeout == dt.timedelta(minutes=45)


def test_the_shipped_destinations_make_dags_too() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT / "dags"))
    assert bag.import_errors == {}
    assert "datashare_demo" in bag.dag_ids


@pytest.mark.parametrize("dag_id", ["datashare_vt", "datashare_mo"])
def test_graph_is_plan_shards_prepare_deliver_finish_without_cycles(dagbag, dag_id: str) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags[dag_id]
    prepare, deliver = "shard.prepare", "shard.deliver"
    assert {t.task_id for t in dag.tasks} == {
        "plan", "shards", prepare, deliver, "finish", "verdict"
    }  # fmt: skip
    order = [t.task_id for t in dag.topological_sort()]
    assert (
        order.index("plan")
        < order.index(prepare)
        < order.index(deliver)
        < order.index("finish")
        < order.index("verdict")
    )
    assert dag.task_dict["finish"].trigger_rule == "all_done"
    assert dag.task_dict["verdict"].trigger_rule == "all_success"
    assert dag.task_dict[deliver].upstream_task_ids == {prepare, "plan"}, "its own prepare only"
    assert [t.task_id for t in dag.leaves] == ["verdict"], "the run's status is the verdict's"


@pytest.mark.parametrize(("dag_id", "schedule", "pool"), [
    ("datashare_vt", "0 2 * * *", "datashare_vt"),
    ("datashare_mo", "30 1 * * *", "datashare_mo"),
])  # fmt: skip
def test_defaults_are_safe_for_unattended_nights(
    dagbag, dag_id: str, schedule: str, pool: str
) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags[dag_id]
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.timetable.expression == schedule
    for task in dag.tasks:
        assert task.execution_timeout is not None and task.execution_timeout <= dt.timedelta(
            hours=2
        )
        assert task.pool == pool
        assert task.on_failure_callback
        if task.task_id in {"shard.prepare", "shard.deliver"}:
            assert task.retries >= 1 and task.retry_exponential_backoff
    assert dag.params["dry_run"] is False


def test_dag_file_does_no_work_at_parse_time() -> None:
    """Parsing imports neither pandas, Great Expectations nor the database layer."""
    import subprocess
    import sys

    code = (
        "import sys, runpy; runpy.run_path(sys.argv[1]); "
        "heavy = [m for m in ('pandas', 'great_expectations', 'pipelines.submission') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(PROJECT / "dags" / "datashare_submissions.py")],
        capture_output=True, text=True, check=True, cwd=Path(PROJECT),
    )  # fmt: skip
    assert out.stdout.strip() == ""


def test_shard_tasks_are_named_by_their_programs(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags["datashare_vt"]
    for task_id in ("shard.prepare", "shard.deliver"):
        assert dag.task_dict[task_id].map_index_template == "{{ shard_label }}"


@pytest.mark.parametrize("tasks", [{"shard_children": 0}, {"shard_programs": 0}])
def test_shard_sizes_are_validated_with_the_destination(tmp_path: Path, tasks: dict) -> None:  # type: ignore[type-arg]
    from pipelines.destinations.schedule import DestinationConfigError, load_dag_settings

    path = tmp_path / "vt.yaml"
    path.write_text(yaml.safe_dump({**DESTINATIONS["vt"], "tasks": tasks}))
    with pytest.raises(DestinationConfigError, match=r"vt.yaml:\d+: tasks\.shard_"):
        load_dag_settings(path)


def test_every_task_pushes_its_result_as_one_xcom(dagbag) -> None:  # type: ignore[no-untyped-def]
    """A task annotated ``-> dict`` would otherwise also push every key of its result as an
    XCom of its own (Airflow infers ``multiple_outputs``): one in-process API call and one
    metadata row per key, which nothing reads (the tasks and the alert read the whole result)."""
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            outputs = getattr(task, "multiple_outputs", None)
            if outputs is None:  # a mapped task keeps it among its partial arguments
                outputs = task.partial_kwargs.get("multiple_outputs", False)
            assert outputs is False, f"{dag.dag_id}.{task.task_id}"
