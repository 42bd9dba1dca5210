"""``datashare doctor`` on a fresh setup (all ok) and on a deliberately broken one (every
problem named, with its fix, and a non-zero exit)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipelines.db import make_engine
from pipelines.destinations.registry import load_destination
from pipelines.doctor import check_airflow, diagnose
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
