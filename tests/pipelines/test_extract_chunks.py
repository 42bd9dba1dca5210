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
