"""Destination configs: the shipped ones load and build; broken ones name file, line and key."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from pipelines.destinations.local import LocalFolderDestination
from pipelines.destinations.registry import (
    DEFAULT_SCHEDULE,
    DestinationConfigError,
    DestinationType,
    build_destination,
    list_destinations,
    load_destination,
)
from pipelines.destinations.sftp import SftpDestination, SftpSettings, resolve_credentials
from pipelines.destinations.staging_db import StagingDbDestination

SHIPPED = Path(__file__).resolve().parents[3] / "config" / "destinations"

GOOD = """\
type: local
recipient: VT-AOE
agreements: [vt-aoe-ecids]
formats: [hs_child_identity, hs_enrollment]
local:
  root: out/test
"""

SFTP = """\
type: sftp
recipient: MO-DESE
agreements: [mo-dese-consent]
formats: [hs_child_identity]
sftp:
  host: sftp.example.org
  username: upload
  known_hosts: /etc/datashare/known_hosts
  private_key_env: STATE_KEY
"""


def write(folder: Path, text: str, name: str = "state") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_shipped_destinations_load() -> None:
    assert {"demo", "sftp-example", "staging-example"} <= set(list_destinations(SHIPPED))
    for name in list_destinations(SHIPPED):
        config = load_destination(name, SHIPPED)
        assert config.name == name


def test_demo_is_the_local_vt_aoe_drop() -> None:
    config = load_destination("demo", SHIPPED)
    assert config.type is DestinationType.LOCAL and config.enabled
    assert config.recipient == "VT-AOE"
    assert config.agreements == ("vt-aoe-ecids",)
    assert config.formats == ("hs_child_identity", "hs_enrollment", "hs_parent_statements")
    assert config.schedule == DEFAULT_SCHEDULE
    destination = build_destination(config)
    assert isinstance(destination, LocalFolderDestination)
    assert destination.name == "demo" and destination.root == Path("out/demo")


def test_examples_are_disabled_and_build_without_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sftp = load_destination("sftp-example", SHIPPED)
    staging = load_destination("staging-example", SHIPPED)
    assert not sftp.enabled and not staging.enabled
    assert isinstance(build_destination(sftp), SftpDestination)
    built = build_destination(staging)
    assert isinstance(built, StagingDbDestination)
    assert sorted(t.name for t in built.tables.values()) == ["hs_child_identity", "hs_enrollment"]
    assert built.retries == staging.retries


BROKEN = [
    pytest.param(
        GOOD.replace("type: local", "type: ftp"), ":1: type: Input should be", id="bad_type"
    ),
    pytest.param(
        GOOD.replace("local:\n  root: out/test\n", ""),
        "type local needs a 'local:' settings block",
        id="no_settings",
    ),
    pytest.param(
        GOOD + "staging_db:\n  url_env: X\n",
        "settings for another type: staging_db",
        id="other_type_settings",
    ),
    pytest.param(
        GOOD.replace("hs_enrollment]", "hs_enrolment]"),
        ":4: formats[1]: no file spec named hs_enrolment",
        id="unknown_format",
    ),
    pytest.param(
        GOOD.replace("formats: [hs_child_identity, hs_enrollment]\n", ""),
        "formats: name the file specs",
        id="no_formats",
    ),
    pytest.param(GOOD + "schedule: nightly\n", "schedule must be a 5-field cron", id="bad_cron"),
    pytest.param(
        GOOD.replace("agreements: [vt-aoe-ecids]", "agreements: []"),
        ":3: agreements: Tuple should have at least 1 item",
        id="no_agreements",
    ),
    pytest.param(GOOD.replace("  root:", "  rooot:"), ":6: local.rooot: Extra inputs", id="typo"),
    pytest.param(
        GOOD + "retries: -1\n",
        ":7: retries: Input should be greater than or equal",
        id="negative_retries",
    ),
    pytest.param(GOOD + "name: other\n", ":7: name: must be state", id="name_not_stem"),
    pytest.param(
        SFTP + "  password: hunter2\n",
        ":10: sftp.password: Extra inputs are not permitted",
        id="inline_secret_refused",
    ),
    pytest.param(
        SFTP.replace("  known_hosts: /etc/datashare/known_hosts\n", ""),
        "host key verification needs known_hosts or host_key_fingerprint",
        id="no_host_key_verification",
    ),
    pytest.param(
        SFTP + "  host_key_fingerprint: md5:abc\n",
        "sftp.host_key_fingerprint: String",
        id="bad_fingerprint",
    ),
    pytest.param(
        SFTP.replace("  private_key_env: STATE_KEY\n", ""), "name a credential", id="no_credential"
    ),
    pytest.param("type: [local\n", ":2: not valid YAML", id="bad_yaml"),
]


@pytest.mark.parametrize(("text", "expected"), BROKEN)
def test_when_destination_broken_then_error_names_file_line_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DestinationConfigError) as caught:
        load_destination("state", tmp_path)
    message = str(caught.value)
    assert message.startswith(str(path)) and expected in message, message
    assert "hunter2" not in message


def test_when_destination_unknown_then_error_lists_known(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "alpha")
    with pytest.raises(DestinationConfigError, match=r"no such destination \(known: alpha\)"):
        load_destination("beta", tmp_path)


def test_when_edfi_module_missing_then_build_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "type: edfi\nrecipient: VT-AOE\nagreements: [vt-aoe-ecids]\nedfi: {}\n")
    monkeypatch.setitem(sys.modules, "pipelines.edfi.settings", None)
    config = load_destination("state", tmp_path)
    monkeypatch.setitem(sys.modules, "pipelines.edfi.destination", None)
    with pytest.raises(DestinationConfigError, match=r"needs pipelines\.edfi\.destination"):
        build_destination(config)


def test_edfi_block_is_validated_by_the_edfi_settings_when_present(tmp_path: Path) -> None:
    write(tmp_path, "type: edfi\nrecipient: VT-AOE\nagreements: [vt-aoe-ecids]\nedfi:\n  x: 1\n")
    with pytest.raises(DestinationConfigError, match=r"state\.yaml:\d+: edfi\."):
        load_destination("state", tmp_path)


def test_sftp_secrets_are_read_from_the_environment_and_hide_themselves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = SftpSettings(
        host="h", username="u", host_key_fingerprint="SHA256:" + "A" * 43, password_env="PW_VAR"
    )
    monkeypatch.setenv("PW_VAR", "hunter2-secret")
    credentials = resolve_credentials(settings)
    assert credentials.password is not None
    assert credentials.password.get_secret_value() == "hunter2-secret"
    assert "hunter2" not in repr(credentials) and "hunter2" not in str(settings)


TASK_PATH_PARAMIKO = """
import importlib, pkgutil, sys
from pathlib import Path
import pipelines.cli, pipelines.runner, pipelines.tasks, pipelines.submission
for module in pkgutil.iter_modules(pipelines.submission.__path__, "pipelines.submission."):
    importlib.import_module(module.name)
from pipelines.destinations.registry import build_destination, load_destination
folder = Path(sys.argv[1])
local = build_destination(load_destination("demo", folder))
after_local = "paramiko" in sys.modules
sftp = load_destination("sftp-example", folder)
after_sftp_config = "paramiko" in sys.modules
built = build_destination(sftp)
print(type(local).__name__, after_local, after_sftp_config, type(built).__name__,
      "paramiko" in sys.modules)
"""


def test_a_local_destination_task_process_never_imports_paramiko() -> None:
    """The task path (CLI, runner, tasks, every submission step) with a local destination
    built leaves paramiko unloaded; an SFTP config validates without it, and building the
    SFTP destination loads it."""
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", TASK_PATH_PARAMIKO, str(SHIPPED)],
        cwd=SHIPPED.parents[1],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == [
        "LocalFolderDestination",
        "False",
        "False",
        "SftpDestination",
        "True",
    ], out.stdout + out.stderr
