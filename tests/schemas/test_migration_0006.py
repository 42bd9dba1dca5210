"""Migration 0006 on a database with data: stored codes are checked before the rule goes on,
the rule then refuses a bad code, and going back down lifts it."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from pipelines.db import make_engine
from schemas.migrate import downgrade, upgrade
from tests.conftest import reset_schema

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
INSERT = text(
    "INSERT INTO programs (code, grant_number, name, state, program_type, is_aian) "
    "VALUES (:code, 'g', 'n', 'VT', 'head_start', false)"
)
RUN = text(
    "INSERT INTO runs (id, destination, run_date, dry_run, status, started_at, summary) "
    "VALUES (:id, :destination, '2026-11-27', false, 'success', '2026-11-27 00:00:00+00', '{}')"
)


@pytest.fixture(params=BACKENDS)
def before_0006(request: pytest.FixtureRequest, tmp_path) -> Engine:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url = reset_schema(request.getfixturevalue("pg_url"))
    engine = make_engine(url)
    upgrade(engine, "0005")
    yield engine
    engine.dispose()


def test_when_a_stored_code_climbs_out_then_the_upgrade_stops_and_says_how_many(
    before_0006: Engine,
) -> None:
    with before_0006.begin() as connection:
        connection.execute(INSERT, {"code": "VT-HS-01"})
        connection.execute(INSERT, {"code": "../../esc"})
    with pytest.raises(RuntimeError, match=r"1 row\(s\) of programs have a code that breaks"):
        upgrade(before_0006)
    with before_0006.begin() as connection:
        connection.execute(text("UPDATE programs SET code = 'esc' WHERE code = '../../esc'"))
    upgrade(before_0006)
    assert "ledger_anchors" in inspect(before_0006).get_table_names()


@pytest.mark.parametrize(
    ("statement", "values"),
    [
        (INSERT, {"code": "../../esc"}),
        (INSERT, {"code": "a/b"}),
        (INSERT, {"code": ".."}),
        (RUN, {"id": "r1", "destination": "../destinations/demo"}),
        (RUN, {"id": "r2", "destination": "Demo"}),
    ],
)
def test_when_upgraded_then_bad_codes_are_refused_and_downgrade_lifts_the_rule(
    before_0006: Engine, statement: object, values: dict[str, str]
) -> None:
    upgrade(before_0006)
    with pytest.raises(IntegrityError), before_0006.begin() as connection:
        connection.execute(statement, values)  # type: ignore[arg-type]
    with before_0006.begin() as connection:  # good ones still go in
        connection.execute(INSERT, {"code": "VT-HS-01"})
        connection.execute(RUN, {"id": "ok", "destination": "mo-dese-demo"})
    downgrade(before_0006, "0005")
    with before_0006.begin() as connection:
        connection.execute(statement, values)  # type: ignore[arg-type]
    assert "ledger_anchors" not in inspect(before_0006).get_table_names()
