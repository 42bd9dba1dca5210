"""Pseudonyms: keyed, stable, separated per recipient and field, Ed-Fi sized, nulls kept."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re

import numpy as np
import pandas as pd
import pytest

from privacy.errors import MissingKeyError
from privacy.fields import CATALOG
from privacy.keys import RecipientKey
from privacy.transforms import PSEUDONYM_PATTERN, TransformContext, get_transform, pseudonym
from privacy.transforms.pseudonymize import pseudonyms

KEY_A = RecipientKey("vtaoe2026", bytes(range(32)))
KEY_B = RecipientKey("uvm2026", bytes(range(1, 33)))
RUN = dt.date(2026, 11, 27)


def apply(values: list, key: RecipientKey | None = KEY_A, field: str = "child_local_id") -> list:
    ctx = TransformContext(CATALOG[field], {}, RUN, key)
    out = get_transform("pseudonymize").apply(pd.Series(values, dtype=object), ctx)
    return [None if pd.isna(v) else v for v in out.tolist()]


def reference(key: RecipientKey, field: str, value: str) -> str:
    """The documented construction, computed independently with the standard library."""
    mac = hmac.new(key.secret, field.encode() + b"\x00" + value.encode(), hashlib.sha256)
    return f"{key.key_id}-{base64.b32encode(mac.digest()[:10]).decode()}"


@pytest.mark.parametrize(
    "value",
    ["A1", "", "ü-ñ", "0" * 40, "C00000001"],
    ids=["short", "empty_text", "non_ascii", "long", "typical"],
)
def test_value_is_keyed_hmac_sha256_in_base32_with_key_id(value: str) -> None:
    assert apply([value]) == [reference(KEY_A, "child_local_id", value)]


def test_vectorized_encoding_matches_reference_over_many_values() -> None:
    values = [f"C{i:07d}" for i in range(2000)]
    assert apply(values) == [reference(KEY_A, "child_local_id", v) for v in values]


def test_format_fits_ed_fi_and_matches_the_exported_pattern() -> None:
    longest_id = RecipientKey("k" * 15, bytes(32))
    for key in (KEY_A, longest_id):
        (value,) = apply(["12345"], key)
        assert re.fullmatch(PSEUDONYM_PATTERN, value)
        assert len(value) <= 32
        assert value.startswith(f"{key.key_id}-")


def test_same_key_and_value_give_the_same_pseudonym_across_runs() -> None:
    first = apply(["A1", "A2", "A1"])
    again = apply(["A2", "A1"], RecipientKey(KEY_A.key_id, bytes(KEY_A.secret)))
    assert first[0] == first[2] == again[1]
    assert first[1] == again[0]
    assert first[0] != first[1]


def test_different_recipients_get_different_pseudonyms() -> None:
    assert apply(["A1"], KEY_A)[0].split("-")[1] != apply(["A1"], KEY_B)[0].split("-")[1]


def test_a_new_secret_under_the_same_key_id_changes_the_pseudonym() -> None:
    rotated = RecipientKey(KEY_A.key_id, bytes(reversed(KEY_A.secret)))
    assert apply(["A1"], KEY_A) != apply(["A1"], rotated)


def test_the_same_value_in_two_fields_does_not_link() -> None:
    assert apply(["123"], field="child_local_id") != apply(["123"], field="state_student_id")


def test_not_a_bare_hash() -> None:
    (value,) = apply(["A1"])
    bare = base64.b32encode(hashlib.sha256(b"A1").digest()[:10]).decode()
    salted = base64.b32encode(hashlib.sha256(b"child_local_id\x00A1").digest()[:10]).decode()
    assert value.split("-")[1] not in {bare, salted}


def test_nulls_stay_null_and_numbers_are_read_as_text() -> None:
    out = apply([None, "7", 7, np.nan, pd.NA])
    assert out[0] is None and out[3] is None and out[4] is None
    assert out[1] == out[2] == reference(KEY_A, "child_local_id", "7")


def test_empty_and_all_null_columns() -> None:
    assert apply([]) == []
    assert apply([None, None]) == [None, None]
    assert len(pseudonyms(KEY_A, "child_local_id", np.array([], dtype=object))) == 0


def test_single_value_helper_agrees_with_the_column_transform() -> None:
    assert pseudonym(KEY_A, "child_local_id", "A1") == apply(["A1"])[0]


def test_applying_without_a_key_fails_closed() -> None:
    with pytest.raises(MissingKeyError):
        apply(["A1"], key=None)
