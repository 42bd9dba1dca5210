"""Pay the quality gates' start-up once per Airflow worker, not once per task.

In Airflow 3 every task runs in a child that a long-lived worker process forks
(``airflow.sdk.execution_time.supervisor``: ``os.fork`` in ``WatchedSubprocess.start``):

- LocalExecutor: the scheduler forks its workers (``multiprocessing``, start method
  ``fork`` on Linux); each worker loops over tasks and forks one child per task;
- CeleryExecutor: ``airflow celery worker`` forks its prefork pool's children; each pool child
  forks one child per task.

What the process that forks has imported, the child has too. So this module, registered as an
Airflow policy plugin (entry point group ``airflow.policy``, which every Airflow process loads
when it initializes its settings), does nothing but, in ``airflow scheduler`` and
``airflow celery worker`` processes (a scheduler only when its executor is the
LocalExecutor), register :func:`preload` to run before the process's first ``fork``: Great
Expectations and pandas imported, GE's context, data source and input suite built, our
expectations registered, and the task module imported. Every worker and
task forked after that inherits them; a mapped ``prepare`` task no longer pays the import
(``benchmarks/startup_benchmark.py`` measures the difference). Nothing held is data.

The other Airflow processes (api-server, dag-processor, ``airflow dags test``, the
``datashare`` command, tests) load this module and do nothing. ``DATASHARE_PRELOAD=0``
turns it off (a scheduler that should stay small); with the ``spawn`` start method, forked
nothing is inherited and each process imports what it uses, as before.
"""

from __future__ import annotations

import logging
import os
import sys
import time

ENV = "DATASHARE_PRELOAD"
log = logging.getLogger("datashare")
_done = False


def forking_worker(argv: list[str]) -> bool:
    """True for the Airflow processes that fork task processes: ``airflow scheduler`` (its
    LocalExecutor workers) and ``airflow celery worker``."""
    if not argv or os.path.basename(argv[0]) != "airflow":
        return False
    return argv[1:2] == ["scheduler"] or argv[1:3] == ["celery", "worker"]


def preload() -> float:
    """Import and build what the gates and tasks need, once per process; the CPU seconds it
    took (0.0 when already done)."""
    global _done
    if _done:
        return 0.0
    _done = True
    start = time.process_time()
    from pipelines.quiet import quiet_libraries

    quiet_libraries()
    import pandas  # noqa: F401

    from pipelines.quality.context import warm_up

    warm_up()
    import pipelines.tasks  # noqa: F401  (the submission steps a task calls)

    return time.process_time() - start


def _forks_tasks_here() -> bool:
    """A scheduler forks task processes only through a LocalExecutor (a Celery scheduler
    sends them to workers: preloading there would only cost it memory)."""
    if sys.argv[1:2] != ["scheduler"]:
        return True
    try:
        from airflow.configuration import conf

        return "LocalExecutor" in conf.get("core", "executor", fallback="")
    except Exception:  # cannot tell: preloading is harmless
        return True


def _before_fork() -> None:
    global _done
    if _done:
        return
    if not _forks_tasks_here():
        _done = True
        return
    try:
        spent = preload()
    except Exception:  # a failed warm-up must not stop the worker: the task imports itself
        log.exception("datashare preload failed; tasks will import Great Expectations themselves")
        return
    if spent:
        log.info("datashare preload: Great Expectations ready for forked tasks (%.1f CPU-s)", spent)


def install(argv: list[str] | None = None) -> bool:
    """Register :func:`preload` to run before this process forks, if it is a forking worker
    and ``DATASHARE_PRELOAD`` is not ``0``; whether it did."""
    if os.environ.get(ENV, "1").strip().lower() in {"0", "false", "no", "off"}:
        return False
    if not forking_worker(sys.argv if argv is None else argv):
        return False
    os.register_at_fork(before=_before_fork)
    return True


install()
