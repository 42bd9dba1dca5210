"""The gates' start-up is paid once per forking worker (``pipelines/preload.py``), and the
modules GE imports but our suites never use are loaded only when used."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipelines.preload import forking_worker

PROJECT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "forks"),
    [
        (["/venv/bin/airflow", "scheduler"], True),
        (["/venv/bin/airflow", "celery", "worker", "--celery-hostname", "w1@%h"], True),
        (["/venv/bin/airflow", "api-server"], False),
        (["/venv/bin/airflow", "dag-processor"], False),
        (["/venv/bin/airflow", "dags", "test", "datashare_demo"], False),
        (["/venv/bin/airflow", "celery", "flower"], False),
        (["/venv/bin/datashare", "run", "demo"], False),
        (["pytest"], False),
        ([], False),
    ],
)
def test_only_processes_that_fork_tasks_preload(argv: list[str], forks: bool) -> None:
    assert forking_worker(argv) is forks


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, "PYTHONPATH": str(PROJECT), "GX_ANALYTICS_ENABLED": "false", **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


FORK_AND_REPORT = """
    import os, sys
    from pipelines.preload import install
    installed = install(ARGV)
    loaded_before = "great_expectations" in sys.modules
    pid = os.fork()
    if pid == 0:  # like a task process forked by a LocalExecutor or Celery worker
        from pipelines.quality.context import get_context
        inherited = "great_expectations" in sys.modules and get_context.cache_info().currsize == 1
        os._exit(0 if inherited else 3)
    _, status = os.waitpid(pid, 0)
    print(installed, loaded_before, os.waitstatus_to_exitcode(status))
    if "great_expectations" in sys.modules:  # GE's unused imports wait for a first use
        print(type(sys.modules["scipy.stats"]).__name__, type(sys.modules["altair"]).__name__)
        from scipy import stats
        print(round(float(stats.entropy([0.5, 0.5], [0.25, 0.75])), 4))
        import altair
        print(altair.Chart.__name__, type(sys.modules["altair"]).__name__)
"""


def test_when_a_scheduler_forks_then_the_child_inherits_ge_and_its_context() -> None:
    code = FORK_AND_REPORT.replace("ARGV", "['/venv/bin/airflow', 'scheduler']")
    result = _python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[:3] == ["True", "False", "0"]
    # scipy.stats and altair stood in until first used, then are the real modules
    assert result.stdout.split()[3:] == ["Deferred", "Deferred", "0.1438", "Chart", "module"]


def test_when_preload_is_off_then_nothing_is_registered_and_nothing_inherited() -> None:
    code = FORK_AND_REPORT.replace("ARGV", "['/venv/bin/airflow', 'scheduler']")
    result = _python(code, DATASHARE_PRELOAD="0")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "False", "3"]


def test_warm_up_runs_no_collection_and_leaves_the_collector_on() -> None:
    """Great Expectations' import and context are built with the collector paused (the full
    collections their growth triggers walked the whole heap), and it is on again after."""
    out = _python(
        """
        import gc
        from pipelines.quality.context import warm_up
        seen = []
        def count(phase, info):
            if phase == "start":
                seen.append(info["generation"])
        gc.callbacks.append(count)
        warm_up()
        print(len(seen), max(seen, default=0), gc.isenabled(), gc.get_freeze_count())
        """
    )
    assert out.returncode == 0, out.stderr[-2000:]
    collections, oldest, enabled, frozen = out.stdout.split()[-4:]
    # none while it ran: at most the young collection due as the collector comes back on
    # (the old warm-up ran hundreds, full ones among them)
    assert int(collections) <= 1 and oldest == "0", out.stdout
    assert (enabled, frozen) == ("True", "0")
