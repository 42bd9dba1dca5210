"""``datashare doctor`` on a fresh setup (all ok) and on a deliberately broken one (every
problem named, with its fix, and a non-zero exit)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.airflow_setup import private_metadata
from pipelines.commands.destinations import check_destinations
from pipelines.db import make_engine
from pipelines.destinations.registry import DestinationConfig, load_destination
from pipelines.doctor import check_airflow, check_metadata_file, check_visibility_timeout, diagnose
from pipelines.settings import Settings
from pipelines.staging import create_key_file
from privacy.keys import ensure_demo_key
from schemas.migrate import upgrade
from tests.conftest import PROJECT


def fresh(root: Path) -> Settings:
    """What the quick start leaves: config, a migrated database, demo keys, a private state."""
    shutil.copytree(PROJECT / "config", root / "config")
    state = root / "state"
    state.mkdir(mode=0o700)
    settings = Settings(f"sqlite:///{root / 'program.db'}", root / "config", state)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    folder = root / "config" / "destinations"
    for path in sorted(folder.glob("*.yaml")):  # the recipients of the enabled destinations
        config = load_destination(path.stem, folder)
        if config.enabled:
            ensure_demo_key(settings.keys_file, config.recipient)
    create_key_file(settings.staging_key_file)
    return settings


def test_on_a_fresh_setup_every_check_passes(tmp_path: Path) -> None:
    findings = diagnose(fresh(tmp_path), airflow=False)
    assert [f for f in findings if not f.ok] == []
    checks = {f.check for f in findings}
    assert {"config valid", "database reachable", "database migrated", "state folder private",
            "staging key", "key for demo", "key for mo-dese-demo"} <= checks  # fmt: skip
    assert "key for sftp-example" not in checks, "disabled destinations need no key"


def test_on_a_broken_setup_each_problem_has_its_fix_and_the_exit_is_non_zero(
    tmp_path: Path,
) -> None:
    settings = fresh(tmp_path)
    settings.state_dir.chmod(0o755)
    settings.staging_key_file.unlink()
    (settings.destinations_dir / "typo.yaml").write_text(
        "type: local\nrecipient: VT-AOE\nagreements: [vt-aoe-ecids]\nformats: [hs_child_identity]"
        "\nlocal: {root: out}\npool_size: 0\n"
    )
    old = settings.state_dir.parent / "old.db"
    make_engine(f"sqlite:///{old}").dispose()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATASHARE_", "AIRFLOW"))},
        **settings.environ(),
        "DATASHARE_DATABASE_URL": f"sqlite:///{old}",
    }
    command = [str(Path(sys.executable).with_name("datashare")), "doctor", "--no-airflow"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    out = result.stdout
    assert result.returncode == 1, out
    assert "typo.yaml:6: pool_size" in out
    assert "database migrated" in out and "fix: datashare db upgrade" in out
    assert f"fix: chmod 700 {settings.state_dir}" in out
    assert "FAIL staging key" in out and "DATASHARE_STAGING_KEY" in out
    assert "to fix" in out.splitlines()[-1]


def test_airflow_checks_name_what_a_celery_deployment_lacks(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW_CONFIG": str(PROJECT / "airflow.cfg"),
        "DATASHARE_HOME": str(PROJECT),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
    }
    demo = load_destination("demo", PROJECT / "config" / "destinations")
    findings = {f.check: f for f in check_airflow(env, [demo])}
    assert not findings["metadata database"].ok
    assert "postgresql" in findings["metadata database"].fix
    assert not findings["celery broker"].ok and "redis://" in findings["celery broker"].fix
    assert not findings["Fernet key"].ok and "datashare airflow sync" in findings["Fernet key"].fix
    assert not findings["JWT secret"].ok
    assert not findings["pools"].ok, "a metadata database never migrated has no pools"


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW_CONFIG": str(PROJECT / "airflow.cfg"),
        "DATASHARE_HOME": str(PROJECT),
        **extra,
    }


@pytest.mark.parametrize(
    ("before", "ok_before"),
    [(None, True), (0o644, False), (0o640, False), (0o600, True)],
    ids=["missing", "world-readable", "group-readable", "private"],
)
def test_airflow_sqlite_metadata_is_made_0600_at_set_up_and_checked_by_doctor(
    tmp_path: Path, before: int | None, ok_before: bool
) -> None:
    home = tmp_path / "airflow"
    env = airflow_env(home)
    database = home / "airflow.db"
    if before is not None:
        home.mkdir()
        database.write_bytes(b"")
        database.chmod(before)
    (found,) = check_metadata_file(env)
    assert found.ok is ok_before
    if not ok_before:
        assert f"chmod 600 {database}" in found.fix
    assert private_metadata(env) == database
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    (after,) = check_metadata_file(env)
    assert after.ok and "0600" in after.detail


def test_metadata_on_postgresql_is_not_a_file_to_protect(tmp_path: Path) -> None:
    url = "postgresql+psycopg2://airflow@db.example/airflow"
    env = airflow_env(tmp_path / "airflow", AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=url)
    assert private_metadata(env) is None
    assert list(check_metadata_file(env)) == []
    assert not (tmp_path / "airflow").exists()


def test_datashare_run_set_up_makes_a_copied_metadata_file_private(tmp_path: Path) -> None:
    """``prepare_airflow`` (what ``datashare run`` does before Airflow starts) resets the
    mode of a metadata file a copy left world-readable, even when nothing needs migrating."""
    import json

    import airflow

    from pipelines.airflow_setup import pool_entries
    from pipelines.commands.destinations import check_destinations
    from pipelines.runner import airflow_home, prepare_airflow

    settings = fresh(tmp_path)
    home = airflow_home(settings)
    home.mkdir()
    database = home / "airflow.db"
    database.write_bytes(b"")
    database.chmod(0o644)
    configs, _ = check_destinations(settings.destinations_dir)
    ready = {"airflow": airflow.__version__, "pools": pool_entries(configs)}
    (home / "datashare-ready.json").write_text(json.dumps(ready))
    prepare_airflow(settings, "demo", tmp_path / "setup.log")
    assert stat.S_IMODE(database.stat().st_mode) == 0o600


def long_tasks(minutes: int) -> DestinationConfig:
    demo = load_destination("demo", PROJECT / "config" / "destinations")
    tasks = demo.tasks.model_copy(update={"execution_timeout_minutes": minutes})
    return demo.model_copy(update={"name": "slow-edfi", "tasks": tasks})


@pytest.mark.parametrize(
    ("broker", "timeout", "longest_minutes", "ok", "said"),
    [
        ("redis://127.0.0.1:6379/0", "7200", 60, True, "7200 s (set)"),
        ("redis://127.0.0.1:6379/0", None, 60, True, "86400 s (unset: the provider's default)"),
        ("redis://127.0.0.1:6379/0", "4200", 60, True, "needs 4200 s"),
        ("redis://127.0.0.1:6379/0", "4199", 60, False, "needs 4200 s"),
        ("redis://127.0.0.1:6379/0", "3600", 60, False, "default execution timeout of 60 min"),
        ("rediss://redis.example:6380/0", "7200", 180, False, "slow-edfi's execution timeout"),
        ("sqs://", "7200.5", 110, True, "7200 s (set)"),
        ("redis://127.0.0.1:6379/0", "two hours", 60, False, "'two hours' is not seconds"),
        ("amqp://guest@127.0.0.1:5672//", "60", 60, None, ""),
    ],
    ids=[
        "project",
        "unset",
        "just-enough",
        "one-short",
        "an-hour",
        "long-destination",
        "sqs-float",
        "not-a-number",
        "rabbitmq-has-none",
    ],
)
def test_the_celery_visibility_timeout_must_outlast_the_longest_task_attempt(
    tmp_path: Path,
    broker: str,
    timeout: str | None,
    longest_minutes: int,
    ok: bool | None,
    said: str,
) -> None:
    extra = {"AIRFLOW__CELERY__BROKER_URL": broker}
    if timeout is not None:
        extra["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT"] = timeout
    env = airflow_env(tmp_path, AIRFLOW_CONFIG=str(tmp_path / "none.cfg"), **extra)
    configs = [] if longest_minutes == 60 else [long_tasks(longest_minutes)]
    findings = list(check_visibility_timeout(env, configs))
    if ok is None:
        assert findings == [], "only brokers with a visibility timeout are checked"
        return
    (found,) = findings
    assert found.ok is ok and said in found.detail, found
    assert (
        "visibility_timeout" in found.fix
        and str(max(longest_minutes * 60 + 600, 7200)) in found.fix
    )


def test_the_projects_airflow_cfg_sets_a_visibility_timeout_every_destination_fits_in(
    tmp_path: Path,
) -> None:
    configs, problems = check_destinations(PROJECT / "config" / "destinations")
    assert configs and not problems
    env = airflow_env(tmp_path, AIRFLOW__CELERY__BROKER_URL="redis://127.0.0.1:6379/0")
    (found,) = check_visibility_timeout(env, configs)
    assert found.ok and "(set)" in found.detail, found
