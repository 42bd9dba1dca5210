"""What an Airflow deployment of datashare needs besides Airflow itself: a pool per
destination, and a Fernet key and JWT secret shared by every Airflow process.

``datashare airflow sync`` calls :func:`sync`. The secrets are generated once into
``<AIRFLOW_HOME>/datashare-secrets.env`` (mode 0600) as ``AIRFLOW__CORE__FERNET_KEY`` and
``AIRFLOW__API_AUTH__JWT_SECRET``: every Airflow process (api-server, scheduler,
dag-processor, each Celery worker) must load the same file, or set the same two variables
from a secrets manager. Without a shared JWT secret each process signs its own tokens
("Invalid auth token"); without a Fernet key connection passwords are stored in plaintext.

Explicit ``AIRFLOW_*`` variables of the caller's environment win over the project's local
defaults (``<state>/airflow`` with SQLite), so the same commands serve a production deployment.

On a single host Airflow's metadata is a SQLite file (``[database] sql_alchemy_conn``, by
default ``<AIRFLOW_HOME>/airflow.db``). It holds connections, variables, XCom and task logs'
references, so :func:`private_metadata` makes it readable by its owner only (0600) at every
set-up (``datashare run`` before Airflow starts, ``datashare airflow sync``): created empty
with that mode when missing, so Airflow's migration never writes it world-readable, and reset
when a copy or an ``airflow db migrate`` left it wider. SQLite gives its journal and WAL files
the database file's mode. ``datashare doctor`` checks it.
"""

from __future__ import annotations

import base64
import configparser
import json
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from pipelines.destinations.schedule import DagSettings
from pipelines.runner import airflow_environ
from pipelines.settings import Settings

SECRETS_FILE = "datashare-secrets.env"
FERNET_ENV = "AIRFLOW__CORE__FERNET_KEY"
JWT_ENV = "AIRFLOW__API_AUTH__JWT_SECRET"


def deployment_environ(settings: Settings) -> dict[str, str]:
    """The environment of Airflow commands: the project's defaults, then the caller's
    explicit ``AIRFLOW_*`` settings, then the generated secrets where not set already."""
    env = airflow_environ(settings)
    env.update({k: v for k, v in os.environ.items() if k.startswith("AIRFLOW")})
    for key, value in read_secrets(Path(env["AIRFLOW_HOME"])).items():
        env.setdefault(key, value)
    return env


def airflow_setting(env: dict[str, str], section: str, key: str, default: str = "") -> str:
    """A setting as Airflow would read it: ``AIRFLOW__SECTION__KEY``, else the config file."""
    name = f"AIRFLOW__{section.upper()}__{key.upper()}"
    if env.get(name):
        return env[name]
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(env.get("AIRFLOW_CONFIG", ""))
    value = parser.get(section, key, fallback=default)
    for var in ("AIRFLOW_HOME", "DATASHARE_HOME"):
        value = value.replace("${" + var + "}", env.get(var, ""))
    return value


def metadata_file(env: dict[str, str]) -> Path | None:
    """The SQLite file of Airflow's metadata database, or None when it is not SQLite (or is
    in memory)."""
    url = airflow_setting(env, "database", "sql_alchemy_conn")
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def private_metadata(env: dict[str, str]) -> Path | None:
    """Make Airflow's SQLite metadata file owner-only (0600): create it empty with that mode
    when missing, reset the mode when wider. Returns the file (None when not SQLite)."""
    path = metadata_file(env)
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    path.chmod(0o600)
    return path


def secrets_path(home: Path) -> Path:
    """Where the generated secrets live."""
    return home / SECRETS_FILE


def read_secrets(home: Path) -> dict[str, str]:
    """The generated secrets, if the file exists."""
    path = secrets_path(home)
    if not path.is_file():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def ensure_secrets(home: Path) -> Path:
    """Create the Fernet key and JWT secret file (0600) once; an existing file is kept."""
    home.mkdir(parents=True, exist_ok=True)
    path = secrets_path(home)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    fernet = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    with os.fdopen(fd, "w") as out:
        out.write(f"{FERNET_ENV}={fernet}\n{JWT_ENV}={secrets.token_urlsafe(48)}\n")
    return path


def pool_entries(configs: Sequence[DagSettings]) -> dict[str, dict[str, object]]:
    """Airflow's pool import format: one pool per destination, slots = its pool size."""
    return {
        c.pool: {
            "slots": c.pool_size,
            "description": f"datashare deliveries to {c.name}",
            "include_deferred": False,
        }
        for c in configs
    }


def sync_pools(env: dict[str, str], configs: Sequence[DagSettings], log: Path | None) -> None:
    """Create or update every destination's pool (``airflow pools import``: idempotent)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as out:
        json.dump(pool_entries(configs), out)
    command = [str(Path(sys.executable).with_name("airflow")), "pools", "import", out.name]
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    finally:
        Path(out.name).unlink(missing_ok=True)
    if log is not None:
        with log.open("a") as text:
            text.write(f"$ airflow pools import\n{result.stdout}{result.stderr}")
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"airflow pools import failed: {tail[0]}")
