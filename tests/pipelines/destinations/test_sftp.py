"""SFTP destination against a real SFTP server on loopback (asyncssh, see tests/sftp_server.py)."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import asyncssh
import pytest

from pipelines.destinations.base import Batch, TerminalDeliveryError, TransientDeliveryError
from pipelines.destinations.sftp import SftpDestination, SftpSettings
from tests.pipelines.batches import make_batch
from tests.pipelines.conftest import GpgRecipient
from tests.sftp_server import PASSWORD, USERNAME, SftpTestServer

FOLDER = Path("in/2026-11-27/VT-HS-01")


def files(root: Path) -> list[str]:
    """Every file under ``root``, as relative paths."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def final_files(root: Path) -> list[str]:
    return [f for f in files(root) if not Path(f).name.startswith(".")]


def known_hosts(tmp_path: Path, server: SftpTestServer) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(server.known_hosts_line())
    return path


def destination(
    server: SftpTestServer, monkeypatch: pytest.MonkeyPatch, *, retries: int = 0, **settings
) -> SftpDestination:
    monkeypatch.setenv("TEST_SFTP_PASSWORD", PASSWORD)
    values = {
        "host": "127.0.0.1",
        "port": server.port,
        "username": USERNAME,
        "password_env": "TEST_SFTP_PASSWORD",
        "host_key_fingerprint": server.fingerprint,
        "remote_root": "/in",
    } | settings
    return SftpDestination(
        "state-sftp", SftpSettings(**values), timeout=5, retries=retries, retry_backoff=0
    )


def test_when_delivered_then_files_and_manifest_arrive_with_matching_sha256(
    sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sftp = destination(
        sftp_server,
        monkeypatch,
        host_key_fingerprint=None,
        known_hosts=known_hosts(tmp_path, sftp_server),
    )
    batch = make_batch(5)
    result = sftp.deliver(batch)
    root = sftp_server.root
    assert files(root) == [
        str(FOLDER / "hs_child_identity.csv"),
        str(FOLDER / "hs_enrollment.csv"),
        str(FOLDER / "manifest.json"),
    ]
    assert result.accepted == set(batch.child_keys) and not result.sent_nothing_new
    assert result.location.endswith("/in/2026-11-27/VT-HS-01")
    manifest = json.loads((root / FOLDER / "manifest.json").read_text())
    assert manifest["batch_digest"] == batch.digest and manifest["run_id"] == batch.run_id
    for entry, artifact in zip(manifest["files"], batch.artifacts, strict=True):
        data = (root / FOLDER / artifact.name).read_bytes()
        assert data == artifact.csv_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() == artifact.sha256
        assert entry["rows"] == 5
    assert sftp.holds(batch)


def test_each_file_reaches_the_servers_disk_before_its_name_and_the_manifest_last(
    sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch logged as delivered must survive a power loss at the state: every file, the
    manifest included, is fsynced on the server (``fsync@openssh.com``) before it is renamed
    to its final name, and the manifest is renamed after every data file."""
    batch = make_batch(5)
    destination(sftp_server, monkeypatch).deliver(batch)
    names = [a.name for a in batch.artifacts] + ["manifest.json"]
    events = sftp_server.events
    assert events == [
        *[("fsync", str(FOLDER / f".{n}.part")) for n in names[:-1]],
        *[("rename", str(FOLDER / n)) for n in names[:-1]],
        ("fsync", str(FOLDER / ".manifest.json.part")),
        ("rename", str(FOLDER / "manifest.json")),
    ]


def test_a_server_without_fsync_still_gets_the_batch(
    sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fsync@openssh.com`` is asked only of a server that offers it (one that does not
    would refuse the request and fail every delivery)."""
    handler = asyncssh.sftp.SFTPServerHandler
    offered = [e for e in handler._extensions if e[0] != b"fsync@openssh.com"]
    monkeypatch.setattr(handler, "_extensions", offered)
    batch = make_batch(5)
    destination(sftp_server, monkeypatch).deliver(batch)
    assert final_files(sftp_server.root) == sorted(
        str(FOLDER / n) for n in [a.name for a in batch.artifacts] + ["manifest.json"]
    )
    assert [kind for kind, _ in sftp_server.events] == ["rename"] * 3


def test_when_resent_unchanged_then_nothing_new_and_nothing_rewritten(
    sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sftp = destination(sftp_server, monkeypatch)
    sftp.deliver(make_batch(3))
    folder = sftp_server.root / FOLDER
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = sftp.deliver(make_batch(3, run_id="run-2"))
    assert again.sent_nothing_new and again.accepted == set(make_batch(3).child_keys)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_when_one_file_changed_then_only_it_is_uploaded_again(
    sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sftp = destination(sftp_server, monkeypatch)
    first = make_batch(3)
    sftp.deliver(first)
    identity = sftp_server.root / FOLDER / "hs_child_identity.csv"
    inode = identity.stat().st_ino
    changed = Batch(
        "run-2",
        first.run_date,
        first.program_code,
        (first.artifacts[0], make_batch(3, seed=9).artifacts[1]),
    )
    assert not sftp.deliver(changed).sent_nothing_new
    assert identity.stat().st_ino == inode
    assert sftp.holds(changed) and not sftp.holds(first)


def test_when_a_file_has_the_same_size_but_other_bytes_then_not_held_and_resent(
    sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sftp = destination(sftp_server, monkeypatch)
    batch = make_batch(3)
    sftp.deliver(batch)
    identity = sftp_server.root / FOLDER / "hs_child_identity.csv"
    data = identity.read_bytes()
    tampered = data[:-2] + bytes([data[-2] ^ 1]) + data[-1:]
    identity.write_bytes(tampered)
    assert len(tampered) == len(data)
    assert not sftp.holds(batch), "a digest, not a size, says the file is held"
    assert not sftp.deliver(batch).sent_nothing_new
    assert identity.read_bytes() == data and sftp.holds(batch)


def test_login_with_a_private_key_from_the_environment(
    sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    sftp_server.client_key = client_key
    monkeypatch.setenv("TEST_SFTP_KEY", client_key.export_private_key("openssh").decode())
    sftp = destination(sftp_server, monkeypatch, password_env=None, private_key_env="TEST_SFTP_KEY")
    batch = make_batch(2)
    sftp.deliver(batch)
    assert sftp.holds(batch)


def test_login_through_an_airflow_connection(
    sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_STATE_SFTP_TEST", f"sftp://{USERNAME}:{PASSWORD}@127.0.0.1:{sftp_server.port}"
    )
    sftp = destination(
        sftp_server, monkeypatch, username=None, password_env=None, connection_id="state_sftp_test"
    )
    batch = make_batch(2)
    sftp.deliver(batch)
    assert sftp.holds(batch)


def other_server_key_known_hosts(tmp_path: Path, server: SftpTestServer) -> dict:
    impostor = asyncssh.generate_private_key("ssh-ed25519")
    line = f"[127.0.0.1]:{server.port} {impostor.export_public_key('openssh').decode()}"
    path = tmp_path / "known_hosts"
    path.write_text(line)
    return {"host_key_fingerprint": None, "known_hosts": path}


def host_missing_from_known_hosts(tmp_path: Path, server: SftpTestServer) -> dict:
    path = tmp_path / "known_hosts"
    path.write_text(server.known_hosts_line().replace("[127.0.0.1]", "[127.0.0.2]"))
    return {"host_key_fingerprint": None, "known_hosts": path}


def other_fingerprint(tmp_path: Path, server: SftpTestServer) -> dict:
    impostor = asyncssh.generate_private_key("ssh-ed25519")
    return {"host_key_fingerprint": impostor.get_fingerprint("sha256")}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (other_server_key_known_hosts, "differs from known_hosts"),
        (host_missing_from_known_hosts, "not in known_hosts"),
        (other_fingerprint, "does not match the pinned fingerprint"),
    ],
    ids=["known_hosts_mismatch", "host_unknown", "fingerprint_mismatch"],
)
def test_when_host_key_not_verified_then_terminal_and_nothing_sent(
    sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings, message
) -> None:  # type: ignore[no-untyped-def]
    sftp = destination(sftp_server, monkeypatch, retries=2, **settings(tmp_path, sftp_server))
    with pytest.raises(TerminalDeliveryError, match=message):
        sftp.deliver(make_batch(2))
    assert list(sftp_server.root.iterdir()) == []


def test_when_password_wrong_then_terminal(
    sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sftp = destination(sftp_server, monkeypatch, retries=2)
    monkeypatch.setenv("TEST_SFTP_PASSWORD", "wrong")
    with pytest.raises(TerminalDeliveryError, match="refused our credentials"):
        sftp.deliver(make_batch(1))
    assert list(sftp_server.root.iterdir()) == []


def test_when_secret_variable_unset_then_terminal_naming_the_variable(
    sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sftp = destination(sftp_server, monkeypatch)
    monkeypatch.delenv("TEST_SFTP_PASSWORD")
    with pytest.raises(TerminalDeliveryError, match="TEST_SFTP_PASSWORD is not set"):
        sftp.deliver(make_batch(1))


def test_when_nobody_listens_then_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("TEST_SFTP_PASSWORD", PASSWORD)
    settings = SftpSettings(
        host="127.0.0.1",
        port=port,
        username=USERNAME,
        password_env="TEST_SFTP_PASSWORD",
        host_key_fingerprint="SHA256:" + "A" * 43,
    )
    sftp = SftpDestination("state-sftp", settings, timeout=2, retries=1, retry_backoff=0)
    with pytest.raises(TransientDeliveryError, match="connection failed or dropped"):
        sftp.deliver(make_batch(1))


def test_when_server_killed_mid_upload_then_transient_nothing_final_and_retry_completes(
    sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = make_batch(1000)
    assert len(batch.artifacts[0].csv_bytes()) > 40_000
    sftp_server.kill_after_bytes = 40_000
    sftp = destination(sftp_server, monkeypatch, retries=1)
    with pytest.raises(TransientDeliveryError):
        sftp.deliver(batch)
    root = sftp_server.root
    assert sftp_server.faults == 1
    assert final_files(root) == []
    assert files(root) == [str(FOLDER / ".hs_child_identity.csv.part")]
    assert 0 < (root / FOLDER / ".hs_child_identity.csv.part").stat().st_size <= 40_000

    sftp_server.start()  # restarted on the same port, same host key, same files
    result = sftp.deliver(batch)
    assert not result.sent_nothing_new
    assert files(root) == [
        str(FOLDER / "hs_child_identity.csv"),
        str(FOLDER / "hs_enrollment.csv"),
        str(FOLDER / "manifest.json"),
    ]
    for artifact in batch.artifacts:
        assert (root / FOLDER / artifact.name).read_bytes() == artifact.csv_bytes()
    assert sftp.holds(batch)


def test_when_connection_dropped_once_then_deliver_retries_by_itself(
    sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = make_batch(1000)
    sftp_server.drop_after_bytes = 50_000
    sftp = destination(sftp_server, monkeypatch, retries=2)
    result = sftp.deliver(batch)
    assert sftp_server.faults == 1
    assert not result.sent_nothing_new and result.accepted == set(batch.child_keys)
    assert len(final_files(sftp_server.root)) == 3 and files(sftp_server.root) == final_files(
        sftp_server.root
    )


def test_when_encrypting_then_state_decrypts_exactly_the_csv(
    sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch, gpg_recipient: GpgRecipient
) -> None:
    sftp = destination(sftp_server, monkeypatch, pgp_public_key=gpg_recipient.public_key_file)
    batch = make_batch(4)
    sftp.deliver(batch)
    folder = sftp_server.root / FOLDER
    assert sorted(p.name for p in folder.iterdir()) == [
        "hs_child_identity.csv.pgp",
        "hs_enrollment.csv.pgp",
        "manifest.json",
    ]
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry, artifact in zip(manifest["files"], batch.artifacts, strict=True):
        stored = (folder / entry["stored_as"]).read_bytes()
        assert b"Kid1" not in stored and b"VT-HS-01" not in stored
        assert entry["stored_sha256"] == hashlib.sha256(stored).hexdigest()
        assert gpg_recipient.decrypt(stored) == artifact.csv_bytes()
        assert entry["sha256"] == artifact.sha256
    assert sftp.holds(batch)
    assert sftp.deliver(batch).sent_nothing_new


def test_when_encryption_key_file_missing_then_terminal_at_build(
    sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(TerminalDeliveryError, match="cannot read OpenPGP key"):
        destination(sftp_server, monkeypatch, pgp_public_key=tmp_path / "absent.asc")
