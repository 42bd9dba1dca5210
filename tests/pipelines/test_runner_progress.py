"""`datashare run`'s progress line reads Airflow's ``dags test`` lines, grouped tasks included,
from Airflow's output, which goes to the run's log; after Ctrl-C they stop the night."""

import datetime as dt
import sys
import threading
from pathlib import Path

import pytest

from pipelines.runner import airflow_output, follow, run_dag, task_event
from pipelines.settings import Settings


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


def test_airflows_output_goes_to_the_log_whole_lines_heard_and_not_to_the_screen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What Airflow writes while the night runs lands in the log byte for byte, a line
    written in pieces is heard once whole, and a stream taken inside (as Airflow's loggers
    take it) still writes to the log afterwards, no longer heard."""
    log = tmp_path / "night.log"
    heard: list[str] = []
    with airflow_output(log, heard.append):
        print("[DAG TEST] starting task_id=plan", end="")
        sys.stderr.write(" map_index=-1\nTraceback: é\n")
        kept = sys.stdout
        sys.stdout.write("half a line")
    kept.write(" and the rest\n")
    assert heard == ["[DAG TEST] starting task_id=plan map_index=-1", "Traceback: é"]
    assert log.read_text() == (
        "[DAG TEST] starting task_id=plan map_index=-1\nTraceback: é\nhalf a line and the rest\n"
    )
    assert capsys.readouterr() == ("", "")


STARTS, ENDS = "[DAG TEST] starting task_id=", "[DAG TEST] end task task_id="


@pytest.mark.parametrize(
    ("lines", "pressed", "heard", "stops"),
    [
        (["x", f"{ENDS}plan map_index=-1"], False, [("plan", -1, True)], False),
        (["Task failed with exception"], True, [], False),  # not between tasks yet
        ([f"{ENDS}shard.prepare map_index=0"], True, [], True),
        ([f"{STARTS}finish map_index=-1"], True, [], True),
    ],
)
def test_after_ctrl_c_the_next_task_start_or_end_stops_the_night(
    lines: list[str], pressed: bool, heard: list[tuple[str, int, bool]], stops: bool
) -> None:
    events: list[tuple[str, int, bool]] = []
    ctrl_c = threading.Event()
    if pressed:
        ctrl_c.set()
    hear = follow(lambda *event: events.append(event), ctrl_c)
    stopped = False
    try:
        for line in lines:
            hear(line)
    except KeyboardInterrupt:
        stopped = True
    assert (events, stopped) == (heard, stops)


def test_a_night_is_refused_in_a_process_that_imported_airflow_already(tmp_path: Path) -> None:
    """Airflow reads its home and configuration when first imported: a night in a process
    that imported it before the night's environment was set would use another metadata
    database, so none starts (nothing is written either)."""
    import airflow  # noqa: F401

    settings = Settings(f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "config", tmp_path / "state")
    with pytest.raises(RuntimeError, match="imported before the night's environment"):
        run_dag(settings, "demo", dt.date(2026, 11, 27), dry_run=False, output="")
    assert list(tmp_path.iterdir()) == []
