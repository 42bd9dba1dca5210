"""Encrypted staging between tasks: round trip, binding, tamper detection, fail-closed keys."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from pipelines.staging import (
    KEY_ENV,
    KEY_FILE_ENV,
    StagedFileTampered,
    StagedRef,
    StagingError,
    StagingKeyError,
    create_key_file,
    load,
    load_bytes,
    remove,
    stage,
    staging_key,
)
from tests.pipelines.batches import permitted_frame

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


@pytest.fixture(autouse=True)
def _no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)


def test_frame_round_trip_keeps_values_and_types(tmp_path: Path) -> None:
    frame = permitted_frame(5)
    ref = stage(frame, tmp_path, KEY, run_id="run-1")
    assert ref.rows == 5 and ref.run_id == "run-1"
    back = load(ref, KEY)
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert back.loc[0, "birth_date"] == dt.date(2021, 1, 1)
    assert StagedRef.from_dict(json.loads(json.dumps(ref.to_dict()))) == ref


def test_staged_file_is_ciphertext_with_owner_only_permissions(tmp_path: Path) -> None:
    frame = permitted_frame(3)
    ref = stage(frame, tmp_path / "staging", KEY)
    data = Path(ref.path).read_bytes()
    for secret in ("Kid0", "Family1", "C0002"):
        assert secret.encode() not in data
    assert stat.S_IMODE(os.stat(ref.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "staging").st_mode) == 0o700
    assert not list((tmp_path / "staging").glob(".*.part"))


def test_same_data_staged_twice_gets_fresh_nonces(tmp_path: Path) -> None:
    a = stage(b"same bytes", tmp_path, KEY, name="a.stg")
    b = stage(b"same bytes", tmp_path, KEY, name="b.stg")
    assert a.sha256 != b.sha256
    assert load_bytes(a, KEY) == load_bytes(b, KEY) == b"same bytes"


def test_bytes_round_trip_and_frame_loader_refuses_bytes(tmp_path: Path) -> None:
    ref = stage(b"\x00payload", tmp_path, KEY)
    assert ref.rows is None
    assert load_bytes(ref, KEY) == b"\x00payload"
    with pytest.raises(StagingError, match="load_bytes"):
        load(ref, KEY)


def flip_last_byte(ref: StagedRef) -> StagedRef:
    path = Path(ref.path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    return ref


def flip_and_rehash(ref: StagedRef) -> StagedRef:
    import hashlib

    flip_last_byte(ref)
    return StagedRef(ref.path, hashlib.sha256(Path(ref.path).read_bytes()).hexdigest(), 3)


def renamed(ref: StagedRef) -> StagedRef:
    target = Path(ref.path).with_name("other.stg")
    Path(ref.path).rename(target)
    return StagedRef(str(target), ref.sha256, ref.rows, ref.run_id)


def other_run(ref: StagedRef) -> StagedRef:
    return StagedRef(ref.path, ref.sha256, ref.rows, "run-2")


@pytest.mark.parametrize(
    ("tamper", "key", "message"),
    [
        (flip_last_byte, KEY, "does not match its SHA-256"),
        (flip_and_rehash, KEY, "fails authentication"),
        (renamed, KEY, "fails authentication"),
        (other_run, KEY, "fails authentication"),
        (lambda ref: ref, OTHER_KEY, "fails authentication"),
    ],
    ids=["altered", "altered_and_digest_forged", "renamed", "other_run_id", "wrong_key"],
)
def test_when_staged_file_tampered_then_refused(tmp_path: Path, tamper, key, message) -> None:  # type: ignore[no-untyped-def]
    ref = stage(permitted_frame(3), tmp_path, KEY, run_id="run-1", name="batch.stg")
    with pytest.raises(StagedFileTampered, match=message) as caught:
        load(tamper(ref), key)
    assert "Kid" not in str(caught.value)


def test_remove_deletes_and_is_idempotent(tmp_path: Path) -> None:
    ref = stage(b"x", tmp_path, KEY)
    remove(ref)
    remove(ref)
    assert not Path(ref.path).exists()
    with pytest.raises(StagingError, match="missing"):
        load_bytes(ref, KEY)


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, base64.b64encode(KEY).decode())
    assert staging_key() == KEY


def test_demo_key_file_is_created_once_with_0600(tmp_path: Path) -> None:
    path = create_key_file(tmp_path / "state" / "staging.key")
    first = staging_key(path)
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    create_key_file(path)
    assert staging_key(path) == first


def test_key_file_may_be_the_shared_json_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"VT-AOE": "k1:xyz", "staging": base64.b64encode(KEY).decode()}))
    path.chmod(0o600)
    assert staging_key(path) == KEY


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no staging key"),
        (lambda p: (p.write_text(base64.b64encode(KEY).decode()), p.chmod(0o644)), "chmod 600"),
        (lambda p: (p.write_text("not base64!"), p.chmod(0o600)), "not base64"),
        (lambda p: (p.write_text(base64.b64encode(b"short").decode()), p.chmod(0o600)), "32 bytes"),
        (lambda p: (p.write_text('{"other": "x"}'), p.chmod(0o600)), "no 'staging' entry"),
    ],
    ids=["missing", "readable_by_others", "not_base64", "too_short", "json_without_entry"],
)
def test_when_key_unusable_then_fail_closed(tmp_path: Path, setup, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "staging.key"
    setup(path)
    with pytest.raises(StagingKeyError, match=message):
        staging_key(path)


def test_when_no_key_anywhere_then_fail_closed() -> None:
    with pytest.raises(StagingKeyError, match=KEY_ENV):
        staging_key()


def _frames() -> dict[str, pd.DataFrame]:
    """Frames of the shapes tasks stage: text with gaps, dates, timestamps (naive and UTC),
    integers, nullable integers, floats, booleans, categories, empty, and attrs."""
    typed = pd.DataFrame(
        {
            "text": ["a", None, "ç"],
            "day": [dt.date(2021, 1, 1), None, dt.date(2024, 2, 29)],
            "stamp": pd.to_datetime(["2026-01-01 10:00:00", None, "2026-11-27 00:00:00"]),
            "utc": pd.to_datetime(["2026-01-01 10:00:00", "2026-03-01 00:00:00", None], utc=True),
            "count": [1, 2, 3],
            "maybe": pd.array([1, None, 3], dtype="Int64"),
            "share": [0.5, float("nan"), 1.0],
            "flag": [True, False, True],
            "kind": pd.Categorical(["x", "y", "x"]),
            "objects": pd.Series(["1", 2, None], dtype=object).astype(str),
        }
    )
    with_attrs = permitted_frame(4)
    with_attrs.attrs = {"source": "test"}
    return {
        "typed": typed,
        "permitted": permitted_frame(6),
        "empty": permitted_frame(0),
        "attrs": with_attrs,
    }


@pytest.mark.parametrize("name", sorted(_frames()))
@pytest.mark.parametrize("as_table", [False, True], ids=["frame", "arrow_table"])
def test_load_gives_the_frame_pandas_read_parquet_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, as_table: bool
) -> None:
    """The staged frame comes back exactly as ``pd.read_parquet`` reads its parquet bytes
    (values, dtypes, index, columns, attrs), read without going through ``pd.read_parquet``."""
    import io

    import pyarrow as pa

    frame = _frames()[name]
    data = pa.Table.from_pandas(frame, preserve_index=False) if as_table else frame
    ref = stage(data, tmp_path, KEY, run_id="run-1")
    expected = pd.read_parquet(io.BytesIO(load_bytes(ref, KEY)), engine="pyarrow")

    def refuse(*args: object, **kwargs: object) -> pd.DataFrame:
        raise AssertionError("pd.read_parquet is the slow path")

    monkeypatch.setattr(pd, "read_parquet", refuse)
    back = load(ref, KEY)
    pd.testing.assert_frame_equal(back, expected, check_exact=True)
    assert back.dtypes.to_dict() == expected.dtypes.to_dict()
    assert back.attrs == expected.attrs
    assert list(back.columns) == list(frame.columns)


@pytest.mark.parametrize("as_table", [False, True], ids=["frame", "arrow_table"])
def test_staged_parquet_has_no_statistics_and_tables_are_plain(
    tmp_path: Path, as_table: bool
) -> None:
    """A staged file is read whole: no column statistics are written for it, and an Arrow
    table (text columns) is written without dictionary pages."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = permitted_frame(6)
    data = pa.Table.from_pandas(frame, preserve_index=False) if as_table else frame
    ref = stage(data, tmp_path, KEY, run_id="run-1")
    metadata = pq.ParquetFile(io.BytesIO(load_bytes(ref, KEY))).metadata
    chunks = [metadata.row_group(0).column(j) for j in range(metadata.num_columns)]
    assert all(chunk.statistics is None for chunk in chunks)
    if as_table:
        assert not any("DICTIONARY" in e for chunk in chunks for e in chunk.encodings)


def _text_frames() -> dict[str, pd.DataFrame]:
    """Text frames as tasks stage them (object columns of text or nothing): gaps, NaN, a
    column with nothing in it, no rows, unicode and hostile text, names that look like
    numbers or pandas' own."""

    def text(**columns: list[object]) -> pd.DataFrame:
        return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})

    return {
        "gaps": text(a=["x", None, ""], b=[None, None, None], c=["1", "2", None]),
        "nan": text(a=["x", float("nan"), "z"], b=[float("nan")] * 3),
        "no_rows": text(a=[], b=[]),
        "all_empty": text(a=[None, None], b=[None, None]),
        "unicode": text(
            **{"0": ["ç😀", 'a,"b"\r\n'], "__index_level_0__": ["\x00", "é"], " ": ["", " "]}
        ),
    }


@pytest.mark.parametrize("name", sorted(_text_frames()))
@pytest.mark.parametrize("as_table", [False, True], ids=["frame", "arrow_table"])
def test_text_frame_is_built_directly_as_pandas_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, as_table: bool
) -> None:
    """A text frame (staged by ``to_parquet`` or as :mod:`.stage_tables` makes it) is built
    from its Arrow columns, not by pandas' conversion, and is exactly the frame
    ``pd.read_parquet`` reads: values, dtypes, index, column names and their type, attrs."""
    import io

    import pipelines.staging as staging
    from pipelines.submission.stage_tables import as_tables

    frame = _text_frames()[name]
    tables = as_tables([frame.iloc[:0], frame]) if as_table else None
    data = tables[1] if tables is not None else frame
    ref = stage(data, tmp_path, KEY, run_id="run-1")
    expected = pd.read_parquet(io.BytesIO(load_bytes(ref, KEY)), engine="pyarrow")
    built = []
    direct = staging._text_frame

    def spy(table):  # type: ignore[no-untyped-def]
        built.append(table)
        return direct(table)

    monkeypatch.setattr(staging, "_text_frame", spy)
    back = load(ref, KEY)
    assert len(built) == 1
    pd.testing.assert_frame_equal(
        back, expected, check_exact=True, check_column_type=True, check_index_type=True
    )
    assert back.dtypes.to_dict() == expected.dtypes.to_dict()
    assert back.columns.dtype == expected.columns.dtype
    assert back.attrs == expected.attrs == {}
    assert back.isna().to_numpy().tolist() == expected.isna().to_numpy().tolist()
