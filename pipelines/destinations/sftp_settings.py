"""The ``sftp:`` settings block of a destination file, apart from the SFTP client.

:mod:`pipelines.destinations.registry` validates every destination file with this model, so
it imports no paramiko: a process that builds a local folder or staging database destination
(every task of such a night) never pays for the SSH stack. :mod:`pipelines.destinations.sftp`
(the client) re-exports it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SftpSettings(BaseModel):
    """The ``settings`` of an ``sftp`` destination. Secrets are named, never written here:
    ``password_env`` / ``private_key_env`` / ``passphrase_env`` name environment variables,
    ``connection_id`` an Airflow connection (login, password, extra ``private_key``,
    ``private_key_passphrase``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str
    port: int = Field(default=22, ge=1, le=65535)
    username: str | None = None
    remote_root: str = "."
    known_hosts: Path | None = None
    host_key_fingerprint: str | None = Field(default=None, pattern=r"^SHA256:[A-Za-z0-9+/]{43}=?$")
    password_env: str | None = None
    private_key_env: str | None = None
    private_key_file: Path | None = None
    passphrase_env: str | None = None
    connection_id: str | None = None
    pgp_public_key: Path | None = None

    @model_validator(mode="after")
    def _check(self) -> SftpSettings:
        if self.known_hosts is None and self.host_key_fingerprint is None:
            raise ValueError("host key verification needs known_hosts or host_key_fingerprint")
        sources = [self.password_env, self.private_key_env, self.private_key_file]
        if self.connection_id is None and not any(sources):
            raise ValueError(
                "name a credential: connection_id, password_env, private_key_env "
                "or private_key_file"
            )
        if self.connection_id is None and self.username is None:
            raise ValueError("username is required unless connection_id gives the login")
        return self
