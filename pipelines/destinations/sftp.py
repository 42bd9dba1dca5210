"""SFTP drop destination (paramiko): verified host key, atomic uploads, manifest last.

A batch lands in ``{remote_root}/{run_date}/{program_code}/``. Every file is first uploaded as
``.name.part``; only when all are complete are they renamed to their final names
(``posix-rename@openssh.com`` where the server has it), then ``manifest.json`` is written the
same way, last. Where the server offers ``fsync@openssh.com`` (OpenSSH does), each file is
flushed to the server's disk before it is renamed, so a batch logged as delivered does not
vanish from the state's disk with a power loss there; SFTP has no way to flush a folder, so
the renames themselves are as durable as the server's file system makes them. A folder being
replaced keeps its old manifest while the new files upload as ``.part`` files and loses it
only just before they are renamed, so a manifest always means "complete" and a batch killed
mid-upload leaves the old folder complete. ``discard`` removes what a batch killed mid-upload
left (its files and ``.part`` files; never what another run's complete manifest lists; the
folder when left empty), for reconciliation. Idempotency and ``holds`` read the remote
manifest back and every file it lists, comparing SHA-256 digests (a file of the right size
with other bytes is not held).

Security: the server's host key must match the ``known_hosts`` file or the pinned SHA-256
fingerprint (an unknown or different key is a :class:`TerminalDeliveryError`, nothing sent).
Credentials come from environment variables or an Airflow connection named in the config,
read at connect time, never stored in the config. With ``pgp_public_key`` set, each file is
OpenPGP-encrypted to the state's key (:class:`OpenPGPEncryptor`, GnuPG through python-gnupg)
and stored as ``name.pgp``; the manifest (no PII: names, counts, digests) stays plain.

Faults: refused, reset or dropped connections and timeouts are
:class:`TransientDeliveryError`; ``deliver`` retries them itself (tenacity, bounded,
exponential backoff), callers may retry again. Authentication and permission failures are
terminal.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import io
import os
import posixpath
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from paramiko.sftp import CMD_EXTENDED, CMD_INIT, CMD_VERSION, SFTPError
from pydantic import SecretStr
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from pipelines.destinations.base import (
    PUBLISH,
    UPLOAD,
    Batch,
    DeliveryError,
    DeliveryResult,
    Discarded,
    Progress,
    TerminalDeliveryError,
    TransientDeliveryError,
    no_progress,
)
from pipelines.destinations.local import (
    MANIFEST,
    build_manifest,
    check_batch_names,
    check_discard_names,
    discard_plan,
    folders_to_prune,
    manifest_bytes,
    manifest_matches,
    parse_manifest,
    stale_files,
    stored_files,
)
from pipelines.destinations.sftp_settings import SftpSettings

T = TypeVar("T")


@dataclass(frozen=True)
class SftpCredentials:
    """What we log in with; secrets hide themselves."""

    username: str
    password: SecretStr | None = None
    private_key: SecretStr | None = None
    passphrase: SecretStr | None = None


def resolve_credentials(
    settings: SftpSettings, environ: dict[str, str] | None = None
) -> SftpCredentials:
    """Read the secrets the settings name (environment, key file, Airflow connection)."""
    env = os.environ if environ is None else environ

    def from_env(name: str | None) -> SecretStr | None:
        if name is None:
            return None
        value = env.get(name)
        if not value:
            raise TerminalDeliveryError(f"environment variable {name} is not set")
        return SecretStr(value)

    username = settings.username
    password = from_env(settings.password_env)
    private_key = from_env(settings.private_key_env)
    passphrase = from_env(settings.passphrase_env)
    if settings.private_key_file is not None:
        try:
            private_key = SecretStr(settings.private_key_file.expanduser().read_text())
        except OSError:
            raise TerminalDeliveryError(
                f"cannot read private key file {settings.private_key_file}"
            ) from None
    if settings.connection_id is not None:
        connection = _airflow_connection(settings.connection_id)
        extra = connection.extra_dejson or {}
        username = username or connection.login
        password = password or (SecretStr(connection.password) if connection.password else None)
        if extra.get("private_key"):
            private_key = private_key or SecretStr(str(extra["private_key"]))
        if extra.get("private_key_passphrase"):
            passphrase = passphrase or SecretStr(str(extra["private_key_passphrase"]))
    if not username:
        raise TerminalDeliveryError("no SFTP username: set username or the connection's login")
    if password is None and private_key is None:
        raise TerminalDeliveryError("no SFTP password or private key was found")
    return SftpCredentials(username, password, private_key, passphrase)


def _airflow_connection(connection_id: str) -> Any:
    try:
        from airflow.sdk import Connection
    except ImportError:  # pragma: no cover - Airflow is a dependency
        raise TerminalDeliveryError("Airflow is not installed; use *_env settings") from None
    try:
        return Connection.get(connection_id)
    except Exception:
        raise TerminalDeliveryError(f"Airflow connection {connection_id} not found") from None


def load_private_key(text: str, passphrase: str | None) -> paramiko.PKey:
    """A paramiko key from OpenSSH or PEM text (Ed25519, ECDSA, RSA)."""
    data = text.encode()
    password = passphrase.encode() if passphrase else None
    loaded: Any
    try:
        try:
            loaded = serialization.load_ssh_private_key(data, password=password)
        except ValueError:
            loaded = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError):
        raise TerminalDeliveryError(
            "the SFTP private key does not load (format or passphrase)"
        ) from None
    key_class: type[paramiko.PKey]
    if isinstance(loaded, ed25519.Ed25519PrivateKey):
        key_class = paramiko.Ed25519Key
    elif isinstance(loaded, ec.EllipticCurvePrivateKey):
        key_class = paramiko.ECDSAKey
    elif isinstance(loaded, rsa.RSAPrivateKey):
        key_class = paramiko.RSAKey
    else:
        raise TerminalDeliveryError("the SFTP private key is of an unsupported type")
    return key_class.from_private_key(io.StringIO(text), password=passphrase)


class OpenPGPEncryptor:
    """Encrypts files to one OpenPGP public key with GnuPG (``gpg``) through python-gnupg.

    Optional capability: without the ``gpg`` binary or the ``gnupg`` module, building one
    raises :class:`TerminalDeliveryError` saying so (fail closed: nothing is sent in clear).
    Each use imports the key into a throw-away GnuPG home, so no keyring is shared or kept.
    """

    def __init__(self, public_key_file: Path) -> None:
        self.public_key_file = Path(public_key_file)
        try:
            import gnupg  # noqa: F401
        except ImportError:
            raise TerminalDeliveryError(
                "OpenPGP encryption needs the python-gnupg package; install it or remove "
                "pgp_public_key"
            ) from None
        if shutil.which("gpg") is None:
            raise TerminalDeliveryError(
                "OpenPGP encryption needs the gpg binary (Debian: apt-get install gpg); "
                "install it or remove pgp_public_key"
            )
        try:
            self._armored = self.public_key_file.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError):
            raise TerminalDeliveryError(f"cannot read OpenPGP key {self.public_key_file}") from None
        with self._gpg() as (_, fingerprint):
            self.fingerprint = fingerprint

    @contextmanager
    def _gpg(self) -> Iterator[tuple[Any, str]]:
        import gnupg

        with tempfile.TemporaryDirectory(prefix="dsgpg") as home:
            gpg = gnupg.GPG(gnupghome=home)
            imported = gpg.import_keys(self._armored)
            fingerprints = sorted(set(imported.fingerprints))
            if len(fingerprints) != 1:
                raise TerminalDeliveryError(
                    f"OpenPGP key file {self.public_key_file} must hold exactly one key "
                    f"(found {len(fingerprints)})"
                )
            yield gpg, fingerprints[0]

    def encrypt_all(self, payloads: list[bytes]) -> list[bytes]:
        """Each payload encrypted (binary OpenPGP message) to the key."""
        out = []
        with self._gpg() as (gpg, fingerprint):
            for data in payloads:
                result = gpg.encrypt(data, fingerprint, always_trust=True, armor=False)
                if not result.ok:
                    raise TerminalDeliveryError(
                        f"OpenPGP encryption to {fingerprint} failed ({result.status})"
                    )
                out.append(bytes(result.data))
        return out


def _known_host_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def _translate(destination: str, exc: BaseException) -> DeliveryError:
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, paramiko.AuthenticationException):
        return TerminalDeliveryError(f"{destination}: the SFTP server refused our credentials")
    if isinstance(exc, PermissionError) or getattr(exc, "errno", None) == errno.EACCES:
        return TerminalDeliveryError(f"{destination}: permission denied on the SFTP server")
    if isinstance(exc, paramiko.SSHException | EOFError | OSError):
        return TransientDeliveryError(
            f"{destination}: SFTP connection failed or dropped ({type(exc).__name__})"
        )
    return TerminalDeliveryError(f"{destination}: SFTP delivery failed ({type(exc).__name__})")


class SftpDestination:
    """A state's SFTP drop."""

    def __init__(
        self,
        name: str,
        settings: SftpSettings,
        *,
        timeout: float = 30.0,
        retries: int = 2,
        retry_backoff: float = 1.0,
        credentials: Callable[[], SftpCredentials] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.timeout = timeout
        self.retries = retries
        self.retry_backoff = retry_backoff
        self._credentials = credentials or (lambda: resolve_credentials(settings))
        self.encryptor = (
            OpenPGPEncryptor(settings.pgp_public_key) if settings.pgp_public_key else None
        )
        self._shared: list[tuple[paramiko.Transport, paramiko.SFTPClient]] | None = None

    # -- public protocol -------------------------------------------------------------------

    def deliver(self, batch: Batch, progress: Progress | None = None) -> DeliveryResult:
        """Upload the batch (``.part`` then rename), manifest last; retries transient faults.
        ``progress`` hears :data:`UPLOAD` before the first upload and :data:`PUBLISH` before
        the old manifest goes (``base.Progress``), again in a retried attempt."""
        check_batch_names(batch, self.name)
        return self._retrying(lambda: self._deliver_once(batch, progress or no_progress))

    def holds(self, batch: Batch) -> bool:
        """Whether the remote manifest lists exactly this batch and its files are there."""
        check_batch_names(batch, self.name)

        def check() -> bool:
            with self._session() as sftp:
                folder = self.folder(batch)
                manifest = parse_manifest(_read(sftp, posixpath.join(folder, MANIFEST)))
                return manifest_matches(manifest, batch) and _files_present(sftp, folder, manifest)

        return self._retrying(check)

    def arrived(self, batch: Batch) -> bool:
        """Whether the batch's own manifest is in its remote folder (written last: the batch
        arrived whole), whether or not its files are still there (a state may take them)."""
        check_batch_names(batch, self.name)

        def check() -> bool:
            with self._session() as sftp:
                path = posixpath.join(self.folder(batch), MANIFEST)
                return manifest_matches(parse_manifest(_read(sftp, path)), batch)

        return self._retrying(check)

    def folder(self, batch: Batch) -> str:
        """The remote folder of ``batch``."""
        return posixpath.join(self.settings.remote_root, batch.run_date, batch.program_code)

    def discard(
        self,
        run_date: str,
        program_code: str,
        names: Iterable[str],
        *,
        run_id: str,
        dry_run: bool = False,
    ) -> Discarded:
        """Remove what a batch of run ``run_id`` (its artifact ``names``) left in its remote
        folder without arriving whole (``local.discard_plan``: its files, as ``name`` or
        ``name.pgp``, and ``.part`` files; never a file another run's complete manifest
        lists); then the folder and its date folder when left empty. Retries transient
        faults; an unreachable server raises :class:`TransientDeliveryError`. With
        ``dry_run`` nothing is removed: what would be is said."""
        names = check_discard_names(run_date, program_code, names)
        folder = posixpath.join(self.settings.remote_root, run_date, program_code)
        where = self._location(folder)

        def attempt() -> Discarded:
            with self._session() as sftp:
                try:
                    present = sftp.listdir(folder)
                except OSError as exc:
                    if _is_missing(exc):
                        return Discarded(where)
                    raise
                manifest = parse_manifest(_read(sftp, posixpath.join(folder, MANIFEST)))
                remove, kept, vouching = discard_plan(present, names, manifest, run_id)
                if dry_run:
                    empty = not (set(present) - set(remove))
                    return Discarded(where, tuple(remove), tuple(kept), vouching, empty)
                for name in remove:
                    _remove(sftp, posixpath.join(folder, name))
                pruned = False
                root = PurePosixPath(self.settings.remote_root)
                for prunable in folders_to_prune(PurePosixPath(folder), root):
                    if sftp.listdir(str(prunable)):
                        break
                    sftp.rmdir(str(prunable))
                    pruned = True
            return Discarded(where, tuple(remove), tuple(kept), vouching, pruned)

        return self._retrying(attempt)

    def _location(self, folder: str) -> str:
        return f"sftp://{self.settings.host}:{self.settings.port}/{folder.lstrip('/')}"

    # -- one attempt ----------------------------------------------------------------------

    def _deliver_once(self, batch: Batch, progress: Progress) -> DeliveryResult:
        accepted = set(batch.child_keys)
        folder = self.folder(batch)
        location = self._location(folder)
        with self._session() as sftp:
            _makedirs(sftp, folder)
            manifest_path = posixpath.join(folder, MANIFEST)
            old = parse_manifest(_read(sftp, manifest_path))
            if manifest_matches(old, batch) and _files_present(sftp, folder, old):
                return DeliveryResult(accepted=accepted, location=location, sent_nothing_new=True)
            reusable = {
                entry["name"]: entry
                for entry in stored_files(old).values()
                if entry.get("name") and _same_file(sftp, folder, entry)
            }
            stored, uploads = self._prepare(batch, reusable)
            progress(UPLOAD)
            for stored_as, data in uploads:
                _put_part(sftp, folder, stored_as, data)
            # every new file is uploaded: only now does the old folder stop being complete
            progress(PUBLISH)
            _remove(sftp, manifest_path)
            for stored_as, _ in uploads:
                _commit_part(sftp, folder, stored_as)
            manifest = manifest_bytes(build_manifest(batch, stored))
            _put_part(sftp, folder, MANIFEST, manifest)
            _commit_part(sftp, folder, MANIFEST)
            for name in stale_files(old, (s for s, _, _ in stored.values())):
                _remove(sftp, posixpath.join(folder, name))
        uploaded = {stored_as for stored_as, _ in uploads}
        rows = {a.name: len(a.frame) for a in batch.artifacts if stored[a.name][0] in uploaded}
        return DeliveryResult(accepted=accepted, location=location, rows=rows)

    def _prepare(
        self, batch: Batch, reusable: dict[str, dict[str, Any]]
    ) -> tuple[dict[str, tuple[str, str, int]], list[tuple[str, bytes]]]:
        """What each artifact is stored as, and the uploads still needed."""
        suffix = ".pgp" if self.encryptor else ""
        stored: dict[str, tuple[str, str, int]] = {}
        todo = []
        for artifact in batch.artifacts:
            entry = reusable.get(artifact.name)
            if (
                entry is not None
                and entry.get("sha256") == artifact.sha256
                and entry.get("stored_as") == artifact.name + suffix
            ):
                stored[artifact.name] = (entry["stored_as"], entry["stored_sha256"], entry["bytes"])
            else:
                todo.append(artifact)
        payloads = [a.csv_bytes() for a in todo]
        if self.encryptor is not None and payloads:
            payloads = self.encryptor.encrypt_all(payloads)
        uploads = []
        for artifact, data in zip(todo, payloads, strict=True):
            stored_as = artifact.name + suffix
            stored[artifact.name] = (stored_as, hashlib.sha256(data).hexdigest(), len(data))
            uploads.append((stored_as, data))
        return stored, uploads

    # -- connection -----------------------------------------------------------------------

    def _retrying(self, attempt: Callable[[], T]) -> T:
        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=self.retry_backoff, max=max(self.retry_backoff, 60)),
            retry=retry_if_exception_type(TransientDeliveryError),
            reraise=True,
        )
        return retrying(attempt)

    @contextmanager
    def shard_session(self) -> Iterator[None]:
        """Keep one SFTP session open for every delivery inside the block (a shard's programs,
        one after the other); a session that failed is closed and the next attempt opens a
        new one."""
        self._shared = []
        try:
            yield
        finally:
            shared, self._shared = self._shared, None
            self._close_shared(shared)

    @staticmethod
    def _close_shared(shared: list[tuple[paramiko.Transport, paramiko.SFTPClient]]) -> None:
        while shared:
            transport, sftp = shared.pop()
            sftp.close()
            transport.close()

    @contextmanager
    def _session(self) -> Iterator[paramiko.SFTPClient]:
        if self._shared is None:
            with self._own_session() as sftp:
                yield sftp
            return
        shared = self._shared
        try:
            if not shared or not shared[0][0].is_active():
                self._close_shared(shared)
                transport = self._connect()
                sftp = _Client.from_transport(transport)
                if sftp is None:
                    transport.close()
                    raise TransientDeliveryError(f"{self.name}: the server opened no SFTP channel")
                sftp.get_channel().settimeout(self.timeout)
                shared.append((transport, sftp))
            yield shared[0][1]
        except BaseException as exc:
            self._close_shared(shared)
            if isinstance(exc, DeliveryError) or not isinstance(exc, Exception):
                raise
            raise _translate(self.name, exc) from exc

    @contextmanager
    def _own_session(self) -> Iterator[paramiko.SFTPClient]:
        transport: paramiko.Transport | None = None
        try:
            transport = self._connect()
            sftp = _Client.from_transport(transport)
            if sftp is None:
                raise TransientDeliveryError(f"{self.name}: the server opened no SFTP channel")
            sftp.get_channel().settimeout(self.timeout)
            with sftp:
                yield sftp
        except DeliveryError:
            raise
        except Exception as exc:
            raise _translate(self.name, exc) from exc
        finally:
            if transport is not None:
                transport.close()

    def _connect(self) -> paramiko.Transport:
        settings = self.settings
        sock = socket.create_connection((settings.host, settings.port), timeout=self.timeout)
        transport = paramiko.Transport(sock)
        transport.banner_timeout = self.timeout
        transport.handshake_timeout = self.timeout
        transport.auth_timeout = self.timeout
        known = self._known_keys()
        if known:
            options = transport.get_security_options()
            types = list(known)
            options.key_types = types + [t for t in options.key_types if t not in types]
        transport.start_client(timeout=self.timeout)
        self._verify_host_key(transport.get_remote_server_key(), known)
        credentials = self._credentials()
        if credentials.private_key is not None:
            passphrase = (
                credentials.passphrase.get_secret_value() if credentials.passphrase else None
            )
            key = load_private_key(credentials.private_key.get_secret_value(), passphrase)
            transport.auth_publickey(credentials.username, key)
        else:
            assert credentials.password is not None
            transport.auth_password(credentials.username, credentials.password.get_secret_value())
        return transport

    def _known_keys(self) -> dict[str, paramiko.PKey]:
        path = self.settings.known_hosts
        if path is None:
            return {}
        try:
            host_keys = paramiko.HostKeys(str(path.expanduser()))
        except (OSError, paramiko.SSHException):
            raise TerminalDeliveryError(f"{self.name}: cannot read known_hosts {path}") from None
        entry = host_keys.lookup(_known_host_name(self.settings.host, self.settings.port))
        return dict(entry) if entry else {}

    def _verify_host_key(self, key: paramiko.PKey, known: dict[str, paramiko.PKey]) -> None:
        pinned = self.settings.host_key_fingerprint
        if pinned is not None:
            if not hmac.compare_digest(key.fingerprint.rstrip("="), pinned.rstrip("=")):
                raise TerminalDeliveryError(
                    f"{self.name}: host key of {self.settings.host} does not match the pinned "
                    "fingerprint; nothing was sent"
                )
            return
        expected = known.get(key.get_name())
        if expected is None:
            raise TerminalDeliveryError(
                f"{self.name}: host {self.settings.host} is not in known_hosts with a "
                f"{key.get_name()} key; nothing was sent"
            )
        if not hmac.compare_digest(expected.asbytes(), key.asbytes()):
            raise TerminalDeliveryError(
                f"{self.name}: host key of {self.settings.host} differs from known_hosts "
                "(possible interception); nothing was sent"
            )

    def __repr__(self) -> str:
        s = self.settings
        return f"SftpDestination({self.name!r}, {s.host}:{s.port}, root={s.remote_root!r})"


# -- remote file helpers -------------------------------------------------------------------


FSYNC = "fsync@openssh.com"


class _Client(paramiko.SFTPClient):
    """paramiko's SFTP client, keeping the extensions the server offers in its ``VERSION``
    reply (name -> data), which paramiko reads and drops."""

    extensions: dict[str, bytes]

    def _send_version(self) -> int:
        hello = paramiko.Message()
        hello.add_int(3)  # SFTP version 3, as paramiko speaks
        self._send_packet(CMD_INIT, hello)
        kind, data = self._read_packet()
        if kind != CMD_VERSION:
            raise SFTPError("Incompatible sftp protocol")
        reply = paramiko.Message(data)
        version = int(reply.get_int())
        self.extensions = {}
        while reply.get_remainder():  # extension pairs: name, data
            name = reply.get_text()
            self.extensions[name] = reply.get_binary()
        return version


def _is_missing(exc: OSError) -> bool:
    return isinstance(exc, FileNotFoundError) or exc.errno == errno.ENOENT


def _read(sftp: paramiko.SFTPClient, path: str) -> bytes | None:
    try:
        with sftp.open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        if _is_missing(exc):
            return None
        raise


def _remove(sftp: paramiko.SFTPClient, path: str) -> None:
    try:
        sftp.remove(path)
    except OSError as exc:
        if not _is_missing(exc):
            raise


def _size(sftp: paramiko.SFTPClient, path: str) -> int | None:
    try:
        return sftp.stat(path).st_size
    except OSError as exc:
        if _is_missing(exc):
            return None
        raise


def _sha256(sftp: paramiko.SFTPClient, path: str) -> str | None:
    """SHA-256 of a remote file's bytes (read back in chunks), ``None`` when it is missing."""
    digest = hashlib.sha256()
    try:
        with sftp.open(path, "rb") as handle:
            handle.prefetch()
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        if _is_missing(exc):
            return None
        raise
    return digest.hexdigest()


def _same_file(sftp: paramiko.SFTPClient, folder: str, entry: dict[str, Any]) -> bool:
    """Whether the stored file is there with the digest the manifest gives (its size first,
    so a file of another size is not read back)."""
    path = posixpath.join(folder, str(entry["stored_as"]))
    if _size(sftp, path) != entry.get("bytes"):
        return False
    return _sha256(sftp, path) == entry.get("stored_sha256")


def _files_present(sftp: paramiko.SFTPClient, folder: str, manifest: dict[str, Any] | None) -> bool:
    entries = stored_files(manifest).values()
    return all(_same_file(sftp, folder, entry) for entry in entries)


def _makedirs(sftp: paramiko.SFTPClient, folder: str) -> None:
    path = "/" if folder.startswith("/") else ""
    for part in [p for p in folder.split("/") if p and p != "."]:
        path = posixpath.join(path, part) if path else part
        if _size(sftp, path) is None:
            try:
                sftp.mkdir(path, mode=0o700)
            except OSError:
                if _size(sftp, path) is None:  # not made by a concurrent worker either
                    raise


def _put_part(sftp: paramiko.SFTPClient, folder: str, name: str, data: bytes) -> None:
    """Upload ``data`` as ``.name.part``, flushed to the server's disk where it offers
    ``fsync@openssh.com`` (the server handles requests in order: after every write), its
    size confirmed by the server."""
    path = posixpath.join(folder, f".{name}.part")
    with sftp.open(path, "wb") as remote:
        remote.set_pipelined(True)
        remote.write(data)
        remote.flush()
        if FSYNC in getattr(sftp, "extensions", {}):
            sftp._request(CMD_EXTENDED, FSYNC, remote.handle)  # waits for the writes' replies
    if (size := sftp.stat(path).st_size) != len(data):
        raise OSError(f"{path}: the server holds {size} of {len(data)} bytes")


def _commit_part(sftp: paramiko.SFTPClient, folder: str, name: str) -> None:
    """Rename ``.name.part`` to ``name``, replacing what was there."""
    part, final = posixpath.join(folder, f".{name}.part"), posixpath.join(folder, name)
    try:
        sftp.posix_rename(part, final)
    except OSError as exc:
        if _is_missing(exc):
            raise
        _remove(sftp, final)  # a server without posix-rename: remove then rename
        sftp.rename(part, final)
