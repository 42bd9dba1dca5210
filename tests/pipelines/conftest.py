"""Fixtures for pipeline tests: a real SFTP server, a scratch staging database, a GnuPG key."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import scratch_database
from tests.sftp_server import SftpTestServer

PG_SERVER = os.environ.get("DATASHARE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


@pytest.fixture
def sftp_server(tmp_path: Path) -> Iterator[SftpTestServer]:
    """A running SFTP server on loopback serving ``tmp_path / 'sftp-root'``."""
    root = tmp_path / "sftp-root"
    root.mkdir()
    server = SftpTestServer(root).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def staging_pg_url(worker_id: str) -> Iterator[str]:
    """A scratch PostgreSQL database of this worker, standing in for a state staging DB."""
    with scratch_database(f"datashare_staging_test_{worker_id}_{os.getpid()}") as url:
        yield url


class GpgRecipient:
    """A state's OpenPGP key pair in a throw-away GnuPG home: the public key as a file and a
    way to decrypt what was encrypted to it."""

    def __init__(self, home: Path, public_key_file: Path, fingerprint: str) -> None:
        self.home = home
        self.public_key_file = public_key_file
        self.fingerprint = fingerprint

    def decrypt(self, data: bytes) -> bytes:
        import gnupg

        result = gnupg.GPG(gnupghome=str(self.home)).decrypt(data)
        assert result.ok, result.status
        return bytes(result.data)


@pytest.fixture(scope="session")
def gpg_recipient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GpgRecipient]:
    """A fresh Ed25519/Curve25519 key pair (skips when the gpg binary is absent)."""
    if shutil.which("gpg") is None:
        pytest.skip("the gpg binary is not installed")
    import gnupg

    with tempfile.TemporaryDirectory(prefix="dsgpgt") as home:
        gpg = gnupg.GPG(gnupghome=home)
        settings = gpg.gen_key_input(
            key_type="EDDSA",
            key_curve="ed25519",
            subkey_type="ECDH",
            subkey_curve="cv25519",
            name_email="state@example.org",
            no_protection=True,
        )
        key = gpg.gen_key(settings)
        assert key.fingerprint
        public = tmp_path_factory.mktemp("pgp") / "state.asc"
        public.write_text(gpg.export_keys(key.fingerprint), encoding="ascii")
        yield GpgRecipient(Path(home), public, key.fingerprint)
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], check=False)
