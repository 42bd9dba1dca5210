"""``pseudonymize``: an identifier replaced by a keyed, stable pseudonym.

``{key_id}-{16 base32 characters}``: the first 80 bits of HMAC-SHA256 under the recipient's
own key, over the field name and the value (so equal values of two fields do not link).
Never a bare hash: without the key nobody can recompute or test a guess. The same key and
value give the same pseudonym on every run; another recipient's key gives another one. The
whole value fits Ed-Fi's 32-character ``studentUniqueId``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from cryptography.hazmat.primitives import hashes, hmac

from privacy.errors import MissingKeyError
from privacy.fields import Field, Kind
from privacy.keys import KEY_ID_PATTERN, RecipientKey
from privacy.transforms.base import Transform, TransformContext, per_unique

MAC_BYTES = 10
"""80 bits: a collision among a million children has odds of about 1 in 10^12."""
PSEUDONYM_PATTERN = rf"^{KEY_ID_PATTERN}-[A-Z2-7]{{16}}$"
"""A regular expression every pseudonym matches (key id, dash, 16 base32 characters)."""
_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", dtype=np.uint8)


class Pseudonymize(Transform):
    """Replace an identifier by its keyed pseudonym."""

    name = "pseudonymize"
    kinds = frozenset({Kind.IDENTIFIER})
    needs_key = True

    def apply(self, series: pd.Series, ctx: TransformContext) -> pd.Series:
        """Pseudonyms, computed once per distinct value; nulls stay null."""
        if ctx.key is None:
            raise MissingKeyError("(unknown)", ["the plan: it was compiled without a key"])
        key = ctx.key
        return per_unique(series, lambda values: pseudonyms(key, ctx.field.name, values))

    def explain(self, field: Field, params: Mapping[str, Any]) -> str:
        """Plain words."""
        return "replaced by a pseudonym made with this recipient's own secret key"


def pseudonyms(key: RecipientKey, field_name: str, values: np.ndarray) -> np.ndarray:
    """The pseudonyms of ``values`` (non-null) of ``field_name`` under ``key``."""
    base = hmac.HMAC(key.secret, hashes.SHA256())
    base.update(field_name.encode("utf-8") + b"\x00")
    copy = base.copy
    digests: list[bytes] = []
    append = digests.append
    for value in values.tolist():  # about 1 µs per value; the hot loop of a run
        mac = copy()
        mac.update(value.encode("utf-8") if isinstance(value, str) else str(value).encode("utf-8"))
        append(mac.finalize())
    return _encode(key.key_id, digests)


def pseudonym(key: RecipientKey, field_name: str, value: object) -> str:
    """The pseudonym of one value (for tests and for looking one child up)."""
    return str(pseudonyms(key, field_name, np.array([value], dtype=object))[0])


def _encode(key_id: str, digests: list[bytes]) -> np.ndarray:
    """``{key_id}-{base32 of the first 10 bytes}`` of each digest, vectorized."""
    if not digests:
        return np.empty(0, dtype=object)
    prefix = np.frombuffer(f"{key_id}-".encode("ascii"), dtype=np.uint8)
    raw = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), -1)
    out = np.empty((len(digests), len(prefix) + 16), dtype=np.uint8)
    out[:, : len(prefix)] = prefix
    for half in range(2):  # 5 bytes = 40 bits = 8 base32 characters
        bits = np.zeros(len(digests), dtype=np.uint64)
        for i in range(5):
            bits = (bits << np.uint64(8)) | raw[:, half * 5 + i].astype(np.uint64)
        for k in range(8):
            five = (bits >> np.uint64(35 - 5 * k)) & np.uint64(31)
            out[:, len(prefix) + half * 8 + k] = _ALPHABET[five.astype(np.intp)]
    text = out.view(f"S{out.shape[1]}").ravel()
    return np.array([b.decode("ascii") for b in text.tolist()], dtype=object)
