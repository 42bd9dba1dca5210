"""Run one submission through Airflow itself (``airflow dags test``, in this process), with
this project's ``airflow.cfg``, and follow its progress.

Airflow's metadata lives in the local state folder (SQLite by default); it is created or
migrated on first use (``airflow db migrate``, a process of its own), and each destination
gets its pool. Airflow's own output is written to a log file in the state folder, not to the
screen.

What a small night costs is mostly fixed start-up, so the night runs in ``datashare run``'s
own process (:func:`run_dag`): Airflow's ``dags test`` command, its tasks and their gates pay
one interpreter's start-up, not a second one after the CLI's. Airflow reads its configuration
from the environment when it is first imported, which the CLI has not done: the environment a
separate ``airflow dags test`` process got (home, config, secrets, settings) is set first, and
restored after. Everything Airflow writes to ``sys.stdout`` and ``sys.stderr`` goes to the log
(:class:`LogTap`), and its ``[DAG TEST]`` lines drive the progress line.

The night is kept to the destination's own work: Airflow's parsing context names its DAG, so
each parse of the DAG folder (the CLI's, and ``dag.test()``'s re-sync) builds and stores that
one DAG, not every destination's; the migration check is skipped (:func:`prepare_airflow`
migrated for the installed Airflow); and ``dag.test()``'s in-process execution API, through
which it runs each task, is built for its client's API version only, not for every version
Airflow has released (:mod:`pipelines.dags_test`, which runs Airflow's own ``dags test``
command: about a quarter of the run's CPU otherwise). ``use_executor`` would need a running
api-server instead, and ``mark_success_pattern`` skips tasks rather than running them.
``benchmarks/startup_benchmark.py`` measures the run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.dags_test import dags_test
from pipelines.destinations.registry import load_destination
from pipelines.paths import safe_join
from pipelines.settings import Settings

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12

PROJECT = Path(__file__).resolve().parent.parent
# airflow.sdk.definitions.context._AIRFLOW_PARSING_CONTEXT_DAG_ID, read by get_parsing_context()
PARSING_CONTEXT_DAG_ID = "_AIRFLOW_PARSING_CONTEXT_DAG_ID"
TASK_EVENT = re.compile(
    r"\[DAG TEST\] (starting|end task) task_id=(?:[\w]+\.)*(\w+) map_index=(-?\d+)"
)


def task_event(line: str) -> tuple[str, int, bool] | None:
    """(task name without its group, map index, finished) of a ``dags test`` progress line."""
    match = TASK_EVENT.search(line)
    if match is None:
        return None
    return match.group(2), int(match.group(3)), match.group(1) == "end task"


@dataclass(frozen=True)
class AirflowRun:
    """How an Airflow run ended and where its log is."""

    returncode: int
    log: Path


def airflow_home(settings: Settings) -> Path:
    """Airflow's home for this project: ``<state>/airflow``."""
    return settings.state_dir / "airflow"


def airflow_environ(settings: Settings) -> dict[str, str]:
    """The environment Airflow runs in: this project's config, home, settings and dags."""
    home = airflow_home(settings)
    return {
        **os.environ,
        **settings.environ(),
        "DATASHARE_HOME": str(PROJECT),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(PROJECT / "airflow.cfg"),
        "GX_ANALYTICS_ENABLED": "False",
        "TQDM_DISABLE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")])),
    }


def local_environ(settings: Settings) -> dict[str, str]:
    """:func:`airflow_environ` with the generated Fernet key and JWT secret."""
    from pipelines.airflow_setup import read_secrets

    env = airflow_environ(settings)
    for key, value in read_secrets(airflow_home(settings)).items():
        env.setdefault(key, value)
    return env


def _airflow(settings: Settings, *args: str, log: Path) -> int:
    command = [str(Path(sys.executable).with_name("airflow")), *args]
    with log.open("a") as out:
        out.write(f"$ airflow {' '.join(args)}\n")
        out.flush()
        return subprocess.call(
            command, env=local_environ(settings), stdout=out, stderr=subprocess.STDOUT
        )


def prepare_airflow(settings: Settings, destination: str, log: Path) -> None:
    """Create or migrate Airflow's metadata database, its secrets, and every destination's
    pool (when the destinations' pool sizes changed), once."""
    from pipelines.airflow_setup import ensure_secrets, pool_entries, private_metadata, sync_pools
    from pipelines.destinations.schedule import scan_destinations

    home = airflow_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    ensure_secrets(home)
    private_metadata(local_environ(settings))  # 0600, before Airflow writes it
    marker = home / "datashare-ready.json"
    ready = json.loads(marker.read_text()) if marker.exists() else {}
    # the installed version from the package metadata: importing airflow here would cost this
    # process about as much as `airflow version` does, only to read a string
    installed = version("apache-airflow")
    if ready.get("airflow") != installed:
        if _airflow(settings, "db", "migrate", log=log) != 0:
            raise RuntimeError(f"airflow db migrate failed; see {log}")
        ready = {"airflow": installed, "pools": {}}
    # the pools of the DAGs the DAG file builds: the destinations' schedule settings (the full
    # check of every destination, Ed-Fi's specs included, is `datashare destinations check`'s)
    configs = scan_destinations(settings.destinations_dir).settings
    if not any(c.name == destination for c in configs):
        load_destination(destination, settings.destinations_dir)  # raises with file:line
    pools = pool_entries(configs)
    if ready.get("pools") != pools:
        sync_pools(local_environ(settings), configs, log)
        ready["pools"] = pools
    marker.write_text(json.dumps(ready))


class LogTap(io.RawIOBase):
    """What Airflow writes in this process (all that ``airflow dags test`` wrote to its
    stdout and stderr as a process of its own): appended to the run's log as it comes, each
    whole line heard by ``hear``. Airflow writes from several threads (its in-process API
    logs from its own): one write at a time."""

    def __init__(self, log: Path, hear: Callable[[str], None]) -> None:
        super().__init__()
        self._log = log.open("ab", buffering=0)
        self._partial = b""
        self._lock = threading.Lock()
        self.hear = hear

    @property
    def name(self) -> str:
        return self._log.name

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        """The log's: what writes to the descriptor itself (``faulthandler``) lands there."""
        return self._log.fileno()

    def write(self, data: Buffer, /) -> int:
        written = bytes(data)
        with self._lock:
            self._log.write(written)
            *lines, self._partial = (self._partial + written).split(b"\n")
            for line in lines:
                self.hear(line.decode(errors="replace"))
        return len(written)

    def close(self) -> None:
        self._log.close()
        super().close()


@contextmanager
def airflow_output(log: Path, hear: Callable[[str], None]) -> Iterator[None]:
    """``sys.stdout`` and ``sys.stderr`` into the run's log (:class:`LogTap`) while the block
    runs. Airflow's loggers, made while it runs, keep writing to the log afterwards (no longer
    heard): none of Airflow's output reaches the screen."""
    tap = LogTap(log, hear)
    stream = io.TextIOWrapper(tap, encoding="utf-8", errors="backslashreplace",
                              line_buffering=True, write_through=True)  # fmt: skip
    screen = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = stream
    try:
        yield
    finally:
        sys.stdout, sys.stderr = screen
        tap.hear = lambda line: None


@contextmanager
def environ(env: dict[str, str]) -> Iterator[None]:
    """``os.environ`` as ``env`` while the block runs, then as it was."""
    saved = os.environ.copy()
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class Terminated(BaseException):
    """SIGTERM stopped the night. Not an ``Exception``: like ``KeyboardInterrupt``, nothing in
    Airflow that catches a task's or a command's errors takes it."""


class Stops:
    """Ctrl-C and SIGTERM as the night heard them. Ctrl-C sets ``ctrl_c``. SIGTERM is seen
    through the signal wake-up pipe (``wakeup``, its read end), to which the interpreter
    writes the number of every signal a Python handler takes, whichever handler that is:
    during a task, Airflow's task runner takes SIGTERM (it calls the task's ``on_kill`` and
    the task goes on), and its handler stays set after the task."""

    def __init__(self) -> None:
        self.ctrl_c = threading.Event()
        self.wakeup: int | None = None
        self._sigterm = False

    def sigterm(self) -> bool:
        """Whether SIGTERM arrived (when this process takes it: not when it ignores it)."""
        if not self._sigterm and self.wakeup is not None:
            with contextlib.suppress(BlockingIOError):
                while numbers := os.read(self.wakeup, 512):
                    self._sigterm |= signal.SIGTERM in numbers
        return self._sigterm


@contextmanager
def signals() -> Iterator[Stops]:
    """Ctrl-C (SIGINT) raises ``KeyboardInterrupt`` as it always does, and SIGTERM no longer
    ends the process at once; both are remembered in the :class:`Stops` yielded (when this
    process takes them at all: not when it ignores them). After the block, SIGINT, SIGTERM
    and the signal wake-up descriptor are as before it (Airflow's task runner sets its own
    SIGTERM handler for each task and leaves the last one set)."""
    stops = Stops()
    if threading.current_thread() is not threading.main_thread():
        yield stops
        return
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    def interrupt(signum: int, frame: object) -> None:
        stops.ctrl_c.set()
        raise KeyboardInterrupt

    if before[0] is signal.default_int_handler:
        signal.signal(signal.SIGINT, interrupt)
    woken = write = -1
    if before[1] is signal.SIG_DFL:
        stops.wakeup, write = os.pipe()
        os.set_blocking(stops.wakeup, False)
        os.set_blocking(write, False)
        woken = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, lambda signum, frame: None)  # heard through the pipe
    try:
        yield stops
    finally:
        for number, handler in zip((signal.SIGINT, signal.SIGTERM), before, strict=True):
            if handler is not None:  # None: not set from Python, left as it is
                signal.signal(number, handler)
        if stops.wakeup is not None:
            signal.set_wakeup_fd(woken)
            stops.sigterm()  # what arrived until now, kept
            os.close(stops.wakeup)
            os.close(write)
            stops.wakeup = None


def follow(on_task: Callable[[str, int, bool], None], stops: Stops) -> Callable[[str], None]:
    """What hears Airflow's lines: each task's start and end go to ``on_task``. Once Ctrl-C
    was pressed or SIGTERM arrived, the next of them stops the night (``KeyboardInterrupt``,
    :class:`Terminated`): Airflow's task runner turns a Ctrl-C into the running task's
    failure, SIGTERM into its ``on_kill``, and ``dag.test()`` would go on with the next task,
    but these lines are logged outside any task, where nothing catches either."""

    def hear(line: str) -> None:
        if (event := task_event(line)) is None:
            return
        if threading.current_thread() is threading.main_thread():
            stop(stops)
        on_task(*event)

    return hear


def stop(stops: Stops) -> None:
    """Raise :class:`Terminated` once SIGTERM arrived, else ``KeyboardInterrupt`` once Ctrl-C
    was pressed."""
    if stops.sigterm():
        raise Terminated
    if stops.ctrl_c.is_set():
        raise KeyboardInterrupt


def run_dag(
    settings: Settings,
    destination: str,
    run_date: dt.date,
    *,
    dry_run: bool,
    output: str,
    on_task: Callable[[str, int, bool], None] = lambda task, index, done: None,
) -> AirflowRun:
    """``airflow dags test`` the destination's DAG for ``run_date`` in this process (one night
    per process: Airflow keeps the configuration it was first imported with); ``on_task``
    hears each task start (done False) and end (done True). Ctrl-C stops the night after the
    running task, with ``KeyboardInterrupt``; SIGTERM too, with :class:`Terminated`."""
    if "airflow" in sys.modules:  # it read its configuration at import, without ours
        raise RuntimeError("Airflow was imported before the night's environment was set")
    logs = settings.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    log = safe_join(logs, f"{destination}-{run_date.isoformat()}-{stamp}.log", role="destination")
    prepare_airflow(settings, destination, log)
    conf = json.dumps({"dry_run": dry_run, "output": output})
    # Airflow's parsing context for the whole night: every parse of the DAG folder in it
    # (the CLI's and dag.test()'s re-sync) builds this destination's DAG only
    # (and no check of the metadata's migrations: prepare_airflow has just migrated them for
    # the installed Airflow; the check reads every migration script, ~0.3 CPU-s)
    env = {
        **local_environ(settings),
        PARSING_CONTEXT_DAG_ID: f"datashare_{destination}",
        "AIRFLOW__DATABASE__CHECK_MIGRATIONS": "False",
    }
    with environ(env), signals() as stops, airflow_output(log, follow(on_task, stops)):
        returncode = dags_test([f"datashare_{destination}", run_date.isoformat(), "--conf", conf])
    stop(stops)  # Airflow went on after it: stop as Ctrl-C stops the command
    return AirflowRun(returncode, log)
