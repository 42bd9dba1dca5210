"""Data handed between Airflow tasks, staged encrypted at rest.

Tasks hand each other a :class:`StagedRef` (path, digest, row count: no PII), never the data.
The data is a parquet serialization (or raw bytes) sealed with AES-GCM: a random 96-bit nonce
per file, and associated data binding the file name and run id, so a file that was altered,
renamed or swapped with another run's fails to open (:class:`StagedFileTampered`).

File layout: ``MAGIC (6 bytes) | kind (1 byte: P parquet, B bytes) | nonce (12) | ciphertext``.

The key is 32 bytes: ``$DATASHARE_STAGING_KEY`` (base64), else the key file named by
``$DATASHARE_STAGING_KEY_FILE`` or given (mode 0600; base64 text as :func:`create_key_file`
makes for the demo, or a JSON object whose ``"staging"`` entry is the base64 key). No key:
:class:`StagingKeyError`, nothing is written (fail closed).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import secrets
import stat
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pandas.api.internals import create_dataframe_from_blocks
from pandas.arrays import ArrowStringArray

KEY_ENV = "DATASHARE_STAGING_KEY"
KEY_FILE_ENV = "DATASHARE_STAGING_KEY_FILE"
KEY_FILE_ENTRY = "staging"
KEY_BYTES = 32
MAGIC = b"DSSTG1"
_PARQUET, _BYTES = b"P", b"B"
_NONCE_BYTES = 12
_HEADER = len(MAGIC) + 1 + _NONCE_BYTES


class StagingError(Exception):
    """Root of staging failures; messages name the file, never its content."""


class StagingKeyError(StagingError):
    """No usable staging key: nothing is staged or read."""


class StagedFileTampered(StagingError):
    """A staged file that does not open with the key and its binding: altered or swapped."""


@dataclass(frozen=True)
class StagedRef:
    """Where a staged artifact is, its SHA-256 (of the encrypted file) and its row count
    (``None`` for raw bytes); small and PII-free, fit for XCom."""

    path: str
    sha256: str
    rows: int | None
    run_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StagedRef:
        """The inverse of :meth:`to_dict`."""
        return cls(**data)


def staging_key(key_file: Path | str | None = None) -> bytes:
    """The staging key: ``$DATASHARE_STAGING_KEY``, else the key file; else
    :class:`StagingKeyError` saying where it looked."""
    text = os.environ.get(KEY_ENV)
    if text:
        return _decode_key(text, f"environment variable {KEY_ENV}")
    path = key_file or os.environ.get(KEY_FILE_ENV)
    if path is None:
        raise StagingKeyError(
            f"no staging key: set {KEY_ENV} (base64 of 32 bytes) or {KEY_FILE_ENV}"
        )
    path = Path(path).expanduser()
    if not path.exists():
        raise StagingKeyError(f"no staging key: {KEY_ENV} is unset and {path} does not exist")
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise StagingKeyError(f"staging key file {path} is readable by others; chmod 600 it")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):  # a JSON key file shared with other keys
        try:
            text = json.loads(text)[KEY_FILE_ENTRY]
        except (ValueError, KeyError, TypeError):
            raise StagingKeyError(f"key file {path} has no {KEY_FILE_ENTRY!r} entry") from None
    return _decode_key(str(text), f"staging key file {path}")


def _decode_key(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise StagingKeyError(f"{source} is not base64") from None
    if len(key) != KEY_BYTES:
        raise StagingKeyError(f"{source} must hold {KEY_BYTES} bytes, base64-encoded")
    return key


def create_key_file(path: Path | str) -> Path:
    """Create a random staging key file (mode 0600, folder 0700) if missing; for the demo."""
    path = Path(path).expanduser()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii") + "\n")
    return path


_PARQUET_OPTIONS: dict[str, Any] = {"compression": "snappy", "write_statistics": False}
"""How a frame is written: pandas' default compression; no column statistics (a quarter of
the write's time: a staged file is read whole, never filtered by them)."""
_TEXT_OPTIONS: dict[str, Any] = {**_PARQUET_OPTIONS, "use_dictionary": False}
"""How an Arrow table (text columns only, :mod:`.submission.stage_tables`) is written: plain,
not dictionary-encoded (the write's time halved again, the file a few percent larger)."""


def _binding(name: str, run_id: str, kind: bytes) -> bytes:
    return b"datashare-staging-v1\0" + kind + b"\0" + name.encode() + b"\0" + run_id.encode()


def seal(
    data: pd.DataFrame | pa.Table | bytes, key: bytes, *, run_id: str, name: str
) -> tuple[bytes, int | None]:
    """``data`` serialized and sealed with AES-GCM, bound to ``name`` and ``run_id``; and its
    row count (``None`` for bytes). An Arrow table (with its pandas metadata, as a frame
    converted by ``pa.Table.from_pandas``) reads back as the frame would, unconverted."""
    if len(key) != KEY_BYTES:
        raise StagingKeyError(f"a staging key is {KEY_BYTES} bytes")
    if isinstance(data, pd.DataFrame):
        kind, rows = _PARQUET, len(data)
        buffer = io.BytesIO()
        data.to_parquet(buffer, engine="pyarrow", index=False, **_PARQUET_OPTIONS)
        plain = buffer.getvalue()
    elif isinstance(data, pa.Table):
        kind, rows = _PARQUET, data.num_rows
        buffer = io.BytesIO()
        pq.write_table(data, buffer, **_TEXT_OPTIONS)
        plain = buffer.getvalue()
    else:
        kind, rows, plain = _BYTES, None, bytes(data)
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = MAGIC + kind + nonce + AESGCM(key).encrypt(nonce, plain, _binding(name, run_id, kind))
    return sealed, rows


def stage(
    data: pd.DataFrame | bytes,
    directory: Path | str,
    key: bytes,
    *,
    run_id: str = "",
    name: str | None = None,
) -> StagedRef:
    """Encrypt ``data`` into ``directory`` (mode 0700) under ``name`` (default random);
    written atomically with mode 0600."""
    name = name or f"{uuid.uuid4().hex}.stg"
    if "/" in name or name.startswith("."):
        raise StagingError(f"staged file name {name!r} must be a plain file name")
    sealed, rows = seal(data, key, run_id=run_id, name=name)
    folder = Path(directory)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / name
    partial = folder / f".{name}.part"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(sealed)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
    return StagedRef(str(path), hashlib.sha256(sealed).hexdigest(), rows, run_id)


def _read_file(ref: StagedRef) -> bytes:
    try:
        return Path(ref.path).read_bytes()
    except FileNotFoundError:
        raise StagingError(f"staged file {ref.path} is missing") from None


def unseal(ref: StagedRef, sealed: bytes, key: bytes) -> tuple[bytes, bytes]:
    """Check ``sealed`` against ``ref`` and decrypt it: (kind, plain bytes)."""
    where = ref.path
    if hashlib.sha256(sealed).hexdigest() != ref.sha256:
        raise StagedFileTampered(f"staged file {where} does not match its SHA-256")
    if len(sealed) < _HEADER or not sealed.startswith(MAGIC):
        raise StagedFileTampered(f"staged file {where} is not a datashare staged file")
    kind = sealed[len(MAGIC) : len(MAGIC) + 1]
    nonce = sealed[len(MAGIC) + 1 : _HEADER]
    name = where.rsplit("/", 1)[-1]
    try:
        plain = AESGCM(key).decrypt(nonce, sealed[_HEADER:], _binding(name, ref.run_id, kind))
    except InvalidTag:
        raise StagedFileTampered(
            f"staged file {where} fails authentication: altered, renamed, from another run, "
            "or sealed with another key"
        ) from None
    return kind, plain


def _open(
    ref: StagedRef, key: bytes, read: Callable[[StagedRef], bytes] | None
) -> tuple[bytes, bytes]:
    return unseal(ref, (read or _read_file)(ref), key)


def load(
    ref: StagedRef, key: bytes, read: Callable[[StagedRef], bytes] | None = None
) -> pd.DataFrame:
    """The frame staged at ``ref``; :class:`StagedFileTampered` if it does not authenticate.
    ``read`` fetches the sealed bytes (default: the file at ``ref.path``)."""
    kind, plain = _open(ref, key, read)
    if kind != _PARQUET:
        raise StagingError(f"staged file {ref.path} holds bytes, not a frame; use load_bytes")
    return frame_from_parquet(plain)


def _major(version: str) -> int:
    return int(version.split(".", 1)[0])


# pandas >= 3 with pyarrow >= 25 converts with pyarrow's defaults (no types mapper, no
# timezone rewrite): the fast path below gives the very frame pd.read_parquet gives
_PLAIN_CONVERSION = _major(pd.__version__) >= 3 and _major(pa.__version__) >= 25


def frame_from_parquet(plain: bytes) -> pd.DataFrame:
    """The frame ``pd.read_parquet`` reads from ``plain`` (values, dtypes, attrs), read with
    ``pyarrow.parquet.ParquetFile`` directly: pandas' reader goes through pyarrow's dataset
    layer and its file-handle plumbing for a buffer already in memory (about 1.2x the CPU
    here), and both steps stay on the calling thread: a staged frame is a few hundred rows,
    which Arrow's thread pool hands around for more CPU than it saves (about 0.8x the CPU
    without it). Older pandas or pyarrow, whose conversions pandas adjusts, use pandas'
    reader."""
    if not _PLAIN_CONVERSION:
        return pd.read_parquet(io.BytesIO(plain), engine="pyarrow")
    read = pq.ParquetFile(pa.BufferReader(plain)).read
    table = read(use_pandas_metadata=True, use_threads=False)
    frame = _text_frame(table) if _text_table(table) else table.to_pandas(use_threads=False)
    attrs = (table.schema.metadata or {}).get(b"PANDAS_ATTRS")
    if attrs is not None:
        frame.attrs = json.loads(attrs)
    return frame


_TEXT = pd.StringDtype("pyarrow", na_value=float("nan"))
"""The dtype pandas gives an Arrow text column (``str``, backed by ``large_string``)."""


def _text_table(table: pa.Table) -> bool:
    """Whether ``table`` is a text frame as staging writes it (each column text or empty, by
    name, on a plain range index), which :func:`_text_frame` converts as pandas would."""
    described = json.loads((table.schema.metadata or {}).get(b"pandas", b"null"))
    if not isinstance(described, dict) or described.get("index_columns") != []:
        return False
    columns = described.get("columns")
    names = table.column_names
    if described.get("column_indexes") != [] or not names or len(set(names)) != len(names):
        return False
    if not isinstance(columns, list) or len(columns) != len(names):
        return False
    kinds = {
        "unicode": (pa.types.is_string, pa.types.is_large_string),
        "empty": (pa.types.is_null,),
    }
    return all(
        isinstance(c, dict)
        and c.get("name") == name
        and c.get("field_name") == name
        and c.get("numpy_type") == "object"
        and c.get("metadata") is None
        and any(test(kind) for test in kinds.get(str(c.get("pandas_type")), ()))
        for c, name, kind in zip(columns, names, table.schema.types, strict=True)
    )


def _text_frame(table: pa.Table) -> pd.DataFrame:
    """``table.to_pandas()`` of a text table (:func:`_text_table`), built from its columns
    directly: pandas' conversion reconstructs its metadata and casts each text column on its
    own (most of a small frame's read); here the text columns are cast together, once."""
    text = pa.large_string()
    kinds = [text if pa.types.is_string(kind) else kind for kind in table.schema.types]
    table = table.cast(
        pa.schema([pa.field(n, k) for n, k in zip(table.column_names, kinds, strict=True)])
    )
    rows = table.num_rows
    blocks: list[tuple[Any, np.ndarray]] = []
    empty = [i for i, kind in enumerate(kinds) if pa.types.is_null(kind)]
    for i, kind in enumerate(kinds):
        if kind == text:
            blocks.append((ArrowStringArray(table.column(i), dtype=_TEXT), np.array([i])))
    if empty:
        blocks.append((np.full((len(empty), rows), None, dtype=object), np.array(empty)))
    names = pd.Index(table.column_names, dtype="str")
    return create_dataframe_from_blocks(blocks, index=pd.RangeIndex(rows), columns=names)


def load_bytes(
    ref: StagedRef, key: bytes, read: Callable[[StagedRef], bytes] | None = None
) -> bytes:
    """The bytes staged at ``ref`` (a frame's parquet serialization for frames)."""
    return _open(ref, key, read)[1]


def remove(ref: StagedRef) -> None:
    """Delete the staged file (already gone is fine)."""
    Path(ref.path).unlink(missing_ok=True)
