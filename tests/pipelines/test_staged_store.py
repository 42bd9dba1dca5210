"""Both staged stores keep sealed artifacts by run and program, give back exactly what was
staged, refuse altered ones, and forget a program's or a run's artifacts on request."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select, update

from pipelines.db import make_engine
from pipelines.staged_store import CHUNK_BYTES, DatabaseStore, FolderStore, load_frame, load_raw
from pipelines.staging import StagedFileTampered, StagingError
from schemas import StagedChunk
from schemas.migrate import upgrade
from tests.pipelines.batches import permitted_frame

KEY = bytes(range(32))


@pytest.fixture(params=["database", "folder"])
def store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "folder":
        return FolderStore(tmp_path / "staging")
    engine = make_engine(f"sqlite:///{tmp_path / 'program.db'}")
    upgrade(engine)
    return DatabaseStore(engine)


def test_round_trip_of_frames_and_large_bytes(store) -> None:  # type: ignore[no-untyped-def]
    frame = permitted_frame(4)
    ref = store.put(frame, KEY, run_id="r1", program="P1", name="identity.csv")
    pd.testing.assert_frame_equal(load_frame(store, ref, KEY), frame, check_dtype=False)
    big = bytes(range(256)) * (CHUNK_BYTES // 256 + 10)  # more than one chunk
    ref = store.put(big, KEY, run_id="r1", program="P1", name="ledger.json")
    assert load_raw(store, ref, KEY) == big
    assert store.runs() == {"r1"}


def test_forgetting_a_program_then_a_run(store) -> None:  # type: ignore[no-untyped-def]
    a = store.put(b"a", KEY, run_id="r1", program="P1", name="x")
    b = store.put(b"b", KEY, run_id="r1", program="P2", name="x")
    c = store.put(b"c", KEY, run_id="r2", program="P1", name="x")
    store.remove_program("r1", "P1")
    with pytest.raises(StagingError, match="missing"):
        load_raw(store, a, KEY)
    assert load_raw(store, b, KEY) == b"b"
    store.remove_run("r1")
    assert store.runs() == {"r2"} and load_raw(store, c, KEY) == b"c"


def test_a_chunk_altered_in_the_database_is_refused(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'program.db'}")
    upgrade(engine)
    store = DatabaseStore(engine)
    ref = store.put(b"payload", KEY, run_id="r1", program="P1", name="x")
    with engine.begin() as connection:
        data = connection.scalar(select(StagedChunk.data))
        connection.execute(update(StagedChunk).values(data=data[:-1] + bytes([data[-1] ^ 1])))
    with pytest.raises(StagedFileTampered):
        load_raw(store, ref, KEY)
    assert b"payload" not in data, "the database holds ciphertext only"


@pytest.fixture(params=["folder", "database"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    """The folder store, and the database store on SQLite and on PostgreSQL (``COPY``)."""
    if request.param == "folder":
        return FolderStore(tmp_path / "staging")
    return DatabaseStore(make_engine(db_url))


def test_many_programs_staged_at_once_read_back_and_forgotten_at_once(any_store) -> None:  # type: ignore[no-untyped-def]
    from pipelines.staged_store import Staging

    store = any_store
    frame = permitted_frame(3)
    big = bytes(range(256)) * (CHUNK_BYTES // 256 + 10)  # more than one chunk
    items = [
        Staging(frame, "r1", "P1", "identity.csv"),
        Staging(b"ledger one", "r1", "P1", "ledger.json"),
        Staging(big, "r1", "P2", "ledger.json"),
    ]
    refs = store.put_many(items, KEY)
    assert [r.rows for r in refs] == [3, None, None]
    pd.testing.assert_frame_equal(load_frame(store, refs[0], KEY), frame, check_dtype=False)
    assert load_raw(store, refs[1], KEY) == b"ledger one"
    assert load_raw(store, refs[2], KEY) == big
    again = store.put_many([Staging(b"restaged", "r1", "P1", "ledger.json")], KEY)[0]
    assert load_raw(store, again, KEY) == b"restaged", "a restaged artifact replaces the old"
    store.remove_many([refs[0], again])
    for gone in (refs[0], again):
        with pytest.raises(StagingError, match="missing"):
            load_raw(store, gone, KEY)
    assert load_raw(store, refs[2], KEY) == big, "only what was named is forgotten"


def test_a_shard_read_at_once_gives_each_artifact_once_then_asks_the_store(any_store) -> None:  # type: ignore[no-untyped-def]
    from pipelines.staged_store import Prefetched, Staging

    store = any_store
    big = bytes(range(256)) * (CHUNK_BYTES // 256 + 10)  # more than one chunk
    items = [Staging(b"one", "r1", "P1", "ledger.json"), Staging(big, "r1", "P2", "ledger.json")]
    refs = store.put_many(items, KEY)
    assert store.read_many(refs) == {r.path: store.read(r) for r in refs}
    ahead = Prefetched(store, refs)
    store.remove_many([refs[0]])  # read ahead at the first read, not before
    with pytest.raises(StagingError, match="missing"):
        load_raw(ahead, refs[0], KEY)
    assert load_raw(ahead, refs[1], KEY) == big
    assert load_raw(ahead, refs[1], KEY) == big, "asked again: read from the store"


def _chunks(engine, location: str) -> list[bytes]:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        query = select(StagedChunk.data).where(StagedChunk.key == location)
        return list(connection.scalars(query.order_by(StagedChunk.seq)))


@pytest.mark.parametrize(
    "harm",
    ["flip the last byte", "cut the last byte", "cut the second chunk", "drop the second chunk"],
)
def test_a_harmed_chunk_read_with_its_shard_is_refused_and_the_others_open(
    db_url: str, harm: str
) -> None:
    from sqlalchemy import delete

    from pipelines.staged_store import DB_PREFIX, Prefetched, Staging

    engine = make_engine(db_url)
    store = DatabaseStore(engine)
    big = bytes(range(256)) * (CHUNK_BYTES // 256 + 10)  # two chunks
    frame = permitted_frame(3)
    items = [
        Staging(big, "r1", "P1", "ledger.json"),
        Staging(frame, "r1", "P1", "identity.csv"),
        Staging(b"other", "r1", "P2", "ledger.json"),
    ]
    harmed, *others = refs = store.put_many(items, KEY)
    location = harmed.path.removeprefix(DB_PREFIX)
    _, second = _chunks(engine, location)
    where = (StagedChunk.key == location, StagedChunk.seq == 1)
    with engine.begin() as connection:
        if harm == "drop the second chunk":
            connection.execute(delete(StagedChunk).where(*where))
        elif harm == "flip the last byte":
            changed = second[:-1] + bytes([second[-1] ^ 1])
            connection.execute(update(StagedChunk).where(*where).values(data=changed))
        else:
            cut = second[:-1] if harm == "cut the last byte" else second[: len(second) // 2]
            connection.execute(update(StagedChunk).where(*where).values(data=cut))
    ahead = Prefetched(store, refs)
    with pytest.raises(StagedFileTampered, match=r"staged file db:r1/P1/ledger\.json does not"):
        load_raw(ahead, harmed, KEY)
    pd.testing.assert_frame_equal(load_frame(ahead, others[0], KEY), frame, check_dtype=False)
    assert load_raw(ahead, others[1], KEY) == b"other"
    engine.dispose()
