"""Airflow's metadata database migrated once per test process and copied into each test's
state folder, so a run through ``datashare run`` skips ``airflow db migrate`` (the product
still sets its destination's pool, and migrates itself when the copy is missing or stale).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
MARKER = "datashare-ready.json"  # pipelines.runner.prepare_airflow's record of what is done


@functools.cache
def _migrated() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="datashare-airflow-template-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    home, config = folder / "airflow", folder / "config"
    (config / "destinations").mkdir(parents=True)
    home.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATASHARE_", "AIRFLOW"))},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(PROJECT / "airflow.cfg"),
        "DATASHARE_HOME": str(PROJECT),
        "DATASHARE_CONFIG_DIR": str(config),
        "GX_ANALYTICS_ENABLED": "False",
    }
    command = [str(Path(sys.executable).with_name("airflow")), "db", "migrate"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return home / "airflow.db"


def migrated_airflow(state: Path) -> Path:
    """Put a freshly migrated Airflow metadata database in ``state/airflow`` (where
    ``datashare run`` looks for it); returns that folder."""
    import airflow

    home = state / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated(), home / "airflow.db")
    (home / MARKER).write_text(json.dumps({"airflow": airflow.__version__, "pools": []}))
    return home
