"""An AIAN program narrows its opt-in from child records to aggregate outputs only, under a
record agreement with ``delete_out_of_scope``: the records the destination holds of it are
withdrawn that night, and its aggregate tables keep going.

The rules (docs/domain.md 1302.53(b)(4); the module doc of
``pipelines/submission/withdrawals.py``): an AIAN program shares only what its own opt-in
allows; once it allows aggregate outputs only, no child record of it may leave, and the
child records a destination holds from earlier nights left the scope of the tribe's decision,
so an agreement that asks for the deletion of what no longer qualifies has them withdrawn
(deleted at the destination, one ``delete`` disclosure-log entry per child, reason
``program_out_of_scope``). Aggregates are still allowed: where the destination takes aggregate
tables they go the same night. Nothing else of the program leaves.

For every destination type that holds child records (a local folder and a real SFTP server on
loopback, each with its withdrawals file; a staging database on SQLite and on PostgreSQL;
Ed-Fi through the local contract server): night 1 sends the program's records, night 2 the
program narrows, night 3 changes nothing, night 4 it widens back to records and is sent
afresh. Then a dry run, the fail-closed gate, the opt-in's date boundaries (effective day
inclusive) and a property over random narrow/widen nights. Expectations come from the rules,
not from the code under test.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, delete, text, update
from sqlalchemy.orm import Session

import pipelines.submission.deliver as deliver_module
from pipelines.commands.policy import explanation
from pipelines.demo import DEMO_DATE
from pipelines.destinations.base import Artifact, Batch
from pipelines.destinations.registry import load_destination
from pipelines.submission.context import SubmissionError
from pipelines.submission.deliver import deliver_shard
from pipelines.submission.plan import plan_run
from pipelines.submission.prepare import prepare_shard
from pipelines.submission.state import Changes
from pipelines.submission.withdrawals import only_withdrawals
from privacy.agreements import load_agreement
from privacy.participation import record_change
from schemas import ParticipationEvent, Run
from schemas.codes import OptInScope, ParticipationAction
from tests.conftest import reset_schema
from tests.edfi.contract_server import EdfiContractServer
from tests.pipelines.submission.conftest import PROJECT, World, make_world
from tests.pipelines.submission.test_aian_scope_narrows import opt_in, record_agreement
from tests.sftp_server import PASSWORD, USERNAME, SftpTestServer

PROGRAM, OTHER = "NM-AIAN-07", "NM-HS-05"
AGREEMENT = "nm-ececd-records"
RECORDS = ["hs_child_identity", "hs_enrollment"]
AGGREGATE = "hs_program_aggregate"
WITHDRAWALS = "hs_withdrawals"
DAY = dt.timedelta(days=1)
Key = tuple[str, str]


def night(number: int) -> dt.date:
    return DEMO_DATE + (number - 1) * DAY


def new_world(tmp_path: Path) -> World:
    world = make_world(f"sqlite:///{tmp_path / 'program.db'}", tmp_path, children=120)
    record_agreement(world, delete_out_of_scope=True)
    opt_in(world, OptInScope.RECORD, DEMO_DATE - 30 * DAY)
    return world


def entries(world: World, run_id: str, program: str = PROGRAM) -> pd.DataFrame:
    log = world.disclosures()
    return log.loc[(log["run_id"] == run_id) & (log["program_code"] == program)]


def keys(frame: pd.DataFrame) -> set[Key]:
    return set(zip(frame["program_code"], frame["child_local_id"], strict=True))


# --- what each destination type holds of the program -------------------------------------------


class Kind:
    """One destination type: configures destination ``nm`` and reads what it holds."""

    files = False
    tables = True
    """Whether its formats carry the aggregate table (Ed-Fi takes records only)."""

    def records(self, program: str = PROGRAM) -> set[Key]:
        """The children whose records the destination holds."""
        raise NotImplementedError

    def table_rows(self) -> int:
        """The program's aggregate rows the destination holds."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop what it started."""


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


class Local(Kind):
    files = True

    def __init__(self, world: World, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.root = tmp_path / "drop"
        world.destination("nm", type="local", **self.config(), local={"root": str(self.root)})

    @staticmethod
    def config() -> dict[str, object]:
        formats = [*RECORDS, AGGREGATE, WITHDRAWALS]
        return {"recipient": "NM-ECECD", "agreements": [AGREEMENT], "formats": formats}

    def latest(self, program: str = PROGRAM) -> Path | None:
        """The program's latest folder: a file drop's folder is its whole snapshot."""
        folders = sorted(p.parent for p in self.root.glob(f"*/{program}/manifest.json"))
        return folders[-1] if folders else None

    def records(self, program: str = PROGRAM) -> set[Key]:
        folder = self.latest(program)
        if folder is None or not (folder / "hs_child_identity.csv").is_file():
            return set()
        identity = read(folder / "hs_child_identity.csv")
        return set(zip(identity["ProgramID"], identity["LocalChildID"], strict=True))

    def table_rows(self) -> int:
        folder = self.latest()
        path = folder / "hs_program_aggregate.csv" if folder else None
        return len(read(path)) if path is not None and path.is_file() else 0

    def named(self, on: dt.date) -> set[Key]:
        """The children the withdrawals file of the program's folder of ``on`` lists."""
        path = self.root / str(on) / PROGRAM / "hs_withdrawals.csv"
        if not path.is_file():
            return set()
        table = read(path)
        return set(zip(table["ProgramID"], table["LocalChildID"], strict=True))


class Sftp(Local):
    def __init__(self, world: World, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        server_root = tmp_path / "sftp-root"
        (server_root / "incoming").mkdir(parents=True)
        self.server = SftpTestServer(server_root).start()
        self.root = server_root / "incoming"
        known = tmp_path / "known_hosts"
        known.write_text(self.server.known_hosts_line())
        request.getfixturevalue("monkeypatch").setenv("TEST_SFTP_PASSWORD", PASSWORD)
        world.destination(
            "nm",
            type="sftp",
            **self.config(),
            retries=0,
            timeout_seconds=10,
            sftp={
                "host": "127.0.0.1",
                "port": self.server.port,
                "username": USERNAME,
                "password_env": "TEST_SFTP_PASSWORD",
                "known_hosts": str(known),
                "remote_root": "/incoming",
            },
        )

    def close(self) -> None:
        self.server.stop()


class StagingSqlite(Kind):
    def __init__(self, world: World, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.url = self.make_url(tmp_path, request)
        request.getfixturevalue("monkeypatch").setenv("TEST_STAGING_URL", self.url)
        world.destination(
            "nm",
            type="staging_db",
            recipient="NM-ECECD",
            agreements=[AGREEMENT],
            formats=[*RECORDS, AGGREGATE],
            retries=0,
            timeout_seconds=10,
            staging_db={"url_env": "TEST_STAGING_URL"},
        )

    def make_url(self, tmp_path: Path, request: pytest.FixtureRequest) -> str:
        return f"sqlite:///{tmp_path / 'staging.db'}"

    def _count(self, table: str, program: str) -> list[tuple[str, str]]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as connection:
                if not engine.dialect.has_table(connection, table):
                    return []
                column = '"LocalChildID"' if table != "hs_program_aggregate" else '"Dimension"'
                rows = connection.execute(
                    text(f'SELECT "ProgramID", {column} FROM {table} WHERE "ProgramID" = :p'),
                    {"p": program},
                ).all()
        finally:
            engine.dispose()
        return [(str(p), str(c)) for p, c in rows]

    def records(self, program: str = PROGRAM) -> set[Key]:
        identity = set(self._count("hs_child_identity", program))
        enrolled = set(self._count("hs_enrollment", program))
        assert enrolled <= identity, "no enrollment row without its child's identity row"
        return identity

    def table_rows(self) -> int:
        return len(self._count("hs_program_aggregate", PROGRAM))


class StagingPostgres(StagingSqlite):
    def make_url(self, tmp_path: Path, request: pytest.FixtureRequest) -> str:
        url = str(request.getfixturevalue("staging_pg_url"))
        reset_schema(url)
        return url

    def close(self) -> None:
        reset_schema(self.url)


class Edfi(Kind):
    tables = False

    def __init__(self, world: World, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.world = world
        self.server = EdfiContractServer(5).__enter__()
        monkeypatch = request.getfixturevalue("monkeypatch")
        monkeypatch.setenv("TEST_EDFI_KEY", "datashare")
        monkeypatch.setenv("TEST_EDFI_SECRET", "datashare-secret")
        world.destination(
            "nm",
            type="edfi",
            recipient="NM-ECECD",
            agreements=[AGREEMENT],
            timeout_seconds=10,
            edfi={
                "base_url": self.server.base_url,
                "data_standard": 5,
                "concurrency": 2,
                "max_backoff_seconds": 0.05,
                "credentials": {
                    "client_id_env": "TEST_EDFI_KEY",
                    "client_secret_env": "TEST_EDFI_SECRET",
                },
                "education_organizations": {
                    "default": {"school_id": 255901001, "education_organization_id": 255901}
                },
            },
        )

    def records(self, program: str = PROGRAM) -> set[Key]:
        children = self.world.children()
        by_id: dict[str, Key] = {}
        for code, local_id, state_id in zip(
            children["program_code"],
            children["local_id"],
            children["state_student_id"],
            strict=True,
        ):
            if code == program:
                by_id[f"{code}-{local_id}"] = (code, local_id)
                if isinstance(state_id, str) and state_id:
                    by_id[state_id] = (code, local_id)
        held = (by_id.get(s["studentUniqueId"]) for s in self.server.held("students"))
        return {key for key in held if key is not None}

    def table_rows(self) -> int:
        return 0

    def close(self) -> None:
        self.server.stop()


KINDS = [
    pytest.param(Local, id="local"),
    pytest.param(Sftp, id="sftp"),
    pytest.param(StagingSqlite, id="staging_sqlite"),
    pytest.param(StagingPostgres, id="staging_postgresql", marks=pytest.mark.postgres),
    pytest.param(Edfi, id="edfi"),
]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = new_world(tmp_path)
    yield made
    made.engine.dispose()


@pytest.mark.parametrize("kind", KINDS)
def test_records_are_withdrawn_while_aggregates_go_on_and_records_return_when_widened(
    world: World, tmp_path: Path, request: pytest.FixtureRequest, kind: type[Kind]
) -> None:
    destination = kind(world, tmp_path, request)
    try:
        first = world.run("nm", run_date=night(1))
        assert first["status"] == "success", first["stop_lines"]
        sent = destination.records()
        others = destination.records(OTHER)
        assert sent and others, "record scope: both programs' children went"
        assert keys(entries(world, first["run_id"])) == sent
        tables = destination.table_rows()
        assert (tables > 0) == destination.tables, "aggregate tables go where they are taken"

        opt_in(world, OptInScope.AGGREGATE, night(2))
        second = world.run("nm", run_date=night(2))
        assert second["status"] == "success", second["stop_lines"]
        programs = second["programs"]
        assert programs["withdrawing"] == {PROGRAM: len(sent)}
        assert programs["still_held"] == {} and PROGRAM not in programs["skipped"]
        assert programs["records_withheld"] == {PROGRAM: "aian_aggregate_only"}
        assert second["deliveries"][PROGRAM] == "withdrawn"
        assert second["deliveries"][OTHER] == "unchanged", "the other program is untouched"
        assert destination.records() == set(), "no record of the program is held any more"
        assert destination.records(OTHER) == others
        log = entries(world, second["run_id"])
        assert list(log["action"]) == ["delete"] * len(sent), "one delete per child, no disclose"
        assert keys(log) == sent
        assert all("program_out_of_scope" in purpose for purpose in log["purpose"])
        assert entries(world, second["run_id"], OTHER).empty
        assert destination.table_rows() == tables, "the aggregate tables are still held"
        if isinstance(destination, Local):
            assert destination.named(night(2)) == sent, "each child named for deletion"
            folder = destination.latest()
            assert folder is not None and folder.parent.name == str(night(2))
            names = {p.name for p in folder.glob("*.csv")}
            assert names == {"hs_program_aggregate.csv", "hs_withdrawals.csv"}, (
                "the aggregate table goes the same night, and nothing else"
            )
            assert second["rows_delivered"].get("hs_program_aggregate.csv") == tables

        third = world.run("nm", run_date=night(3))
        assert third["status"] == "success", third["stop_lines"]
        assert third["programs"]["withdrawing"] == {} and third["programs"]["still_held"] == {}
        assert third["deliveries"][PROGRAM] == "unchanged"
        assert entries(world, third["run_id"]).empty
        assert destination.records() == set() and destination.table_rows() == tables

        opt_in(world, OptInScope.RECORD, night(4))
        fourth = world.run("nm", run_date=night(4))
        assert fourth["status"] == "success", fourth["stop_lines"]
        assert fourth["programs"]["records_withheld"] == {}
        assert destination.records() == sent, "widened back to records: sent afresh"
        log = entries(world, fourth["run_id"])
        assert list(log["action"]) == ["disclose"] * len(sent) and keys(log) == sent
        assert destination.table_rows() == tables
    finally:
        destination.close()


def test_a_dry_run_withdraws_nothing_and_says_what_it_would_withdraw(
    world: World, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    destination = Local(world, tmp_path, request)
    world.run("nm", run_date=night(1))
    sent = destination.records()
    logged = len(world.disclosures())
    opt_in(world, OptInScope.AGGREGATE, night(2))

    dry = world.run("nm", run_date=night(2), dry_run=True, output=str(tmp_path / "dry"))
    assert dry["status"] == "success", dry["stop_lines"]
    assert dry["deliveries"][PROGRAM] == "dry_run"
    assert dry["programs"]["withdrawing"] == {PROGRAM: len(sent)}
    assert dry["would_deliver"]["children_withdrawn"] == len(sent)
    assert dry["would_deliver"]["children_sent"] == 0
    assert "withdrawn tonight" in dry["programs"]["skip_notes"][PROGRAM]
    assert len(world.disclosures()) == logged, "a dry run logs nothing"
    assert destination.records() == sent, "and deletes nothing"
    assert not (destination.root / str(night(2))).exists()
    written = {p.name for p in (tmp_path / "dry").glob(f"**/{PROGRAM}/*.csv")}
    assert written == {"hs_program_aggregate.csv"}, "only its aggregate table would go"

    real = world.run("nm", run_date=night(2))
    assert real["deliveries"][PROGRAM] == "withdrawn"
    assert keys(entries(world, real["run_id"])) == sent


def test_without_aggregate_formats_nothing_but_the_withdrawals_goes(
    world: World, tmp_path: Path
) -> None:
    root = tmp_path / "records-only"
    formats = [*RECORDS, WITHDRAWALS]
    world.destination(
        "nm", type="local", recipient="NM-ECECD", agreements=[AGREEMENT], formats=formats,
        local={"root": str(root)},
    )  # fmt: skip
    world.run("nm", run_date=night(1))
    opt_in(world, OptInScope.AGGREGATE, night(2))
    summary = world.run("nm", run_date=night(2))
    assert summary["status"] == "success", summary["stop_lines"]
    assert summary["deliveries"][PROGRAM] == "withdrawn"
    assert {p.name for p in (root / str(night(2)) / PROGRAM).glob("*.csv")} == {
        "hs_withdrawals.csv"
    }


def test_a_crash_after_the_narrowed_withdrawal_is_reconciled_as_sent(
    world: World, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The withdrawals and aggregate table arrived, the process died before logging: the next
    run finds the folder as it was sent (not "did not arrive"), and every child ends up
    withdrawn and logged as deleted exactly once."""
    destination = Local(world, tmp_path, request)
    world.run("nm", run_date=night(1))
    sent = destination.records()
    opt_in(world, OptInScope.AGGREGATE, night(2))
    plan = plan_run("nm", night(2), settings=world.settings)
    prepared = [
        item for shard in plan["shards"] for item in prepare_shard(plan, shard, world.settings)[0]
    ]

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the process died before logging")

    with monkeypatch.context() as patch:
        patch.setattr(deliver_module, "record_group", crash)
        with pytest.raises(RuntimeError):
            deliver_shard(plan, prepared, world.settings)
    assert destination.records() == set() and destination.named(night(2)) == sent
    assert entries(world, plan["run_id"]).empty, "nothing logged yet"

    with world.engine.begin() as connection:  # the crashed run's last sign of life is old
        long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        connection.execute(
            update(Run)
            .where(Run.id == plan["run_id"])
            .values(heartbeat_at=long_ago, started_at=long_ago)
        )
    later = world.run("nm", run_date=night(3))
    assert later["status"] == "success", later["stop_lines"]
    assert later["reconciled"][PROGRAM].startswith("logged"), later["reconciled"]
    assert (destination.root / str(night(2)) / PROGRAM).is_dir(), "the folder was kept"
    log = world.disclosures()
    deletes = log.loc[(log["program_code"] == PROGRAM) & (log["action"] == "delete")]
    assert sorted(keys_list(deletes)) == sorted(sent), "each child withdrawn, logged once"
    assert destination.records() == set() and destination.table_rows() > 0


def test_the_agreement_explains_the_narrowing_in_plain_words(world: World) -> None:
    agreement = load_agreement(world.config / "agreements" / f"{AGREEMENT}.yaml")
    text = "\n".join(explanation(agreement, None, today=DEMO_DATE))
    assert "opt-in narrows to aggregate outputs" in text and "program_out_of_scope" in text
    plain = load_agreement(PROJECT / "config" / "agreements" / "vt-aoe-ecids.yaml")
    assert "narrows" not in "\n".join(explanation(plain, None, today=DEMO_DATE))
    counts = load_agreement(PROJECT / "config" / "agreements" / "nm-ececd-aggregate.yaml")
    assert "narrows" not in "\n".join(explanation(counts, None, today=DEMO_DATE))


# --- the fail-closed gate ----------------------------------------------------------------------


def _artifact(name: str, children: tuple[Key, ...] = ()) -> Artifact:
    frame = pd.DataFrame({"ProgramID": [PROGRAM] * max(len(children), 1)})
    return Artifact(name, frame, ("ProgramID",), children)


GATE = [
    # (artifacts going, children sent, program artifacts changed, aggregates allowed, passes?)
    pytest.param(("hs_program_aggregate.csv",), False, True, True, True, id="tables-pass"),
    pytest.param(("hs_withdrawals.csv",), False, False, True, True, id="withdrawals-pass"),
    pytest.param(("hs_program_aggregate.csv",), False, True, False, False, id="tables-stopped"),
    pytest.param(("hs_child_identity.csv",), False, False, True, False, id="identity-file"),
    pytest.param((), True, False, True, False, id="a-child-sent"),
    pytest.param(("hs_enrollment.csv",), False, True, True, False, id="enrollment-file"),
]


@pytest.mark.parametrize(("names", "send", "program", "tables", "passes"), GATE)
def test_only_withdrawals_and_aggregate_tables_pass_the_gate(
    world: World, names: tuple[str, ...], send: bool, program: bool, tables: bool, passes: bool
) -> None:
    world.destination("nm", type="local", **Local.config(), local={"root": "drop"})
    destination = load_destination("nm", world.config / "destinations")
    child = (PROGRAM, "C1")
    artifacts = tuple(
        _artifact(n, (child,) if n != "hs_program_aggregate.csv" else ()) for n in names
    )
    batch = Batch("run", str(DEMO_DATE), PROGRAM, artifacts)
    changes = Changes(send={child} if send else set(), program=program, snapshot=True)
    if passes:
        only_withdrawals(batch, changes, destination, aggregates=tables)
    else:
        with pytest.raises(SubmissionError, match="no longer shares child records"):
            only_withdrawals(batch, changes, destination, aggregates=tables)


# --- the opt-in's date boundaries --------------------------------------------------------------

RUN = DEMO_DATE + 3 * DAY

BOUNDARIES = [
    # (scope of the new opt-in, its effective date relative to the run date, records held after)
    pytest.param(OptInScope.AGGREGATE, -1, False, id="narrowed-day-before"),
    pytest.param(OptInScope.AGGREGATE, 0, False, id="narrowed-on-run-date-inclusive"),
    pytest.param(OptInScope.AGGREGATE, 1, True, id="narrowed-day-after"),
    pytest.param(OptInScope.RECORD, 0, True, id="record-again-on-run-date"),
]


@pytest.mark.parametrize(("scope", "offset", "held"), BOUNDARIES)
def test_date_boundaries_of_the_narrowing(
    world: World, tmp_path: Path, scope: OptInScope, offset: int, held: bool
) -> None:
    root = tmp_path / "drop"
    world.destination("nm", type="local", **Local.config(), local={"root": str(root)})
    first = world.run("nm", run_date=DEMO_DATE)
    assert first["status"] == "success", first["stop_lines"]
    sent = keys(entries(world, first["run_id"]))
    assert sent
    opt_in(world, scope, RUN + offset * DAY)
    summary = world.run("nm", run_date=RUN)
    assert summary["status"] == "success", summary["stop_lines"]
    log = entries(world, summary["run_id"])
    folder = root / str(RUN) / PROGRAM
    if held:
        assert summary["programs"]["withdrawing"] == {}
        assert PROGRAM not in summary["programs"]["records_withheld"]
        assert log.empty and summary["deliveries"][PROGRAM] == "unchanged"
        assert not folder.exists(), "nothing changed: no new folder"
    else:
        assert summary["programs"]["withdrawing"] == {PROGRAM: len(sent)}
        assert summary["programs"]["records_withheld"] == {PROGRAM: "aian_aggregate_only"}
        assert set(log["action"]) == {"delete"} and keys(log) == sent
        assert {p.name for p in folder.glob("*.csv")} == {
            "hs_program_aggregate.csv",
            "hs_withdrawals.csv",
        }


# --- property: random nights of narrowing and widening ------------------------------------------

DECIDED_BY = "property council"
_names = itertools.count()


@pytest.fixture(scope="module")
def shared_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("aian-scope-property")
    made = new_world(root)
    yield made
    made.engine.dispose()


def scope_on(events: list[tuple[dt.date, str, int]], on: dt.date) -> str:
    """The oracle: the opt-in with the latest effective date on or before ``on`` (same date:
    the later recorded) governs; before any of the test's own, the record-level opt-in
    recorded with the world."""
    applicable = [e for e in events if e[0] <= on]
    if not applicable:
        return "record"
    return max(applicable, key=lambda e: (e[0], e[2]))[1]


nights_plan = st.lists(
    st.tuples(st.sampled_from(("none", "aggregate", "record")), st.sampled_from((-1, 0, 1))),
    min_size=2,
    max_size=4,
)


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=nights_plan)
def test_after_each_night_the_folder_holds_the_records_exactly_while_the_opt_in_allows_them(
    shared_world: World, plan: list[tuple[str, int]]
) -> None:
    world = shared_world
    with Session(world.engine) as session, session.begin():
        session.execute(
            delete(ParticipationEvent).where(ParticipationEvent.decided_by == DECIDED_BY)
        )
    name = f"prop-{next(_names)}"
    root = world.config.parent / "drops" / name
    world.destination(name, type="local", **Local.config(), local={"root": str(root)})
    drop = Local.__new__(Local)
    drop.root = root
    baseline = world.run(name, run_date=DEMO_DATE)
    assert baseline["status"] == "success", baseline["stop_lines"]
    everyone, others, tables = drop.records(), drop.records(OTHER), drop.table_rows()
    assert everyone and others and tables
    events: list[tuple[dt.date, str, int]] = []
    holding = set(everyone)
    for number, (action, offset) in enumerate(plan, start=1):
        on_night = DEMO_DATE + number * DAY
        if action != "none":
            on = on_night + offset * DAY
            with Session(world.engine) as session, session.begin():
                record_change(
                    session,
                    PROGRAM,
                    ParticipationAction.OPT_IN,
                    decided_by=DECIDED_BY,
                    authority="Resolution (property)",
                    recorded_by="clerk",
                    scope=OptInScope(action),
                    effective_date=on,
                )
            events.append((on, action, len(events)))
        summary = world.run(name, run_date=on_night)
        assert summary["status"] == "success", summary["stop_lines"]

        expected = everyone if scope_on(events, on_night) == "record" else set()
        withdrawn, sent = holding - expected, expected - holding
        assert drop.records() == expected, f"night {number}"
        assert drop.records(OTHER) == others, "the other program is untouched"
        assert drop.table_rows() == tables, "the aggregate table stays with the state"
        assert drop.named(on_night) == withdrawn
        log = entries(world, summary["run_id"])
        actions = [(a, k) for a, k in zip(log["action"], keys_list(log), strict=True)]
        assert sorted(actions) == sorted(
            [("delete", k) for k in withdrawn] + [("disclose", k) for k in sent]
        ), "each child once: a delete per child withdrawn, a disclose per child sent afresh"
        holding = expected


def keys_list(frame: pd.DataFrame) -> list[Key]:
    return list(zip(frame["program_code"], frame["child_local_id"], strict=True))
