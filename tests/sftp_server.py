"""A real SFTP server on loopback for tests: asyncssh in a background thread.

The server listens on 127.0.0.1 on a random port with a freshly generated Ed25519 host key,
serves ``root`` as a chroot, and accepts one user by password or public key. Faults:

- ``drop_after_bytes``: the first connection that has written that many file bytes is
  aborted mid-write (the bytes past the limit are not written); later connections work.
- ``kill_after_bytes``: the same, and the server stops listening too (as if killed), until
  :meth:`SftpTestServer.start` is called again.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import asyncssh

USERNAME = "state"
PASSWORD = "test-password-not-secret"


class SftpTestServer:
    """An in-process SFTP server; use as a context manager or start/stop it."""

    def __init__(
        self,
        root: Path,
        *,
        client_key: asyncssh.SSHKey | None = None,
        drop_after_bytes: int | None = None,
        kill_after_bytes: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = client_key
        self.drop_after_bytes = drop_after_bytes
        self.kill_after_bytes = kill_after_bytes
        self.port = 0
        self.bytes_written = 0
        self.faults = 0
        self.connections_made = 0
        self.events: list[tuple[str, str]] = []
        """("fsync", path) and ("rename", new path) in the order the server did them; paths
        relative to ``root``."""
        self._connections: set[Any] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None

    # -- what clients must know --------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """The host key's SHA-256 fingerprint as ``ssh-keygen -l`` prints it."""
        return self.host_key.get_fingerprint("sha256")

    def known_hosts_line(self) -> str:
        """A known_hosts line for this server."""
        public = self.host_key.export_public_key("openssh").decode().strip()
        return f"[127.0.0.1]:{self.port} {public}\n"

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> SftpTestServer:
        """Start listening (again, on the same port when restarted)."""
        self.stop()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = self._call(self._listen())
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        """Abort every connection, stop listening and end the loop thread."""
        if self._loop is None:
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> SftpTestServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _call(self, coroutine: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self) -> Any:
        owner = self

        class Server(asyncssh.SSHServer):
            def connection_made(self, conn: Any) -> None:
                owner.connections_made += 1
                owner._connections.add(conn)

            def connection_lost(self, exc: Exception | None) -> None:
                owner._connections = {c for c in owner._connections if not c.is_closed()}

            def begin_auth(self, username: str) -> bool:
                return True

            def password_auth_supported(self) -> bool:
                return True

            def validate_password(self, username: str, password: str) -> bool:
                return username == USERNAME and password == PASSWORD

            def public_key_auth_supported(self) -> bool:
                return owner.client_key is not None

            def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
                wanted = owner.client_key
                return (
                    username == USERNAME
                    and wanted is not None
                    and key.public_data == wanted.convert_to_public().public_data
                )

        class FaultySftp(asyncssh.SFTPServer):
            def write(self, file_obj: object, offset: int, data: bytes) -> Any:
                limit = owner.kill_after_bytes or owner.drop_after_bytes
                if limit is not None and owner.bytes_written + len(data) > limit:
                    owner.faults += 1
                    kill = owner.kill_after_bytes is not None
                    owner.drop_after_bytes = owner.kill_after_bytes = None
                    if kill:
                        owner._server.close()
                    self.connection.abort()
                    raise asyncssh.SFTPConnectionLost("connection dropped by the test")
                owner.bytes_written += len(data)
                return super().write(file_obj, offset, data)

            def fsync(self, file_obj: Any) -> None:
                super().fsync(file_obj)
                path = Path(os.fsdecode(file_obj.name)).relative_to(owner.root)
                owner.events.append(("fsync", str(path)))

            def rename(self, oldpath: bytes, newpath: bytes) -> None:
                super().rename(oldpath, newpath)
                owner.events.append(("rename", newpath.decode().lstrip("/")))

            def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
                super().posix_rename(oldpath, newpath)
                owner.events.append(("rename", newpath.decode().lstrip("/")))

        return await asyncssh.create_server(
            Server,
            "127.0.0.1",
            self.port,
            server_host_keys=[self.host_key],
            sftp_factory=lambda chan: FaultySftp(chan, chroot=str(self.root)),
            allow_scp=False,
            reuse_address=True,
        )

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.abort()
        self._connections.clear()
        await asyncio.sleep(0)
