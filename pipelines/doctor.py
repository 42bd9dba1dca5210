"""``datashare doctor``: is this machine ready to run the nightly submissions?

Each check says what it found and, when something is wrong, the command or setting that fixes
it. The checks follow the deployment recipe of the README: configuration, program database,
state folder, keys of every enabled destination, and Airflow (executor and its providers and
drivers, metadata database, Fernet key, JWT secret, a pool per destination). Nothing here
prints a key or a password.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipelines.airflow_setup import (
    FERNET_ENV,
    JWT_ENV,
    airflow_setting,
    deployment_environ,
    metadata_file,
)
from pipelines.commands.destinations import check_destinations
from pipelines.destinations.registry import DestinationConfig
from pipelines.settings import Settings


@dataclass(frozen=True)
class Finding:
    """One check: passed or not, what was found, and how to fix it."""

    check: str
    ok: bool
    detail: str
    fix: str = ""


_airflow_setting = airflow_setting


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _imports(module: str) -> str | None:
    """None when ``module`` imports, else why not (a provider built for another Celery)."""
    try:
        importlib.import_module(module)
    except Exception as error:  # any import-time failure is the finding
        return f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
    return None


def check_config(settings: Settings) -> Iterator[Finding | DestinationConfig]:
    """Agreements and destinations validate; yields the valid destinations too."""
    from privacy.agreements import check_agreements

    _, agreement_problems = check_agreements(settings.agreements_dir)
    configs, problems = check_destinations(settings.destinations_dir)
    lines = [str(p) for p in agreement_problems] + problems
    yield Finding(
        "config valid",
        not lines,
        f"{len(configs)} destinations valid" if not lines else "; ".join(lines[:5]),
        "fix the file:line shown; `datashare policy check` and `datashare destinations check` "
        "list every problem",
    )
    yield from configs


def check_database(settings: Settings) -> Iterator[Finding]:
    """The program database answers and is at the newest migration."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from pipelines.db import make_engine
    from schemas.migrate import alembic_config

    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_heads()
    except Exception as error:  # any driver's failure to connect
        yield Finding(
            "database reachable",
            False,
            f"{engine.url.render_as_string(hide_password=True)}: {type(error).__name__}",
            "set DATASHARE_DATABASE_URL to a reachable database (and start it)",
        )
        return
    finally:
        engine.dispose()
    yield Finding("database reachable", True, engine.url.render_as_string(hide_password=True))
    heads = set(ScriptDirectory.from_config(alembic_config(engine)).get_heads())
    yield Finding(
        "database migrated",
        set(current) == heads,
        f"at {', '.join(current) or 'no revision'}, newest {', '.join(sorted(heads))}",
        "datashare db upgrade",
    )


def check_state(settings: Settings) -> Iterator[Finding]:
    """The state folder exists and only its owner can read it; so do the key files."""
    state = settings.state_dir
    if not state.is_dir():
        yield Finding("state folder", False, f"{state} does not exist", f"mkdir -m 700 -p {state}")
        return
    mode = stat.S_IMODE(state.stat().st_mode)
    yield Finding(
        "state folder private",
        not mode & 0o077,
        f"{state} mode {mode:04o}",
        f"chmod 700 {state}",
    )
    for path in (settings.keys_file, settings.staging_key_file):
        if path.exists():
            mode = stat.S_IMODE(path.stat().st_mode)
            yield Finding(
                "key file private", not mode & 0o077, f"{path} mode {mode:04o}", f"chmod 600 {path}"
            )


def check_keys(settings: Settings, configs: list[DestinationConfig]) -> Iterator[Finding]:
    """The staging key, and a pseudonymization key for every enabled destination's recipient."""
    from pipelines.staging import StagingError, staging_key
    from pipelines.submission.context import RunContext, RunInfo
    from privacy.errors import PrivacyError
    from privacy.keys import key_name

    try:
        staging_key(settings.staging_key_file)
        yield Finding("staging key", True, "found")
    except StagingError as error:
        yield Finding(
            "staging key",
            False,
            str(error),
            "set DATASHARE_STAGING_KEY (base64 of 32 bytes) on every worker, or "
            "`datashare keys init-demo` for the demo",
        )
    for config in configs:
        if not config.enabled:
            continue
        context = RunContext(RunInfo("doctor", config.name, dt.date.today()), settings)
        try:
            context.keys.key(config.recipient)
            yield Finding(f"key for {config.name}", True, f"recipient {config.recipient}")
        except PrivacyError as error:
            yield Finding(
                f"key for {config.name}",
                False,
                str(error).splitlines()[0],
                f"set {key_name(config.recipient)} (keyid:base64secret) on every "
                "worker, or an Airflow Variable",
            )


def check_airflow(env: dict[str, str], configs: list[DestinationConfig]) -> Iterator[Finding]:
    """Executor, providers, drivers, secrets and pools, as Airflow will see them."""
    executor = _airflow_setting(env, "core", "executor", "LocalExecutor")
    metadata = _airflow_setting(env, "database", "sql_alchemy_conn")
    yield Finding("executor", bool(executor), executor or "unset", "set AIRFLOW__CORE__EXECUTOR")
    if "CeleryExecutor" in executor:
        broken = _imports("airflow.providers.celery.executors.celery_executor_utils")
        yield Finding(
            "celery provider",
            broken is None,
            broken or "apache-airflow-providers-celery imports",
            "pip install -e '.[production]' (it pins a Celery the provider supports)",
        )
        broker = _airflow_setting(env, "celery", "broker_url")
        yield Finding(
            "celery broker",
            bool(broker),
            broker.split("@")[-1] or "unset",
            "set AIRFLOW__CELERY__BROKER_URL=redis://HOST:6379/0",
        )
        yield from check_visibility_timeout(env, configs)
    if metadata.startswith("postgresql"):
        yield Finding(
            "postgres provider",
            _has("airflow.providers.postgres"),
            "apache-airflow-providers-postgres",
            "pip install -e '.[production]'",
        )
        driver = "psycopg2" if "+psycopg2" in metadata else "psycopg"
        for module in (driver, "asyncpg"):
            yield Finding(
                f"driver {module}",
                _has(module),
                f"for {metadata.split('://')[0]}",
                "pip install -e '.[production]'",
            )
    elif "CeleryExecutor" in executor:
        yield Finding(
            "metadata database",
            False,
            "SQLite cannot serve several hosts",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://USER@HOST/DB",
        )
    yield from check_metadata_file(env)
    for name, what, section, key in (
        (FERNET_ENV, "Fernet key", "core", "fernet_key"),
        (JWT_ENV, "JWT secret", "api_auth", "jwt_secret"),
    ):
        found = bool(_airflow_setting(env, section, key))
        yield Finding(
            what,
            found,
            f"{name} set" if found else f"{name} not set",
            "datashare airflow sync (writes it once, 0600), then load it in every Airflow process",
        )
    yield from check_pools(env, configs)


# Brokers whose unacknowledged messages come back after a visibility timeout (Airflow's Celery
# provider sets one for these only).
VISIBILITY_BROKERS = ("redis://", "rediss://", "sentinel://", "sqs://")
PROVIDER_VISIBILITY_TIMEOUT = 86400  # the Celery provider's default when none is set
VISIBILITY_MARGIN_SECONDS = 600  # a task's start-up and end around its execution timeout


def check_visibility_timeout(
    env: dict[str, str], configs: list[DestinationConfig]
) -> Iterator[Finding]:
    """With Redis (or SQS) as Celery's broker, a task's message stays unacknowledged until the
    task ends, and one older than ``[celery_broker_transport_options] visibility_timeout`` is
    handed to a worker again. Airflow refuses to start that copy while its token lives, but
    one arriving later fails in Celery, and the executor then fails the attempt still running.
    So the timeout must outlast the longest attempt any destination allows
    (``tasks.execution_timeout_minutes``, disabled ones too: they can be triggered) plus
    :data:`VISIBILITY_MARGIN_SECONDS`."""
    broker = _airflow_setting(env, "celery", "broker_url")
    if not broker.startswith(VISIBILITY_BROKERS):
        return
    longest = max(configs, key=lambda c: c.tasks.execution_timeout_minutes, default=None)
    minutes = longest.tasks.execution_timeout_minutes if longest else 60
    needed = minutes * 60 + VISIBILITY_MARGIN_SECONDS
    which = f"destination {longest.name}'s" if longest else "the default"
    fix = (
        f"[celery_broker_transport_options] visibility_timeout = {max(needed, 7200)} in "
        "airflow.cfg (or AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT) on "
        "every Airflow host"
    )
    raw = _airflow_setting(env, "celery_broker_transport_options", "visibility_timeout")
    if not raw:
        seconds, source = float(PROVIDER_VISIBILITY_TIMEOUT), "unset: the provider's default"
    else:
        try:
            seconds, source = float(raw), "set"
        except ValueError:
            yield Finding("celery visibility timeout", False, f"{raw!r} is not seconds", fix)
            return
    yield Finding(
        "celery visibility timeout",
        seconds >= needed,
        f"{seconds:.0f} s ({source}); the longest task attempt, {which} execution timeout of "
        f"{minutes} min, needs {needed} s",
        fix,
    )


def check_metadata_file(env: dict[str, str]) -> Iterator[Finding]:
    """Airflow's SQLite metadata file (connections, variables, XCom) is owner-only (0600)."""
    path = metadata_file(env)
    if path is None:
        return
    if not path.exists():
        yield Finding(
            "Airflow metadata private", True, f"{path} not created yet (set-up creates it 0600)"
        )
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    yield Finding(
        "Airflow metadata private",
        not mode & 0o077,
        f"{path} mode {mode:04o}",
        f"chmod 600 {path} (or datashare airflow sync)",
    )


def check_pools(env: dict[str, str], configs: list[DestinationConfig]) -> Iterator[Finding]:
    """Every destination's pool exists with its pool size."""
    command = [str(Path(sys.executable).with_name("airflow")), "pools", "list", "-o", "json"]
    try:
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        if result.returncode != 0:
            raise ValueError("airflow pools list failed")
        pools = {p["pool"]: int(p["slots"]) for p in json.loads(result.stdout)}
    except (subprocess.SubprocessError, ValueError, KeyError, TypeError):
        yield Finding(
            "pools",
            False,
            "cannot list Airflow's pools (metadata not migrated?)",
            "airflow db migrate && datashare airflow sync",
        )
        return
    wrong = [
        f"{c.pool} ({pools.get(c.pool, 'missing')}, wants {c.pool_size})"
        for c in configs
        if pools.get(c.pool) != c.pool_size
    ]
    yield Finding(
        "pools",
        not wrong,
        ", ".join(wrong) or f"{len(configs)} pools match",
        "datashare airflow sync",
    )


def diagnose(settings: Settings, *, airflow: bool = True) -> list[Finding]:
    """Every finding, in the order of the recipe."""
    findings: list[Finding] = []
    configs: list[DestinationConfig] = []
    for item in check_config(settings):
        (findings if isinstance(item, Finding) else configs).append(item)  # type: ignore[arg-type]
    findings += check_database(settings)
    findings += check_state(settings)
    findings += check_keys(settings, configs)
    if airflow:
        findings += check_airflow(deployment_environ(settings), configs)
    return findings


def environ_note() -> str:
    """Which of the settings came from the environment (names only)."""
    names = sorted(k for k in os.environ if k.startswith(("DATASHARE_", "AIRFLOW")))
    return ", ".join(n for n in names if "KEY" not in n and "SECRET" not in n) or "none"
