"""The database refuses an AIAN opt-in without its authority or recorder (SQLite and
PostgreSQL), and a row that slipped in before the constraint still switches nothing on."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipelines.db import make_engine
from privacy.decision import program_outcome
from privacy.participation import current_participation
from privacy.reasons import Reason
from schemas.migrate import downgrade, upgrade
from tests.conftest import reset_schema
from tests.privacy.builders import agreement

RUN = dt.date(2026, 11, 27)
COMPLETE = {
    "authority": "Tribal Council Resolution 2026-14",
    "decided_by": "Tribal Council",
    "recorded_by": "data manager",
    "scope": "record",
    "effective_date": dt.date(2026, 4, 15),
}
INSERT = text(
    "INSERT INTO participation_events (program_id, recipient_id, action, effective_date, "
    "decided_by, authority, scope, excluded_fields, reason, recorded_at, recorded_by) "
    "VALUES (:program, :recipient, :action, :effective_date, :decided_by, :authority, :scope, "
    "'[]', 'written by SQL', '2026-11-01 12:00:00', :recorded_by)"
)


def _seed(engine: Engine) -> None:
    with engine.begin() as c:
        c.execute(text(
            "INSERT INTO programs (id, code, grant_number, name, state, program_type, is_aian) "
            "VALUES (1, 'NM-AIAN-07', '90CI0007', 'Pueblo Head Start', 'NM', 'aian', true), "
            "(2, 'NM-AIAN-08', '90CI0008', 'Mesa Head Start', 'NM', 'aian', true)"
        ))  # fmt: skip
        c.execute(text(
            "INSERT INTO recipients (id, code, name, category, entity_level, state) VALUES "
            "(1, 'NM-ECECD', 'NM ECECD', 'state_education_data_system', 'state', 'NM')"
        ))  # fmt: skip
        for program in (1, 2):
            c.execute(
                INSERT.bindparams(**{**COMPLETE, "program": program, "recipient": 1,
                                     "action": "participate", "authority": None,
                                     "scope": None, "recorded_by": None})
            )  # fmt: skip


def _insert(engine: Engine, program: int = 1, **row: Any) -> None:
    values = {**COMPLETE, "program": program, "recipient": None, "action": "opt_in", **row}
    with engine.begin() as c:
        c.execute(INSERT.bindparams(**values))


REFUSED = [
    pytest.param({"authority": None}, id="authority_null"),
    pytest.param({"authority": ""}, id="authority_empty"),
    pytest.param({"authority": "   "}, id="authority_spaces"),
    pytest.param({"authority": "\t \n"}, id="authority_tabs_newlines"),
    pytest.param({"recorded_by": None}, id="recorded_by_null"),
    pytest.param({"recorded_by": " "}, id="recorded_by_blank"),
    pytest.param({"decided_by": " "}, id="decided_by_blank"),
    pytest.param({"scope": None}, id="scope_null"),
    pytest.param({"effective_date": None}, id="effective_date_null"),
]


@pytest.mark.parametrize("row", REFUSED)
def test_when_sql_writes_an_incomplete_opt_in_then_the_database_refuses_it(
    engine: Engine, row: dict[str, Any]
) -> None:
    _seed(engine)
    with pytest.raises(IntegrityError):
        _insert(engine, **row)


def test_a_complete_opt_in_and_an_opt_out_without_authority_are_accepted(engine: Engine) -> None:
    _seed(engine)
    _insert(engine)
    _insert(engine, action="opt_out", authority=None, scope=None, recorded_by=None)
    with engine.connect() as c:
        assert c.scalar(text("SELECT count(*) FROM participation_events")) == 4


# -- a row from before the constraint (schema 0002) ------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def old_engine(request: pytest.FixtureRequest, tmp_path):  # type: ignore[no-untyped-def]
    url = (
        f"sqlite:///{tmp_path / 'old.db'}"
        if request.param == "sqlite"
        else reset_schema(request.getfixturevalue("pg_url"))
    )
    engine = make_engine(url)
    upgrade(engine, "0002")
    yield engine
    engine.dispose()


def _old_insert(engine: Engine, program: int, authority: str | None) -> None:
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO participation_events (program_id, recipient_id, action, "
                "effective_date, decided_by, authority, scope, excluded_fields, recorded_at) "
                "VALUES (:program, NULL, 'opt_in', '2026-04-15', 'import', :authority, "
                "'record', '[]', '2026-04-15 12:00:00')"
            ),
            {"program": program, "authority": authority},
        )


def test_when_an_old_row_lacks_authority_then_upgrade_keeps_it_and_it_switches_nothing_on(
    old_engine: Engine,
) -> None:
    _seed_old(old_engine)
    _old_insert(old_engine, 1, None)  # written by an import before the constraint
    _old_insert(old_engine, 2, "Resolution 9")  # written by the command line back then
    upgrade(old_engine)
    with Session(old_engine) as session:
        status = current_participation(session, "NM-ECECD", RUN)
    bad, good = status["NM-AIAN-07"], status["NM-AIAN-08"]
    assert not bad.shares and bad.opt_in_missing == ("authority", "recorded_by")
    assert program_outcome(bad, True, agreement()).reason is Reason.AIAN_OPT_IN_INCOMPLETE
    assert good.shares and good.opt_in is not None and good.opt_in.recorded_by == "import"
    with pytest.raises(IntegrityError):  # the constraint binds every new row
        _insert(old_engine, authority=" ")
    downgrade(old_engine, "0002")  # and the way back keeps the old rows
    with old_engine.connect() as c:
        assert c.scalar(text("SELECT count(*) FROM participation_events")) == 4


def _seed_old(engine: Engine) -> None:
    with engine.begin() as c:
        c.execute(text(
            "INSERT INTO programs (id, code, grant_number, name, state, program_type, is_aian) "
            "VALUES (1, 'NM-AIAN-07', '90CI0007', 'Pueblo Head Start', 'NM', 'aian', true), "
            "(2, 'NM-AIAN-08', '90CI0008', 'Mesa Head Start', 'NM', 'aian', true)"
        ))  # fmt: skip
        c.execute(text(
            "INSERT INTO recipients (id, code, name, category, entity_level, state) VALUES "
            "(1, 'NM-ECECD', 'NM ECECD', 'state_education_data_system', 'state', 'NM')"
        ))  # fmt: skip
        for program in (1, 2):
            c.execute(
                text(
                    "INSERT INTO participation_events (program_id, recipient_id, action, "
                    "effective_date, decided_by, excluded_fields, recorded_at) VALUES "
                    "(:program, 1, 'participate', '2025-07-01', 'council', '[]', "
                    "'2025-07-01 12:00:00')"
                ),
                {"program": program},
            )
