"""Benchmark: the fixed start-up costs of a small program's night, and of a forked task.

Run: ``.venv/bin/python benchmarks/startup_benchmark.py [--runs N] [--skip-run]``.

Prints one table:

- ``airflow version`` and ``datashare run demo`` (the 2 Vermont demo programs, about 640
  children, on a fresh SQLite world in a temporary folder): CPU seconds (user + sys of the
  whole process tree) and wall seconds, the median of ``--runs`` runs (default 3) after a
  first run shown on its own (it also creates Airflow's metadata database), and their CPU
  ratio;
- the gates' start-up in a forked task (how Airflow 3's LocalExecutor and Celery workers run
  every task, ``pipelines/preload.py``): a parent forks a child that imports Great
  Expectations, builds its context and runs the input suite on 300 rows; its CPU is measured
  with the parent cold (nothing preloaded) and warm (``pipelines.preload.preload()`` first).

Also prints the machine's load and whether installed packages have cached bytecode (without
it every process compiles every module it imports, which costs ``airflow version`` and
``datashare run`` alike; ``scripts/bootstrap.sh`` compiles at install time).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RUN_DATE = "2026-11-27"


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """CPU (user + sys of the process and its children) and wall seconds of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise SystemExit(f"{' '.join(command[:3])} failed:\n" + "\n".join(tail))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def median_of(runs: int, command: list[str], env: dict[str, str] | None = None) -> tuple:
    samples = [timed(command, env) for _ in range(runs)]
    return (
        statistics.median(cpu for cpu, _ in samples),
        statistics.median(wall for _, wall in samples),
    )


def demo_world(folder: Path) -> dict[str, str]:
    """A seeded demo database, demo keys and a state folder under ``folder``."""
    env = {
        **os.environ,
        "DATASHARE_DATABASE_URL": f"sqlite:///{folder / 'datashare.db'}",
        "DATASHARE_STATE_DIR": str(folder / "state"),
        "DATASHARE_CONFIG_DIR": str(PROJECT / "config"),
    }
    for args in (["demo", "seed"], ["keys", "init-demo"]):
        timed([str(BIN / "datashare"), *args], env)
    return env


def forked_gate_cpu(preloaded: bool) -> float:
    """CPU seconds of a forked child that validates 300 rows with the input suite, its parent
    having preloaded (or not) what :func:`pipelines.preload.preload` loads."""
    if preloaded:
        from pipelines.preload import preload

        preload()
    pid = os.fork()
    if pid == 0:  # the task process
        code = 0
        try:
            from pipelines.quality import validate_input
            from tests.pipelines.quality_frames import RUN_DATE as DATE
            from tests.pipelines.quality_frames import clean_extract

            validate_input(clean_extract(300), DATE)
        except BaseException:  # report through the exit code only
            code = 1
        os._exit(code)
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("the forked gate failed")
    return usage.ru_utime + usage.ru_stime


def forked_gate(preloaded: bool) -> float:
    """:func:`forked_gate_cpu` in a fresh interpreter (so cold stays cold)."""
    here = str(Path(__file__).parent)
    code = (
        f"import sys; sys.path.insert(0, {here!r}); from startup_benchmark import forked_gate_cpu;"
        f" print(forked_gate_cpu({preloaded!r}))"
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "GX_ANALYTICS_ENABLED": "false"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def bytecode_cached() -> bool:
    """Whether Great Expectations' modules have compiled bytecode next to them."""
    spec = importlib.util.find_spec("great_expectations.core.expectation_suite")
    origin = spec.origin if spec else None
    return bool(origin) and Path(importlib.util.cache_from_source(str(origin))).exists()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-run", action="store_true", help="skip `datashare run demo`")
    args = parser.parse_args()
    load = os.getloadavg()
    rows: list[tuple[str, str, str]] = []
    version_cpu, version_wall = median_of(args.runs, [str(BIN / "airflow"), "version"])
    rows.append(("airflow version", f"{version_cpu:.1f}", f"{version_wall:.1f}"))
    if not args.skip_run:
        with tempfile.TemporaryDirectory(prefix="startup-bench-") as folder:
            env = demo_world(Path(folder))
            run = [str(BIN / "datashare"), "run", "demo", "--date", RUN_DATE]
            first_cpu, first_wall = timed(run, env)
            rows.append(("datashare run demo, first", f"{first_cpu:.1f}", f"{first_wall:.1f}"))
            run_cpu, run_wall = median_of(args.runs, run, env)
            rows.append(("datashare run demo", f"{run_cpu:.1f}", f"{run_wall:.1f}"))
            rows.append(("  ratio to airflow version", f"{run_cpu / version_cpu:.1f}x", ""))
    cold = statistics.median(forked_gate(False) for _ in range(args.runs))
    warm = statistics.median(forked_gate(True) for _ in range(args.runs))
    rows.append(("forked task's gate, parent cold", f"{cold:.1f}", ""))
    rows.append(("forked task's gate, parent preloaded", f"{warm:.1f}", ""))
    print(
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores; "
        f"bytecode cached: {'yes' if bytecode_cached() else 'no'}; "
        f"median of {args.runs} runs"
    )
    width = max(len(name) for name, *_ in rows)
    print(f"{'':{width}}  {'CPU s':>7}  {'wall s':>7}")
    for name, cpu, wall in rows:
        print(f"{name:{width}}  {cpu:>7}  {wall:>7}")
    after = os.getloadavg()
    print(f"load average after: {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}")


if __name__ == "__main__":
    main()
