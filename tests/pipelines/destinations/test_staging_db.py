"""Staging database destination on SQLite and the real PostgreSQL: one transaction per batch."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import CheckConstraint, Engine, MetaData, create_engine, inspect, text

from pipelines.destinations.base import Batch, TerminalDeliveryError, TransientDeliveryError
from pipelines.destinations.staging_db import (
    MARKER_TABLE,
    StagingDbDestination,
    StagingDbSettings,
    resolve_url,
)
from pipelines.mapping import staging_table
from schemas.filespec import load_spec
from tests.conftest import reset_schema
from tests.pipelines.batches import make_batch, permitted_frame

SPECS = [load_spec("hs_child_identity"), load_spec("hs_enrollment")]
BY_FILE = {spec.file_name: spec for spec in SPECS}
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def staging_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty staging database: a SQLite file, or the scratch PostgreSQL database reset."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'staging.db'}"
    return reset_schema(request.getfixturevalue("staging_pg_url"))


@pytest.fixture
def reader(staging_url: str) -> Iterator[Engine]:
    engine = create_engine(staging_url)
    yield engine
    engine.dispose()


@pytest.fixture
def staging(staging_url: str) -> Iterator[StagingDbDestination]:
    destination = make_destination(staging_url)
    yield destination
    destination.close()


def make_destination(url: str, retries: int = 0) -> StagingDbDestination:
    return StagingDbDestination(
        "state-staging",
        StagingDbSettings(url_env="UNUSED_IN_TESTS"),
        SPECS,
        timeout=3,
        retries=retries,
        retry_backoff=0,
        url=lambda: SecretStr(url),
    )


def table_rows(engine: Engine, spec_name: str) -> list[dict]:
    spec = load_spec(spec_name)
    with engine.connect() as connection:
        result = connection.execute(text(f'SELECT * FROM "{spec.table_name}"'))
        rows = [dict(row._mapping) for row in result]
    return sorted(rows, key=lambda r: tuple(r[k] for k in spec.key))


def markers(engine: Engine) -> list[dict]:
    with engine.connect() as connection:
        result = connection.execute(text(f"SELECT * FROM {MARKER_TABLE} ORDER BY id"))
        return [dict(row._mapping) for row in result]


# The staging layout written out here from the state's file documentation (not read from the
# specs the destination uses): column -> its value from a source row, typed as stored.
SEX = {"female": "F", "male": "M", "not_selected": "X"}
RACE = {"white": "WH", "black": "BL", "asian": "AS", "two_or_more": "MR", "unknown": "UN"}
EXPECTED_COLUMNS = {
    "hs_child_identity.csv": {
        "ProgramID": lambda r: r["program_code"],
        "LocalChildID": lambda r: r["child_local_id"],
        "SASID": lambda r: r["state_student_id"],
        "LegalFirstName": lambda r: r["first_name"],
        "LegalMiddleName": lambda r: r["middle_name"],
        "LegalLastName": lambda r: r["last_name"],
        "BirthDate": lambda r: r["birth_date"],
        "Sex": lambda r: SEX[r["sex"]],
    },
    "hs_enrollment.csv": {
        "ProgramID": lambda r: r["program_code"],
        "LocalChildID": lambda r: r["child_local_id"],
        "ProgramType": lambda r: {"head_start": "HS"}[r["program_type"]],
        "SiteID": lambda r: r["site_code"],
        "ProgramOption": lambda r: {"center_based": "CB"}[r["program_option"]],
        "EntryDate": lambda r: r["entry_date"],
        "ExitDate": lambda r: r["exit_date"],
        "ExitReason": lambda r: {None: None, "transition_to_kindergarten": "KG"}[r["exit_reason"]],
        "EligibilityCategory": lambda r: {"income": "INC"}[r["eligibility_category"]],
        "Race": lambda r: RACE[r["race"]],
        "Ethnicity": lambda r: {"not_hispanic": "N"}[r["ethnicity"]],
        "HomeLanguage": lambda r: r["home_language"],
        "DLL": lambda r: r["dual_language_learner"],
        "Disability": lambda r: r["disability"],
        "IEP": lambda r: r["iep"],
        "IFSP": lambda r: r["ifsp"],
        "Homeless": lambda r: r["homeless"],
        "FosterCare": lambda r: r["foster_care"],
        "IncomeBand": lambda r: {"below_100": "B1"}[r["income_band"]],
        "DaysScheduled": lambda r: r["days_scheduled"],
        "DaysPresent": lambda r: r["days_present"],
    },
}


def expected_rows(n: int, file_name: str) -> list[dict]:
    """The rows ``make_batch(n)`` must leave in the staging table, from its source frame."""
    source = permitted_frame(n).astype(object).where(permitted_frame(n).notna(), None)
    columns = EXPECTED_COLUMNS[file_name]
    return [{c: get(row) for c, get in columns.items()} for row in source.to_dict("records")]


def as_python(value):  # type: ignore[no-untyped-def]
    """SQLite returns booleans as 0/1 and dates as text through raw SQL: normalize."""
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        return dt.date.fromisoformat(value)
    return value


def test_when_delivered_then_tables_made_and_rows_read_back_field_by_field(
    staging: StagingDbDestination, reader: Engine
) -> None:
    batch = make_batch(4)
    result = staging.deliver(batch)
    assert result.accepted == set(batch.child_keys) and not result.sent_nothing_new
    for spec in SPECS:
        got = table_rows(reader, spec.name)
        want = expected_rows(4, spec.file_name)
        assert len(got) == len(want) == 4
        assert set(got[0]) == set(want[0]), "exactly the state's columns"
        for got_row, want_row in zip(got, want, strict=True):
            for column in want_row:
                value = as_python(got_row[column])
                expected = want_row[column]
                if isinstance(expected, bool):
                    value = bool(value)
                assert value == expected, (spec.name, column)
    assert table_rows(reader, "hs_child_identity")[0]["BirthDate"] is not None
    (marker,) = markers(reader)
    assert marker["program_code"] == "VT-HS-01" and marker["batch_digest"] == batch.digest
    assert marker["run_id"] == batch.run_id
    assert staging.holds(batch)


def test_upserts_are_idempotent_and_holds_follows_the_latest_batch(
    staging: StagingDbDestination, reader: Engine
) -> None:
    first = make_batch(3)
    staging.deliver(first)
    again = staging.deliver(make_batch(3, run_id="run-2"))
    assert again.sent_nothing_new
    assert len(markers(reader)) == 1

    changed = make_batch(3, run_id="run-3", seed=5)
    assert not staging.deliver(changed).sent_nothing_new
    identity = table_rows(reader, "hs_child_identity")
    assert len(identity) == 3
    assert [r["LegalLastName"] for r in identity] == ["Family5", "Family6", "Family7"]
    assert [r["DaysScheduled"] for r in table_rows(reader, "hs_enrollment")] == [125] * 3
    assert staging.holds(changed) and not staging.holds(first)

    staging.deliver(first)  # back to the first values: updated in place again
    assert [r["LegalLastName"] for r in table_rows(reader, "hs_child_identity")] == [
        "Family0",
        "Family1",
        "Family2",
    ]
    assert staging.holds(first) and not staging.holds(changed)
    assert len(markers(reader)) == 3


def test_programs_are_kept_apart(staging: StagingDbDestination, reader: Engine) -> None:
    vt = make_batch(2, program="VT-HS-01")
    ehs = make_batch(3, program="VT-EHS-02")
    staging.deliver(vt)
    staging.deliver(ehs)
    assert len(table_rows(reader, "hs_child_identity")) == 5
    assert staging.holds(vt) and staging.holds(ehs)


RUN_2 = {"program_code": "VT-HS-01", "run_id": "run-2", "run_date": "2026-11-28"}


def test_delete_rows_removes_exactly_the_rows_named_by_key(
    staging: StagingDbDestination, reader: Engine
) -> None:
    batch = make_batch(3)
    staging.deliver(batch)
    gone = staging.delete_rows(
        {
            "hs_child_identity.csv": [["VT-HS-01", "C0002"]],
            "hs_enrollment.csv": [["VT-HS-01", "C0002"], ["VT-HS-01", "C9999"]],
        },
        **RUN_2,
    )
    assert gone == {"hs_child_identity.csv": 1, "hs_enrollment.csv": 1}, "C9999 was not there"
    assert [r["LocalChildID"] for r in table_rows(reader, "hs_child_identity")] == [
        "C0001",
        "C0003",
    ]
    assert [r["LocalChildID"] for r in table_rows(reader, "hs_enrollment")] == ["C0001", "C0003"]
    assert staging.delete_rows({"hs_child_identity.csv": []}, **RUN_2) == {}
    with pytest.raises(TerminalDeliveryError, match="no file spec"):
        staging.delete_rows({"other.csv": [["x"]]}, **RUN_2)


def test_a_deletion_leaves_a_marker_so_the_last_batch_sent_again_is_written_again(
    staging: StagingDbDestination, reader: Engine
) -> None:
    """A child withdrawn (rows deleted) then re-consented: the batch last sent is no longer
    what the tables hold, so it is written, not skipped as unchanged."""
    batch = make_batch(2)
    staging.deliver(batch)
    staging.delete_rows(
        {
            "hs_child_identity.csv": [["VT-HS-01", "C0001"], ["VT-HS-01", "C0002"]],
            "hs_enrollment.csv": [["VT-HS-01", "C0001"], ["VT-HS-01", "C0002"]],
        },
        **RUN_2,
    )
    assert table_rows(reader, "hs_child_identity") == []
    deletion = markers(reader)[-1]
    assert (deletion["batch_digest"], deletion["run_id"]) == ("deleted", "run-2")
    assert deletion["program_code"] == "VT-HS-01" and deletion["run_date"] == "2026-11-28"
    assert not staging.holds(make_batch(2, run_id="run-3")), "a later run: the rows are gone"

    again = staging.deliver(make_batch(2, run_id="run-3"))
    assert not again.sent_nothing_new and again.rows == {
        "hs_child_identity.csv": 2,
        "hs_enrollment.csv": 2,
    }
    assert [r["LocalChildID"] for r in table_rows(reader, "hs_child_identity")] == [
        "C0001",
        "C0002",
    ]
    assert staging.holds(make_batch(2, run_id="run-3"))
    count = len(markers(reader))
    assert staging.deliver(make_batch(2, run_id="run-4")).sent_nothing_new, "unchanged again"
    assert len(markers(reader)) == count


def test_a_deletion_of_rows_not_there_leaves_no_marker(
    staging: StagingDbDestination, reader: Engine
) -> None:
    batch = make_batch(2)
    staging.deliver(batch)
    gone = staging.delete_rows({"hs_child_identity.csv": [["VT-HS-01", "C9999"]]}, **RUN_2)
    assert gone == {}  # both drivers here count (one that cannot, -1, leaves a marker)
    assert len(markers(reader)) == 1
    assert staging.deliver(make_batch(2, run_id="run-3")).sent_nothing_new


def test_holds_sets_aside_only_the_deletions_of_the_batch_own_run(
    staging: StagingDbDestination,
) -> None:
    """A run delivers, then deletes what it withdraws (rows its batch has not): its batch is
    still held whole. Another program's or another run's deletion is not set aside."""
    other = make_batch(2, program="VT-EHS-02", run_id="run-2")
    staging.deliver(other)
    batch = make_batch(2, run_id="run-2")
    staging.deliver(batch)
    withdrawn = {"hs_child_identity.csv": [["VT-EHS-02", "C0001"]]}
    staging.delete_rows(withdrawn, program_code="VT-EHS-02", run_id="run-2", run_date="2026-11-28")
    assert staging.holds(batch), "another program's deletion"
    assert staging.holds(other), "its own run's deletion"
    staging.delete_rows(
        {"hs_child_identity.csv": [["VT-HS-01", "C0002"]]},
        program_code="VT-HS-01",
        run_id="run-2",
        run_date="2026-11-28",
    )
    assert staging.holds(batch), "the batch's own run deleted after delivering"
    staging.delete_rows(
        {"hs_enrollment.csv": [["VT-HS-01", "C0002"]]},
        program_code="VT-HS-01",
        run_id="run-3",
        run_date="2026-11-29",
    )
    assert not staging.holds(batch), "a later run deleted rows: no longer as delivered"


def test_holds_is_false_before_anything_was_delivered(staging: StagingDbDestination) -> None:
    assert not staging.holds(make_batch(1))


def test_when_a_later_artifact_is_refused_then_nothing_of_the_batch_is_written(
    staging: StagingDbDestination, reader: Engine
) -> None:
    state_table = staging_table(SPECS[1], MetaData())  # the state refuses attendance over 50
    state_table.append_constraint(CheckConstraint('"DaysPresent" < 50', name="ck_days"))
    state_table.create(reader)
    with pytest.raises(TerminalDeliveryError, match="refused the batch") as caught:
        staging.deliver(make_batch(3))
    assert "Kid" not in str(caught.value) and "Family" not in str(caught.value)
    assert caught.value.__cause__ is None
    tables = ("hs_child_identity", "hs_enrollment", MARKER_TABLE)
    assert [row_count(reader, table) for table in tables] == [0, 0, 0]


def row_count(engine: Engine, table: str) -> int:
    """Rows in ``table``; 0 when it does not exist (PostgreSQL rolls the DDL back too)."""
    if not inspect(engine).has_table(table):
        return 0
    with engine.connect() as connection:
        return connection.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()


def test_when_two_rows_share_a_key_then_terminal_before_writing(
    staging: StagingDbDestination, reader: Engine
) -> None:
    batch = make_batch(2)
    identity = batch.artifacts[0]
    doubled = type(identity)(
        identity.name, identity.frame.iloc[[0, 0]].reset_index(drop=True), identity.key_columns
    )
    with pytest.raises(TerminalDeliveryError, match="same key"):
        staging.deliver(Batch("r", batch.run_date, batch.program_code, (doubled,)))


def test_when_artifact_has_no_spec_then_terminal(staging: StagingDbDestination) -> None:
    batch = make_batch(1)
    odd = type(batch.artifacts[0])("other.csv", batch.artifacts[0].frame)
    with pytest.raises(TerminalDeliveryError, match=r"no file spec for artifact\(s\) other.csv"):
        staging.deliver(Batch("r", batch.run_date, batch.program_code, (odd,)))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.postgres
def test_when_database_refuses_connections_then_transient_without_secrets() -> None:
    url = f"postgresql+psycopg://state:hunter2-secret@127.0.0.1:{closed_port()}/staging"
    destination = make_destination(url, retries=1)
    with pytest.raises(TransientDeliveryError, match="unreachable or busy") as caught:
        destination.deliver(make_batch(2))
    assert "hunter2" not in str(caught.value)
    with pytest.raises(TransientDeliveryError):
        destination.holds(make_batch(2))
    destination.close()


def test_url_is_read_from_the_named_environment_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = StagingDbSettings(url_env="TEST_STAGING_URL")
    with pytest.raises(TerminalDeliveryError, match="TEST_STAGING_URL is not set"):
        resolve_url(settings)
    monkeypatch.setenv("TEST_STAGING_URL", f"sqlite:///{tmp_path / 's.db'}")
    destination = StagingDbDestination("s", settings, SPECS, retries=0)
    batch = make_batch(1)
    destination.deliver(batch)
    assert destination.holds(batch)
    destination.close()
