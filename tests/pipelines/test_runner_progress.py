"""`datashare run`'s progress line reads Airflow's ``dags test`` lines, grouped tasks included,
from Airflow's output, which goes to the run's log; after Ctrl-C they stop the night."""

import contextlib
import datetime as dt
import os
import signal
import sys
from pathlib import Path

import pytest

from pipelines.runner import (
    Terminated,
    airflow_output,
    follow,
    run_dag,
    signals,
    stop,
    task_event,
)
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
    ("lines", "signalled", "heard", "stops"),
    [
        (["x", f"{ENDS}plan map_index=-1"], None, [("plan", -1, True)], None),
        (["Task failed with exception"], signal.SIGINT, [], None),  # not between tasks yet
        ([f"{ENDS}shard.prepare map_index=0"], signal.SIGINT, [], KeyboardInterrupt),
        ([f"{STARTS}finish map_index=-1"], signal.SIGINT, [], KeyboardInterrupt),
        (["on_kill"], signal.SIGTERM, [], None),
        ([f"{ENDS}shard.prepare map_index=0"], signal.SIGTERM, [], Terminated),
        ([f"{STARTS}finish map_index=-1"], signal.SIGTERM, [], Terminated),
    ],
)
def test_after_ctrl_c_or_sigterm_the_next_task_start_or_end_stops_the_night(
    lines: list[str],
    signalled: signal.Signals | None,
    heard: list[tuple[str, int, bool]],
    stops: type[BaseException] | None,
) -> None:
    """The signal is a real one, sent to this process inside :func:`signals`; SIGTERM is
    taken by a handler of its own, as Airflow's task runner sets one for each task."""
    events: list[tuple[str, int, bool]] = []
    stopped: type[BaseException] | None = None
    with signals() as night:
        signal.signal(signal.SIGTERM, lambda signum, frame: None)  # the task runner's on_kill
        with contextlib.suppress(KeyboardInterrupt):
            if signalled is not None:
                os.kill(os.getpid(), signalled)
        hear = follow(lambda *event: events.append(event), night)
        try:
            for line in lines:
                hear(line)
        except (KeyboardInterrupt, Terminated) as stop:
            stopped = type(stop)
    assert (events, stopped) == (heard, stops)


def test_after_the_night_its_signal_handlers_are_gone_and_sigterm_still_counts() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with signals() as night:
        signal.signal(signal.SIGTERM, lambda signum, frame: None)  # the task runner's on_kill
        os.kill(os.getpid(), signal.SIGTERM)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert signal.set_wakeup_fd(-1) == -1
    assert night.sigterm()
    with pytest.raises(Terminated):
        stop(night)


def test_a_night_is_refused_in_a_process_that_imported_airflow_already(tmp_path: Path) -> None:
    """Airflow reads its home and configuration when first imported: a night in a process
    that imported it before the night's environment was set would use another metadata
    database, so none starts (nothing is written either)."""
    import airflow  # noqa: F401

    settings = Settings(f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "config", tmp_path / "state")
    with pytest.raises(RuntimeError, match="imported before the night's environment"):
        run_dag(settings, "demo", dt.date(2026, 11, 27), dry_run=False, output="")
    assert list(tmp_path.iterdir()) == []
