"""Pseudonymization keys: one secret per recipient, found by a ``KeyProvider``.

A key is written ``keyid:base64secret``. The key id travels inside every pseudonym so a
recipient (and our ledger) can tell which key made it; the secret never leaves, never appears
in a repr, a log or an exception. A missing key stops the run (``MissingKeyError``), naming the
recipient and where we looked.

Providers: ``EnvKeyProvider`` (``$DATASHARE_KEY_VT_AOE``), ``FileKeyProvider`` (a JSON file
outside the repository, mode 0600) and ``ChainKeyProvider`` (the first that has it). Airflow
Variables and secrets backends are a small adapter in ``pipelines.airflow_keys`` (this package
never imports Airflow).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

from privacy.errors import InvalidKeyError, MissingKeyError

__all__ = [
    "KEY_ID_PATTERN",
    "MIN_SECRET_BYTES",
    "ChainKeyProvider",
    "EnvKeyProvider",
    "FileKeyProvider",
    "InvalidKeyError",
    "KeyProvider",
    "MissingKeyError",
    "RecipientKey",
    "default_key_file",
    "ensure_demo_key",
    "format_key",
    "key_name",
    "parse_key",
]

KEY_ID_PATTERN = r"[A-Za-z0-9_]{1,15}"
"""A key id: short enough that ``{key_id}-{16 base32 chars}`` fits Ed-Fi's 32 characters."""
MIN_SECRET_BYTES = 32
ENV_PREFIX = "DATASHARE_KEY_"
_KEY_ID = re.compile(KEY_ID_PATTERN)


class RecipientKey(NamedTuple):
    """A recipient's key: ``(key_id, secret)``; the repr hides the secret."""

    key_id: str
    secret: bytes

    def __repr__(self) -> str:
        return f"RecipientKey(key_id={self.key_id!r}, secret=<hidden>)"

    def __str__(self) -> str:
        return repr(self)


@runtime_checkable
class KeyProvider(Protocol):
    """Finds the key of a recipient, or raises ``MissingKeyError`` saying where it looked."""

    def key(self, recipient_code: str) -> RecipientKey:
        """The key of ``recipient_code``."""
        ...


def key_name(recipient_code: str) -> str:
    """The variable name of a recipient's key: ``VT-AOE`` -> ``DATASHARE_KEY_VT_AOE``."""
    return ENV_PREFIX + recipient_code.upper().replace("-", "_")


def parse_key(text: str, *, source: str) -> RecipientKey:
    """Parse ``keyid:base64secret``; ``InvalidKeyError`` names ``source``, never the text."""
    key_id, sep, encoded = text.strip().partition(":")
    if not sep or not _KEY_ID.fullmatch(key_id):
        raise InvalidKeyError(
            f"{source}: a key must be written keyid:base64secret with a key id of "
            f"1-15 letters, digits or underscores"
        )
    try:
        secret = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidKeyError(f"{source}: the secret of key {key_id} is not base64") from exc
    if len(secret) < MIN_SECRET_BYTES:
        raise InvalidKeyError(
            f"{source}: the secret of key {key_id} is shorter than {MIN_SECRET_BYTES} bytes"
        )
    return RecipientKey(key_id, secret)


def format_key(key: RecipientKey) -> str:
    """``keyid:base64secret``, the form providers read (for writing a key file)."""
    return f"{key.key_id}:{base64.b64encode(key.secret).decode('ascii')}"


class EnvKeyProvider:
    """Keys from environment variables ``DATASHARE_KEY_<RECIPIENT>`` (``-`` as ``_``)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def key(self, recipient_code: str) -> RecipientKey:
        """The key in ``$DATASHARE_KEY_<RECIPIENT>``."""
        name = key_name(recipient_code)
        text = self._environ.get(name)
        if not text:
            raise MissingKeyError(recipient_code, [f"environment variable {name}"])
        return parse_key(text, source=f"environment variable {name}")

    def __repr__(self) -> str:
        return "EnvKeyProvider()"


def default_key_file() -> Path:
    """``$XDG_CONFIG_HOME/datashare/keys.json`` (``~/.config/datashare/keys.json``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "datashare" / "keys.json"


class FileKeyProvider:
    """Keys from a JSON file ``{"VT-AOE": "keyid:base64secret", ...}`` readable by us only.

    The file lives outside the repository (default ``default_key_file()``); a file that group
    or others may read is refused (``InvalidKeyError``).
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_key_file()

    def key(self, recipient_code: str) -> RecipientKey:
        """The key stored under ``recipient_code``."""
        where = f"key file {self.path}"
        entries = _read_key_file(self.path) if self.path.exists() else {}
        text = entries.get(recipient_code)
        if not text:
            raise MissingKeyError(recipient_code, [where])
        return parse_key(text, source=f"{where}, entry {recipient_code}")

    def __repr__(self) -> str:
        return f"FileKeyProvider({str(self.path)!r})"


def _read_key_file(path: Path) -> dict[str, str]:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InvalidKeyError(f"key file {path} is readable by others; run chmod 600 on it")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidKeyError(f"key file {path} is not readable JSON") from exc
    if not isinstance(entries, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in entries.items()
    ):
        raise InvalidKeyError(f"key file {path} must map recipient codes to key strings")
    return entries


class ChainKeyProvider:
    """The first provider that has the recipient's key; ``MissingKeyError`` lists them all."""

    def __init__(self, providers: Sequence[KeyProvider]) -> None:
        self.providers = tuple(providers)

    def key(self, recipient_code: str) -> RecipientKey:
        """The key from the first provider that has one."""
        looked_in: list[str] = []
        for provider in self.providers:
            try:
                return provider.key(recipient_code)
            except MissingKeyError as missing:
                looked_in.extend(missing.looked_in)
        raise MissingKeyError(recipient_code, looked_in)

    def __repr__(self) -> str:
        return f"ChainKeyProvider({list(self.providers)!r})"


def ensure_demo_key(path: Path | str, recipient_code: str) -> str:
    """Make sure the key file at ``path`` holds a key for ``recipient_code``; return its id.

    Creates the file (mode 0600, its folder 0700) and a random 32-byte key when missing; an
    existing key is left alone, so pseudonyms stay stable across demo runs.
    """
    path = Path(path).expanduser()
    entries = _read_key_file(path) if path.exists() else {}
    if recipient_code in entries:
        return parse_key(entries[recipient_code], source=f"key file {path}").key_id
    key = RecipientKey(f"demo{secrets.token_hex(3)}", secrets.token_bytes(MIN_SECRET_BYTES))
    entries[recipient_code] = format_key(key)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(entries, out, indent=2, sort_keys=True)
    os.chmod(partial, 0o600)
    os.replace(partial, path)
    return key.key_id
