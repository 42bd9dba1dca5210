"""The extract gives the same chunks on SQLite and PostgreSQL: the same children in the same
order, the same related rows, whatever the chunk size (PostgreSQL reads each chunk's ids from
a temporary table, SQLite through a semi-join on the id window)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import select

from pipelines.db import make_engine
from pipelines.demo import seed
from pipelines.extract import CHUNK_TABLE, extract
from schemas import Base, Program
from tests.conftest import reset_schema

RUN = dt.date(2026, 11, 27)


def _chunks(url: str, chunk_size: int) -> tuple[list[str], list[dict[str, pd.DataFrame]]]:
    engine = make_engine(url)
    try:
        Base.metadata.create_all(engine)
        seed(engine, children=60, seed=3)
        with engine.connect() as connection:
            codes = sorted(connection.scalars(select(Program.code)).all())
        chosen = codes[::2]  # every other program: the others' children must not show up
        chunks = [
            {
                "children": c.children,
                "consents": c.consents,
                "notices": c.notices,
                "statements": c.statements,
            }
            for c in extract(engine, chosen, RUN, chunk_size=chunk_size)
        ]
        return chosen, chunks
    finally:
        engine.dispose()


def _plain(frame: pd.DataFrame) -> list[tuple[object, ...]]:
    return [tuple(row) for row in frame.astype(object).where(frame.notna(), None).to_numpy()]


@pytest.mark.postgres
@pytest.mark.parametrize("chunk_size", [7, 1000])
def test_postgresql_chunks_equal_sqlite_chunks(
    tmp_path: object, pg_url: str, chunk_size: int
) -> None:
    chosen, lite = _chunks(f"sqlite:///{tmp_path}/x.db", chunk_size)
    _, pg = _chunks(reset_schema(pg_url), chunk_size)
    assert len(lite) == len(pg) >= 1
    if chunk_size == 7:
        assert len(pg) > 1
    children = pd.concat([c["children"] for c in pg])
    assert set(children["program_code"]) <= set(chosen)
    assert children["child_id"].is_monotonic_increasing and children["child_id"].is_unique
    for a, b in zip(lite, pg, strict=True):
        for name in a:
            assert list(a[name].columns) == list(b[name].columns), name
            assert _plain(a[name]) == _plain(b[name]), name


@pytest.mark.postgres
def test_the_chunk_table_ends_with_the_chunk(pg_url: str) -> None:
    url = reset_schema(pg_url)
    _chunks(url, 7)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            left = connection.exec_driver_sql(
                "SELECT count(*) FROM pg_class WHERE relname = %(name)s", {"name": CHUNK_TABLE}
            ).scalar()
        assert left == 0
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("readers", [2, 3, 7])
def test_a_chunk_read_in_slices_equals_the_chunk_read_whole(
    pg_url: str, readers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines import extract as module

    url = reset_schema(pg_url)
    _, whole = _chunks(url, 1000)
    used: list[int] = []
    texts = module._texts

    def counted(connection, ids, run_date):  # type: ignore[no-untyped-def]
        used.append(connection.connection.driver_connection.info.backend_pid)
        return texts(connection, ids, run_date)

    monkeypatch.setattr(module, "_texts", counted)
    monkeypatch.setattr(module, "READERS", readers)
    monkeypatch.setattr(module, "MIN_SLICE", 1)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            codes = sorted(connection.scalars(select(Program.code)).all())[::2]
        sliced = [
            {"children": c.children, "consents": c.consents, "notices": c.notices,
             "statements": c.statements}
            for c in extract(engine, codes, RUN, chunk_size=1000)
        ]  # fmt: skip
    finally:
        engine.dispose()
    assert len(used) == readers  # one slice per reader
    assert len(set(used)) >= 2  # beside the chunk's connection (a pool may hand one on)
    assert len(sliced) == len(whole) == 1
    assert not whole[0]["children"].empty and not whole[0]["consents"].empty
    for name, frame in whole[0].items():
        pd.testing.assert_frame_equal(sliced[0][name], frame, check_exact=True)
