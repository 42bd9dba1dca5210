"""A staging database's own guards, on SQLite and the real PostgreSQL.

1. One database named two ways (an environment variable in one file, an Airflow connection in
   another, or two variables) is recognised by its resolved host, port and database at load
   (rule ``staging_db_one_agreement``); a name that does not resolve falls back to the name.
2. The database records the agreements and formats it was first written under; a later
   writer under any name with others is refused before anything is written (rule
   ``staging_db_agreement_changed``) until the operator records the change (``rebaseline``).
3. Two writers of two names at once: the second waits for the first's transaction (one
   write lock per database) and then skips the batch the first wrote, or, waiting too long,
   is told the database is busy (rule ``staging_db_one_writer``) having written nothing.
"""

from __future__ import annotations

import json
import os
import string
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pipelines.destinations.base import TerminalDeliveryError, TransientDeliveryError
from pipelines.destinations.registry import DestinationConfigError, load_destination
from pipelines.destinations.staging_db import (
    MARKER_TABLE,
    StagingDbDestination,
    StagingDbSettings,
    database_identity,
)
from schemas.filespec import load_spec
from tests.conftest import reset_schema
from tests.pipelines.batches import make_batch
from tests.pipelines.writers_at_once import advisory_waiters, in_thread

SPECS = [load_spec("hs_child_identity"), load_spec("hs_enrollment")]
FORMATS = ("hs_child_identity", "hs_enrollment")
AGREEMENT = "vt-aoe-ecids"
SECRET = "s3cr3t-pw"
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def staging_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'staging.db'}"
        return
    url: str = request.getfixturevalue("staging_pg_url")
    yield reset_schema(url)
    reset_schema(url)


def where(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite file {parsed.database}"
    return f"host {parsed.host}:{parsed.port or 5432}, database {parsed.database}"


# -- 1. one database, two names ------------------------------------------------------------


def write(folder: Path, name: str, block: dict[str, str], agreement: str) -> None:
    data = {
        "type": "staging_db",
        "recipient": "VT-AOE",
        "agreements": [agreement],
        "formats": list(FORMATS),
        "staging_db": block,
    }
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def pg(user: str, db: str = "test", scheme: str = "postgresql+psycopg", port: int = 5432) -> str:
    return f"{scheme}://{user}:{SECRET}@127.0.0.1:{port}/{db}"


def conn_json(db: str) -> str:
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": "127.0.0.1",
            "port": 5432,
            "schema": db,
            "login": "carol",
            "password": SECRET,
        }
    )


# id, p's block, q's block, environment (None: unset), refused, where (p's view)
NAMES: list[tuple[str, dict[str, str], dict[str, str], dict[str, str | None], bool, str]] = [
    (
        "pg-env-and-connection-uri",
        {"url_env": "TEST_P_URL"},
        {"connection_id": "state_stage"},
        {"TEST_P_URL": pg("alice"), "AIRFLOW_CONN_STATE_STAGE": pg("bob", scheme="postgres")},
        True,
        "host 127.0.0.1:5432, database test",
    ),
    (
        "pg-env-and-connection-json",
        {"url_env": "TEST_P_URL"},
        {"connection_id": "state_stage"},
        {"TEST_P_URL": pg("alice"), "AIRFLOW_CONN_STATE_STAGE": conn_json("test")},
        True,
        "host 127.0.0.1:5432, database test",
    ),
    (
        "pg-two-connections",
        {"connection_id": "stage_one"},
        {"connection_id": "stage_two"},
        {"AIRFLOW_CONN_STAGE_ONE": pg("alice"), "AIRFLOW_CONN_STAGE_TWO": conn_json("test")},
        True,
        "host 127.0.0.1:5432, database test",
    ),
    (
        "pg-env-and-connection-other-database",
        {"url_env": "TEST_P_URL"},
        {"connection_id": "state_stage"},
        {"TEST_P_URL": pg("alice"), "AIRFLOW_CONN_STATE_STAGE": conn_json("other")},
        False,
        "",
    ),
    (
        "pg-env-and-connection-other-port",
        {"url_env": "TEST_P_URL"},
        {"connection_id": "state_stage"},
        {"TEST_P_URL": pg("alice"), "AIRFLOW_CONN_STATE_STAGE": pg("bob", port=5433)},
        False,
        "",
    ),
    (
        "connection-unresolved-falls-back-to-names",
        {"url_env": "TEST_P_URL"},
        {"connection_id": "state_stage"},
        {"TEST_P_URL": pg("alice"), "AIRFLOW_CONN_STATE_STAGE": None},
        False,
        "",
    ),
    (
        "same-connection-unresolved-is-one-database",
        {"connection_id": "state_stage"},
        {"connection_id": "state_stage"},
        {"AIRFLOW_CONN_STATE_STAGE": None},
        True,
        "of Airflow connection state_stage",
    ),
    (
        "env-unset-falls-back-to-names",
        {"url_env": "TEST_P_URL"},
        {"url_env": "TEST_Q_URL"},
        {"TEST_P_URL": pg("alice"), "TEST_Q_URL": None},
        False,
        "",
    ),
    (
        "sqlite-env-and-connection-through-a-link",
        {"url_env": "TEST_P_URL"},
        {"connection_id": "state_stage"},
        {"TEST_P_URL": "sqlite:///{tmp}/same.db", "AIRFLOW_CONN_STATE_STAGE": "{link}"},
        True,
        "SQLite file {tmp}/same.db",
    ),
]


@pytest.mark.parametrize(
    ("p", "q", "env", "refused", "shown"), [pytest.param(*c[1:], id=c[0]) for c in NAMES]
)
def test_one_database_under_two_names_is_recognised_by_its_resolved_url(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    p: dict[str, str],
    q: dict[str, str],
    env: dict[str, str | None],
    refused: bool,
    shown: str,
) -> None:
    (tmp_path / "agreements").mkdir()
    folder = tmp_path / "destinations"
    folder.mkdir()
    (tmp_path / "same.db").touch()
    (tmp_path / "link").symlink_to(tmp_path)
    link = json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "link" / "same.db")})
    for key, value in env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value.replace("{tmp}", str(tmp_path)).replace("{link}", link))
    write(folder, "p", p, AGREEMENT)
    write(folder, "q", q, "mo-dese-consent")
    if not refused:
        assert load_destination("p", folder).name == "p"
        assert load_destination("q", folder).name == "q"
        return
    with pytest.raises(DestinationConfigError) as caught:
        load_destination("p", folder)
    message = str(caught.value)
    assert "rule staging_db_one_agreement" in message
    assert str(folder / "q.yaml") in message, "names the other file"
    assert shown.replace("{tmp}", str(tmp_path)) in message, "names the database"
    for secret in (SECRET, "alice", "bob", "carol"):
        assert secret not in message, "never a user or password"
    with pytest.raises(DestinationConfigError, match="staging_db_one_agreement"):
        load_destination("q", folder)


# -- 2. the database remembers its agreement -------------------------------------------------


def staging(
    url: str,
    name: str,
    agreements: tuple[str, ...] = (AGREEMENT,),
    formats: tuple[str, ...] = FORMATS,
    timeout: float = 5,
) -> StagingDbDestination:
    return StagingDbDestination(
        name,
        StagingDbSettings(url_env="UNUSED_IN_TESTS"),
        SPECS,
        timeout=timeout,
        retries=0,
        retry_backoff=0,
        url=lambda: SecretStr(url),
        agreements=agreements,
        formats=formats,
    )


def unguarded(url: str, name: str, timeout: float = 5) -> StagingDbDestination:
    """A client with no agreement to check (the write lock is every write's)."""
    return StagingDbDestination(
        name,
        StagingDbSettings(url_env="UNUSED_IN_TESTS"),
        SPECS,
        timeout=timeout,
        retries=0,
        retry_backoff=0,
        url=lambda: SecretStr(url),
    )


def marker_count(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text(f"SELECT count(*) FROM {MARKER_TABLE}")).scalar())
    finally:
        engine.dispose()


# id, later name, later agreements, later formats, refused, what the message says differs
LATER = [
    ("same-name-other-agreement", "state", ("mo-dese-consent",), FORMATS, "agreements"),
    ("renamed-other-agreement", "state-new", ("mo-dese-consent",), FORMATS, "agreements"),
    ("renamed-one-more-agreement", "state-new", (AGREEMENT, "mo-dese-consent"), FORMATS, "agr"),
    ("renamed-fewer-formats", "state-new", (AGREEMENT,), FORMATS[:1], "formats"),
    ("renamed-same-agreement", "state-new", (AGREEMENT,), FORMATS, None),
    ("formats-in-another-order", "state", (AGREEMENT,), FORMATS[::-1], None),
]


@pytest.mark.parametrize(
    ("name", "agreements", "formats", "differs"), [pytest.param(*c[1:], id=c[0]) for c in LATER]
)
def test_a_later_writer_under_another_agreement_is_refused_before_writing(
    staging_url: str,
    name: str,
    agreements: tuple[str, ...],
    formats: tuple[str, ...],
    differs: str | None,
) -> None:
    first = staging(staging_url, "state")
    written = make_batch(2, run_id="run-1")
    first.deliver(written)
    identity = written.artifacts[0]
    spec = next(s for s in SPECS if s.file_name == identity.name)
    keys = [tuple(str(v) for v in row) for row in identity.frame[list(spec.key)].to_numpy()]
    first.close()
    later = staging(staging_url, name, agreements, formats)
    batch = make_batch(3, run_id="run-2", seed=1)
    try:
        if differs is None:
            later.check_agreement()
            assert not later.deliver(batch).sent_nothing_new
            assert marker_count(staging_url) == 2
            return
        for attempt in (
            later.check_agreement,
            lambda: later.deliver(batch),
            lambda: later.delete_rows(
                {identity.name: keys},
                program_code="VT-HS-01",
                run_id="run-2",
                run_date="2026-11-28",
            ),
        ):
            with pytest.raises(TerminalDeliveryError) as caught:
                attempt()
            message = str(caught.value)
            assert "rule staging_db_agreement_changed" in message
            assert f"destination {name}:" in message and "destination state" in message
            assert where(staging_url) in message, "names the database by host and name"
            assert differs in message
            assert f"datashare destinations rebaseline {name}" in message, "says what to do"
            assert "postgres@" not in message and SECRET not in message
        assert marker_count(staging_url) == 1, "nothing was written"

        assert later.rebaseline() is not None  # the operator's step: the change recorded
        assert not later.deliver(batch).sent_nothing_new
        assert marker_count(staging_url) == 2
        old = staging(staging_url, "state")
        with pytest.raises(TerminalDeliveryError, match="staging_db_agreement_changed"):
            old.deliver(make_batch(2, run_id="run-3", seed=2))
        old.close()
    finally:
        later.close()


def test_a_database_without_a_record_takes_the_first_writers(staging_url: str) -> None:
    """Written before the record existed (or by an unchecked client): the first checked
    write records its agreement; another one is then refused."""
    StagingDbDestination(
        "old", StagingDbSettings(url_env="UNUSED"), SPECS, url=lambda: SecretStr(staging_url)
    ).deliver(make_batch(2))
    staging(staging_url, "state").deliver(make_batch(2, run_id="run-2", seed=1))
    with pytest.raises(TerminalDeliveryError, match="staging_db_agreement_changed"):
        staging(staging_url, "other", ("mo-dese-consent",)).check_agreement()


# -- 3. two writers at once -------------------------------------------------------------------


class Paused:
    """Pause ``destination`` inside its write transaction, right after it read the
    program's latest marker, until :meth:`release`."""

    def __init__(self, destination: StagingDbDestination) -> None:
        self.inside = threading.Event()
        self.go = threading.Event()
        real = destination._latest_digest

        def paused(*args: Any, **kwargs: Any) -> Any:
            found = real(*args, **kwargs)
            self.inside.set()
            assert self.go.wait(60), "never released"
            return found

        destination._latest_digest = paused  # type: ignore[method-assign]

    def release(self) -> None:
        self.go.set()


def test_a_second_name_busy_past_its_timeout_writes_nothing_and_says_why(
    staging_url: str,
) -> None:
    """While name a's batch transaction is open, name b's equal batch waits for the write
    lock; past its timeout it is told the database is busy (rule), having written nothing;
    once a committed, b skips the batch a wrote (one marker, not two)."""
    a, b = unguarded(staging_url, "a"), unguarded(staging_url, "b", timeout=1)
    batch = make_batch(3)
    pause = Paused(a)
    first, out_a = in_thread(lambda: a.deliver(batch))
    try:
        assert pause.inside.wait(60)
        with pytest.raises(TransientDeliveryError) as caught:
            b.deliver(batch)
        message = str(caught.value)
        assert "rule staging_db_one_writer" in message and "busy" in message
        assert where(staging_url) in message
    finally:
        pause.release()
        first.join(60)
    assert "error" not in out_a, out_a
    assert b.deliver(batch).sent_nothing_new, "the batch a wrote is not written again"
    assert marker_count(staging_url) == 1
    a.close()
    b.close()


@pytest.mark.postgres
def test_two_names_writing_at_once_on_postgresql_take_turns(staging_pg_url: str) -> None:
    """Two real writers, two connections: b waits on the database's advisory lock while a's
    transaction is open (seen in pg_stat_activity), then reads a's marker and skips."""
    url = reset_schema(staging_pg_url)
    a, b = unguarded(url, "a"), unguarded(url, "b", timeout=60)
    batch = make_batch(3)
    pause = Paused(a)
    first, out_a = in_thread(lambda: a.deliver(batch))
    try:
        assert pause.inside.wait(60)
        second, out_b = in_thread(lambda: b.deliver(batch))
        for _ in range(600):  # b waits on the lock (new) or finishes without waiting (old)
            if advisory_waiters(url) or not second.is_alive():
                break
            second.join(0.1)
        assert second.is_alive(), "b did not wait for a's transaction"
    finally:
        pause.release()
        first.join(60)
    second.join(60)
    assert "error" not in out_a and "error" not in out_b, (out_a, out_b)
    assert not out_a["result"].sent_nothing_new
    assert out_b["result"].sent_nothing_new, "b found a's marker once a committed"
    assert marker_count(url) == 1
    a.close()
    b.close()
    reset_schema(url)


# -- the identity, as a property ---------------------------------------------------------------

_secret = st.text(alphabet=string.ascii_letters, min_size=8, max_size=12).map(lambda s: "Z" + s)


@settings(max_examples=60, deadline=None)
@given(
    p=st.tuples(st.sampled_from(["db1.state.example", "10.0.0.7"]), st.sampled_from([5432, 6432])),
    q=st.tuples(st.sampled_from(["db1.state.example", "10.0.0.7"]), st.sampled_from([5432, 6432])),
    p_db=st.sampled_from(["staging", "stage2"]),
    q_db=st.sampled_from(["staging", "stage2"]),
    users=st.tuples(_secret, _secret),
    passwords=st.tuples(_secret, _secret),
    json_form=st.booleans(),
)
def test_the_identity_of_a_variable_and_a_connection_is_their_host_port_and_database(
    p: tuple[str, int],
    q: tuple[str, int],
    p_db: str,
    q_db: str,
    users: tuple[str, str],
    passwords: tuple[str, str],
    json_form: bool,
) -> None:
    """Oracle: the same database exactly when host, port and database name are the same;
    whoever logs in, and however the connection is written. Never a user or password shown."""
    p_url = f"postgresql+psycopg://{users[0]}:{passwords[0]}@{p[0]}:{p[1]}/{p_db}"
    if json_form:
        q_url = json.dumps(
            {
                "conn_type": "postgres",
                "host": q[0],
                "port": q[1],
                "schema": q_db,
                "login": users[1],
                "password": passwords[1],
            }
        )
    else:
        q_url = f"postgres://{users[1]}:{passwords[1]}@{q[0]}:{q[1]}/{q_db}"
    same = (p, p_db) == (q, q_db)
    env = {"TEST_PROP_P_URL": p_url, "AIRFLOW_CONN_PROP_STAGE": q_url}
    with mock.patch.dict(os.environ, env):
        mine, mine_shown = database_identity(StagingDbSettings(url_env="TEST_PROP_P_URL"))
        theirs, their_shown = database_identity(StagingDbSettings(connection_id="prop_stage"))
    assert bool(mine & theirs) == same
    assert mine_shown == f"host {p[0]}:{p[1]}, database {p_db}"
    assert their_shown == f"host {q[0]}:{q[1]}, database {q_db}"
