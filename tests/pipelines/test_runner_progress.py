"""`datashare run`'s progress line reads Airflow's ``dags test`` lines, grouped tasks included."""

import pytest

from pipelines.runner import task_event


@pytest.mark.parametrize(
    ("line", "event"),
    [
        ("[DAG TEST] starting task_id=plan map_index=-1", ("plan", -1, False)),
        ("x [DAG TEST] starting task_id=shard.prepare map_index=0", ("prepare", 0, False)),
        ("[DAG TEST] end task task_id=shard.deliver map_index=3", ("deliver", 3, True)),
        ("[DAG TEST] end task task_id=verdict map_index=-1", ("verdict", -1, True)),
        ("[DAG TEST] running task <TaskInstance: shard.prepare>", None),
        ("starting task_id=plan map_index=-1", None),
    ],
)
def test_progress_lines_name_the_task_without_its_group(line: str, event: object) -> None:
    assert task_event(line) == event
