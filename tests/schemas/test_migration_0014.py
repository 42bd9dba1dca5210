"""0014: an Ed-Fi ledger row from before it keeps ``fields`` NULL (what its body carried is
not known: a lost-stage recovery logs it with every field its resource can carry); a row
written after holds the sorted field names; going back down drops the column and keeps the
rows."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import Engine, inspect, text

from pipelines.db import make_engine
from schemas.migrate import downgrade, upgrade
from tests.conftest import reset_schema

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
WHEN = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
ROW = (
    "INSERT INTO sent_resources (destination, resource, key_digest, natural_key, program_code, "
    "child_local_id, payload_digest, resource_id, status, run_id, updated_at{extra}) VALUES "
    "('mo-edfi', 'students', :key, '{{}}', 'MO-HS-01', 'C1', 'p', 'id-1', 'sent', 'run-1', "
    ":when{values})"
)


@pytest.fixture(params=BACKENDS)
def before_0014(request: pytest.FixtureRequest, tmp_path) -> Engine:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url = reset_schema(request.getfixturevalue("pg_url"))
    engine = make_engine(url)
    upgrade(engine, "0013")
    yield engine
    engine.dispose()


def columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("sent_resources")}


def test_rows_from_before_keep_no_fields_and_new_rows_hold_them(before_0014: Engine) -> None:
    engine = before_0014
    assert "fields" not in columns(engine)
    with engine.begin() as connection:
        connection.execute(text(ROW.format(extra="", values="")), {"key": "old", "when": WHEN})
    upgrade(engine, "0014")
    assert "fields" in columns(engine)
    names = ["birth_date", "first_name", "last_name"]
    with engine.begin() as connection:
        connection.execute(
            text(ROW.format(extra=", fields", values=", :fields")),
            {"key": "new", "when": WHEN, "fields": json.dumps(names)},
        )
        found = dict(
            connection.execute(
                text("SELECT key_digest, fields FROM sent_resources ORDER BY key_digest")
            ).all()
        )
    assert set(found) == {"new", "old"}
    assert found["old"] is None, "a row from before: its fields are not known"
    stored = found["new"]
    assert (json.loads(stored) if isinstance(stored, str) else stored) == names
    downgrade(engine, "0013")
    assert "fields" not in columns(engine)
    with engine.connect() as connection:
        kept = connection.execute(text("SELECT key_digest FROM sent_resources")).scalars().all()
    assert sorted(kept) == ["new", "old"], "going back down keeps the rows"
