"""A crash after the destination accepted a batch and before the disclosure log was written,
for an SFTP drop, a PostgreSQL staging database and an Ed-Fi API, end to end.

A real process runs the submission through the functions the DAG's tasks call
(``pipelines.tasks``: plan, prepare, deliver). The moment the first program's batch has been
accepted by the destination and the disclosure log is about to be written, the process says so
on its stdout and waits; the test then kills it with SIGKILL (nothing of it runs after: no
``finally``, no ``finish``). The next run of the same destination, on the same date or a later
one, must reconcile: nothing lost and nothing sent twice at the destination, every child the
destination received logged exactly once (under the run that sent it, with that run's date),
and the ledgers verify.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy import select as sql_select

from pipelines.db import session_scope
from pipelines.demo import DEMO_DATE
from pipelines.destinations.base import TransientDeliveryError
from privacy.anchors import verify_ledgers
from schemas import Delivery
from tests.conftest import scratch_database
from tests.edfi.contract_server import EdfiContractServer
from tests.pipelines.submission.conftest import PROJECT, World
from tests.sftp_server import PASSWORD, USERNAME, SftpTestServer

FORMATS = ["hs_child_identity", "hs_enrollment"]
IDENTITY = "hs_child_identity"
LATER = DEMO_DATE + dt.timedelta(days=1)
LATER_ONLY = [pytest.param(LATER, id="later-date")]
# A file drop's folder is named by the run date: on a later night the crashed run's batch must
# still be looked for, and logged, under its own date (``batches.load_batch``; fixed on branch
# ``fixes``, 7eae147 — until it is merged, the later-date SFTP case fails: the crashed run's
# files are never logged and its program is sent again).
SFTP_DATES = [pytest.param(DEMO_DATE, id="same-date"), pytest.param(LATER, id="later-date")]
WAIT = 120.0  # seconds: only a guard against a hung child; the wait itself is on its output

# The submission as the DAG's tasks run it, in a process of its own. A shard records its
# programs in groups (``record_group``), reached right after the destination accepted the
# group's batches; here a group is one program, so the process announces the first program
# accepted and blocks until it is killed. (Groups of several programs:
# ``test_crash_after_a_group_accepted_logs_every_program_once``.)
CHILD = textwrap.dedent(
    """
    import os
    import sys

    import pipelines.submission.deliver as deliver
    from pipelines import tasks

    record = deliver.record_group
    deliver.RECORD_GROUP_PROGRAMS = int(os.environ.get("TEST_RECORD_GROUP_PROGRAMS", "1"))

    def accepted_then_killed(context, recordings, finish=None):
        sent = [r.program for r in recordings if r.delivery_id is not None]
        if not sent:  # not a delivery (unchanged batches)
            return record(context, recordings, finish)
        print("accepted", ",".join(sent), flush=True)
        sys.stdin.read()  # blocks until the test kills this process
        os._exit(9)

    deliver.record_group = accepted_then_killed
    run = tasks.plan_run(sys.argv[1], sys.argv[2], {})
    print("run", run["run_id"], flush=True)
    for shard in run["shards"]:  # as the DAG's tasks do: prepare, then deliver, per shard
        tasks.deliver_shard(run, tasks.prepare_shard(run, shard))
    print("finished", flush=True)
    """
)


@dataclass(frozen=True)
class Crash:
    """The killed run: its id, and the program whose batch the destination had accepted."""

    run_id: str
    program: str


def crash_after_accept(
    world: World, destination: str, tmp_path: Path, *, script: str = CHILD
) -> Crash:
    """Run ``destination`` on DEMO_DATE in a child process; SIGKILL it once the destination
    accepted the first program's batch, before anything of it is logged."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATASHARE_")}
    env |= {
        "DATASHARE_DATABASE_URL": world.settings.database_url,
        "DATASHARE_CONFIG_DIR": str(world.settings.config_dir),
        "DATASHARE_STATE_DIR": str(world.settings.state_dir),
    }
    stderr = tmp_path / "crashed-run.stderr"
    with stderr.open("wb") as errors:
        child = subprocess.Popen(
            [sys.executable, "-c", script, destination, DEMO_DATE.isoformat()],
            cwd=PROJECT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    assert child.stdout is not None
    said: dict[str, str] = {}
    try:
        while "accepted" not in said:
            ready, _, _ = select.select([child.stdout], [], [], WAIT)
            line = child.stdout.readline() if ready else ""
            if not line:
                break
            word, _, rest = line.strip().partition(" ")
            said[word] = rest
    finally:
        child.kill()  # SIGKILL
        child.wait()
    assert "accepted" in said, f"the run never reached logging: {said} {stderr.read_text()[-3000:]}"
    assert child.returncode == -signal.SIGKILL
    return Crash(said["run"], said["accepted"])


def assert_killed_before_logging(world: World, crash: Crash) -> None:
    """What the kill left: a pending delivery with its staged batch, nothing logged."""
    assert world.disclosures().empty, "nothing was logged"
    with world.engine.connect() as connection:
        rows = connection.execute(
            sql_select(Delivery.run_id, Delivery.program_code, Delivery.status)
        ).all()
    assert [tuple(r) for r in rows] == [(crash.run_id, crash.program, "pending")]
    assert any(k.startswith(f"{crash.run_id}/{crash.program}/") for k in world.staged())


def assert_settled(world: World, crash: Crash, summary: dict, run_date: dt.date) -> pd.DataFrame:  # type: ignore[type-arg]
    """The next run reconciled the crashed one: its batch logged under the run that sent it,
    no delivery left open, nothing left staged, the ledgers verify. Returns the log."""
    assert summary["status"] == "success", summary.get("stop_lines")
    assert summary["reconciled"][crash.program].startswith("logged "), summary["reconciled"]
    assert crash.run_id in summary["reconciled"][crash.program]
    log = world.disclosures()
    disclosed = log.loc[log["action"] == "disclose"]
    assert not disclosed.duplicated(["program_code", "child_local_id", "run_id"]).any()
    crashed = disclosed.loc[disclosed["run_id"] == crash.run_id]
    assert len(crashed) > 0 and set(crashed["program_code"]) == {crash.program}
    assert set(crashed["run_date"]) == {DEMO_DATE}, "logged with the date it was sent"
    tonight = disclosed.loc[disclosed["run_id"] == summary["run_id"]]
    assert set(tonight["run_date"]) <= {run_date}
    with world.engine.connect() as connection:
        statuses = Counter(connection.scalars(sql_select(Delivery.status)))
    # nothing open: every delivery logged, or found unchanged (nothing sent, nothing awaits)
    assert statuses["logged"] >= 1 and set(statuses) <= {"logged", "unchanged"}, statuses
    assert world.staged() == [], "staged batches removed once logged"
    with session_scope(world.engine) as session:
        check = verify_ledgers(session)
    assert all(r.ok for r in check.reports.values()), [r.summary() for r in check.reports.values()]
    assert not check.anchor_problems and not check.delivery_problems
    return disclosed


def holding(world: World) -> set[tuple[str, str]]:
    """The children the disclosure log says the destination holds now: those whose latest
    entry is a disclosure, not a deletion."""
    log = world.disclosures().sort_values("seq")
    latest = log.groupby(["program_code", "child_local_id"])["action"].last()
    return set(latest.index[latest == "disclose"])


# --- SFTP ---------------------------------------------------------------------------------


@contextmanager
def vt_sftp(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, SftpTestServer]]:
    """``vt-sftp`` on a real SFTP server on loopback; yields its incoming folder and the server."""
    root = tmp_path / "sftp-root"
    (root / "incoming").mkdir(parents=True)
    with SftpTestServer(root) as server:
        known = tmp_path / "known_hosts"
        known.write_text(server.known_hosts_line())
        monkeypatch.setenv("TEST_SFTP_PASSWORD", PASSWORD)
        world.destination(
            "vt-sftp",
            type="sftp",
            recipient="VT-AOE",
            agreements=["vt-aoe-ecids"],
            formats=FORMATS,
            retries=0,
            timeout_seconds=10,
            sftp={
                "host": "127.0.0.1",
                "port": server.port,
                "username": USERNAME,
                "password_env": "TEST_SFTP_PASSWORD",
                "known_hosts": str(known),
                "remote_root": "/incoming",
            },
        )
        yield root / "incoming", server


@pytest.fixture
def sftp(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``vt-sftp``: Vermont's programs as files on a real SFTP server on loopback; yields the
    server's root folder."""
    with vt_sftp(world, tmp_path, monkeypatch) as (incoming, _):
        yield incoming


def folders(root: Path) -> dict[tuple[dt.date, str], set[tuple[str, str]]]:
    """Each complete batch folder on the server, ``(run date, program)``, with the children
    its identity file lists."""
    found = {}
    for manifest in root.glob("*/*/manifest.json"):
        folder = manifest.parent
        frame = pd.read_csv(folder / f"{IDENTITY}.csv", dtype=str, keep_default_na=False)
        children = set(zip(frame["ProgramID"], frame["LocalChildID"], strict=True))
        assert len(children) == len(frame), "a child appears once in a file"
        found[(dt.date.fromisoformat(folder.parent.name), folder.name)] = children
    return found


@pytest.mark.parametrize("run_date", SFTP_DATES)
def test_sftp_crash_after_accept_is_logged_once_by_the_next_run(
    world: World, sftp: Path, tmp_path: Path, run_date: dt.date
) -> None:
    crash = crash_after_accept(world, "vt-sftp", tmp_path)
    assert_killed_before_logging(world, crash)
    delivered = folders(sftp)
    assert list(delivered) == [(DEMO_DATE, crash.program)], "the first batch arrived whole"
    first = delivered[(DEMO_DATE, crash.program)]

    summary = world.run("vt-sftp", run_date=run_date)

    disclosed = assert_settled(world, crash, summary, run_date)
    held = folders(sftp)
    assert held[(DEMO_DATE, crash.program)] == first, "the crashed run's files are untouched"
    logged: dict[tuple[dt.date, str], set[tuple[str, str]]] = {}
    for row in disclosed.itertuples():
        logged.setdefault((row.run_date, row.program_code), set()).add(
            (row.program_code, row.child_local_id)
        )
    assert logged == held, "every folder's children logged once, with its date; nothing more"
    others = {(run_date, p) for p in summary["programs"]["processed"] if p != crash.program}
    assert set(held) == {(DEMO_DATE, crash.program)} | others, (
        "the other programs went tonight; the crashed program's unchanged batch not again"
    )
    assert not list(sftp.rglob("*.part"))


# --- staging database ---------------------------------------------------------------------


@pytest.fixture
def staging(world: World, monkeypatch: pytest.MonkeyPatch, worker_id: str) -> Iterator[str]:
    """``vt-staging``: Vermont's programs as rows in a PostgreSQL staging database of its own;
    yields its URL."""
    with scratch_database(f"crash_staging_{worker_id}_{os.getpid()}") as url:
        monkeypatch.setenv("TEST_STAGING_URL", url)
        world.destination(
            "vt-staging",
            type="staging_db",
            recipient="VT-AOE",
            agreements=["vt-aoe-ecids"],
            formats=FORMATS,
            retries=0,
            timeout_seconds=10,
            staging_db={"url_env": "TEST_STAGING_URL"},
        )
        yield url


def staged_rows(url: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The staging database's identity rows and batch markers."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = pd.DataFrame(
                connection.execute(
                    text(f'SELECT "ProgramID", "LocalChildID" FROM {IDENTITY}')
                ).all(),
                columns=["program_code", "child_local_id"],
            )
            markers = pd.DataFrame(
                connection.execute(
                    text("SELECT program_code, run_id, batch_digest FROM datashare_batches")
                ).all(),
                columns=["program_code", "run_id", "batch_digest"],
            )
    finally:
        engine.dispose()
    return rows, markers


@pytest.mark.postgres
@pytest.mark.parametrize("run_date", LATER_ONLY)
def test_staging_db_crash_after_accept_is_logged_once_by_the_next_run(
    world: World, staging: str, tmp_path: Path, run_date: dt.date
) -> None:
    crash = crash_after_accept(world, "vt-staging", tmp_path)
    assert_killed_before_logging(world, crash)
    rows, markers = staged_rows(staging)
    assert set(rows["program_code"]) == {crash.program} and len(rows) > 0
    assert list(zip(markers["program_code"], markers["run_id"], strict=True)) == [
        (crash.program, crash.run_id)
    ], "the first batch was committed whole"
    first = set(zip(rows["program_code"], rows["child_local_id"], strict=True))

    summary = world.run("vt-staging", run_date=run_date)

    disclosed = assert_settled(world, crash, summary, run_date)
    rows, markers = staged_rows(staging)
    assert not rows.duplicated().any()
    held = set(zip(rows["program_code"], rows["child_local_id"], strict=True))
    assert held == holding(world), "the staging database holds exactly the children logged"
    assert not disclosed.duplicated(["program_code", "child_local_id"]).any(), "logged once"
    crashed = disclosed.loc[disclosed["run_id"] == crash.run_id]
    assert set(zip(crashed["program_code"], crashed["child_local_id"], strict=True)) == first
    ours = markers.loc[markers["program_code"] == crash.program]
    assert list(ours["run_id"]) == [crash.run_id], "the crashed program's batch is not resent"
    assert set(markers["program_code"]) == set(summary["programs"]["processed"])


@pytest.mark.postgres
def test_staging_db_renamed_right_after_a_kill_settles_the_old_names_delivery(
    world: World, staging: str, tmp_path: Path
) -> None:
    """The process is killed after the staging database committed the first program's batch;
    the destination file is then renamed. The new name's first run marks the old name's run
    abandoned, logs the crashed batch once under the run that sent it (with its date) and sends
    nothing of it again; no delivery stays open."""
    crash = crash_after_accept(world, "vt-staging", tmp_path)
    assert_killed_before_logging(world, crash)
    first_rows, _ = staged_rows(staging)
    first = set(zip(first_rows["program_code"], first_rows["child_local_id"], strict=True))
    folder = world.config / "destinations"
    (folder / "vt-staging.yaml").rename(folder / "vt-staging-renamed.yaml")

    summary = world.run("vt-staging-renamed", run_date=LATER)

    assert summary["status"] == "success", summary.get("stop_lines")
    assert crash.run_id in summary["reconciled"][crash.program], summary["reconciled"]
    disclosed = world.disclosures().loc[lambda f: f["action"] == "disclose"]
    assert not disclosed.duplicated(["program_code", "child_local_id"]).any(), "logged once"
    crashed = disclosed.loc[disclosed["run_id"] == crash.run_id]
    assert set(zip(crashed["program_code"], crashed["child_local_id"], strict=True)) == first
    assert set(crashed["run_date"]) == {DEMO_DATE}, "logged with the date it was sent"
    rows, markers = staged_rows(staging)
    assert set(zip(rows["program_code"], rows["child_local_id"], strict=True)) == holding(world)
    ours = markers.loc[markers["program_code"] == crash.program]
    assert list(ours["run_id"]) == [crash.run_id], "the crashed program's batch is not resent"
    with world.engine.connect() as connection:
        statuses = Counter(connection.scalars(sql_select(Delivery.status)))
        runs = dict(connection.execute(text("SELECT id, status FROM runs")).all())
    assert set(statuses) <= {"logged", "unchanged"}, statuses
    assert runs[crash.run_id] == "abandoned"
    assert world.staged() == [], "the crashed batch's staged files went once logged"


# --- Ed-Fi --------------------------------------------------------------------------------


@pytest.fixture
def edfi(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[EdfiContractServer]:
    """``mo-edfi``: Missouri's programs, with consent, to the local Ed-Fi contract server."""
    with EdfiContractServer(5) as server:
        world.edfi_destination("mo-edfi", server.base_url, monkeypatch, retries=0)
        yield server


def students(server: EdfiContractServer) -> set[tuple[str, str, str]]:
    """The students the server holds, by name and birth date."""
    return {(s["firstName"], s["lastSurname"], s["birthDate"]) for s in server.held("students")}


def identities(world: World, keys: set[tuple[str, str]]) -> set[tuple[str, str, str]]:
    """The source's name and birth date of each child ``keys`` names (an independent oracle:
    straight from the program's records)."""
    source = world.children().set_index(["program_code", "local_id"])
    return {
        (c.first_name, c.last_name, c.birth_date.isoformat()) for c in (source.loc[k] for k in keys)
    }


@pytest.mark.parametrize("run_date", LATER_ONLY)
def test_edfi_crash_after_accept_is_logged_once_by_the_next_run(
    world: World, edfi: EdfiContractServer, tmp_path: Path, run_date: dt.date
) -> None:
    crash = crash_after_accept(world, "mo-edfi", tmp_path)
    assert_killed_before_logging(world, crash)
    first = students(edfi)
    assert first, "the first program's students arrived"
    writes = dict(edfi.writes)
    assert set(writes.values()) == {1}

    summary = world.run("mo-edfi", run_date=run_date)

    disclosed = assert_settled(world, crash, summary, run_date)
    assert not disclosed.duplicated(["program_code", "child_local_id"]).any(), "logged once"
    crashed = disclosed.loc[disclosed["run_id"] == crash.run_id]
    keys = set(zip(crashed["program_code"], crashed["child_local_id"], strict=True))
    assert identities(world, keys) == first, "the crashed run's students, each logged under it"
    fields = [f for row in crashed["fields"] for f in row]
    assert all(":" in f for f in fields), "resource:field pairs, as its deliveries log them"
    assert any(f.startswith("students:") for f in fields)
    assert students(edfi) == identities(world, holding(world)), "the server holds the logged"
    again = {k: n for k, n in edfi.writes.items() if k in writes and n > 1}
    assert not again, f"{len(again)} resources of the crashed run were sent again"


# The Ed-Fi API accepts a batch resource by resource: a crash after it accepted the first
# program's students (and the destination's own ledger recorded them) and before their school
# associations went. ``_LedgerWriter.put`` writes in the caller's thread here, so the process
# stops right there, deterministically.
BETWEEN_RESOURCES = textwrap.dedent(
    """
    import sys

    import pipelines.edfi.destination as destination
    from pipelines import tasks

    def put(self, entries):
        if not entries:
            return
        self._ledger.record(entries, self._run_id)
        if entries[0].resource == "students":
            print("accepted", entries[0].program_code, flush=True)
            sys.stdin.read()  # blocks until the test kills this process

    destination._LedgerWriter.put = put
    run = tasks.plan_run(sys.argv[1], sys.argv[2], {})
    print("run", run["run_id"], flush=True)
    for shard in run["shards"]:  # as the DAG's tasks do: prepare, then deliver, per shard
        tasks.deliver_shard(run, tasks.prepare_shard(run, shard))
    print("finished", flush=True)
    """
)


def test_edfi_crash_between_resources_logs_every_accepted_field_by_the_next_run(
    world: World, edfi: EdfiContractServer, tmp_path: Path
) -> None:
    crash = crash_after_accept(world, "mo-edfi", tmp_path, script=BETWEEN_RESOURCES)
    assert world.disclosures().empty
    first = students(edfi)
    assert first and not edfi.held("studentSchoolAssociations"), "students only"

    summary = world.run("mo-edfi", run_date=LATER)

    assert summary["status"] == "success", summary.get("stop_lines")
    log = world.disclosures()
    disclosed = log.loc[log["action"] == "disclose"]
    fields: dict[tuple[str, str], Counter[str]] = {}
    for row in disclosed.itertuples():
        fields.setdefault((row.program_code, row.child_local_id), Counter()).update(row.fields)
    named = {k for k, f in fields.items() if any(x.startswith("students:") for x in f)}
    assert identities(world, named) >= first, "every student the API took is logged as such"
    twice = {k for k, f in fields.items() if max(f.values()) > 1}
    assert not twice, f"{len(twice)} children have a resource's field logged twice"
    crashed = disclosed.loc[disclosed["run_id"] == crash.run_id]
    assert set(crashed["program_code"]) == {crash.program}
    assert all(f.startswith("students:") for row in crashed["fields"] for f in row)
    assert set(crashed["run_date"]) == {DEMO_DATE}, "logged with the date it was sent"
    assert students(edfi) == identities(world, holding(world))
    with session_scope(world.engine) as session:
        check = verify_ledgers(session)
    assert all(r.ok for r in check.reports.values()) and not check.delivery_problems


# --- a group of programs ------------------------------------------------------------------


def test_crash_after_a_group_accepted_logs_every_program_once(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard records its programs in groups: killed after the destination accepted every
    batch of a group and before the group was logged, the next run reconciles each of them."""
    root = tmp_path / "drop"
    world.destination("vt", type="local", recipient="VT-AOE", agreements=["vt-aoe-ecids"],
                      formats=FORMATS, local={"root": str(root)})  # fmt: skip
    monkeypatch.setenv("TEST_RECORD_GROUP_PROGRAMS", "50")  # the whole shard is one group
    crash = crash_after_accept(world, "vt", tmp_path)
    programs = crash.program.split(",")
    assert len(programs) == 2, "both programs of the shard were sent before the kill"
    assert world.disclosures().empty, "nothing was logged"
    with world.engine.connect() as connection:
        rows = connection.execute(
            sql_select(Delivery.run_id, Delivery.program_code, Delivery.status)
        ).all()
    assert sorted(tuple(r) for r in rows) == [(crash.run_id, p, "pending") for p in programs]
    sent = {p.parent.name for p in root.rglob("manifest.json")}
    assert sent == set(programs)

    summary = world.run("vt", run_date=LATER)

    assert summary["status"] == "success", summary.get("stop_lines")
    for program in programs:
        assert summary["reconciled"][program].startswith("logged "), summary["reconciled"]
        assert crash.run_id in summary["reconciled"][program]
    log = world.disclosures()
    disclosed = log.loc[log["action"] == "disclose"]
    assert not disclosed.duplicated(["program_code", "child_local_id"]).any(), "logged once"
    crashed = disclosed.loc[disclosed["run_id"] == crash.run_id]
    assert set(crashed["program_code"]) == set(programs)
    assert set(crashed["run_date"]) == {DEMO_DATE}, "logged with the date it was sent"
    with world.engine.connect() as connection:
        statuses = Counter(connection.scalars(sql_select(Delivery.status)))
    assert set(statuses) <= {"logged", "unchanged"} and statuses["logged"] >= 2, statuses
    assert world.staged() == []
    with session_scope(world.engine) as session:
        check = verify_ledgers(session)
    assert all(r.ok for r in check.reports.values())


# --- killed mid-upload: what a file drop batch left is removed, never left unexplained -----

# The submission as the DAG's tasks run it, killed while a file drop writes its batch: right
# after ``{function}`` (of ``{module}``) returned for the first time (the first file written
# as its temporary ``.part`` file, or the first file renamed into place, the old manifest
# already removed), the process names the program and blocks until it is killed. ``{folder}``
# finds the program's folder among the patched function's arguments.
MID_UPLOAD = """
import posixpath
import sys

import {module} as target
from pipelines import tasks

real = target.{function}
done = []

def once_then_killed(*args):
    result = real(*args)
    if not done:
        done.append(args)
        print("accepted", {folder}, flush=True)
        sys.stdin.read()  # blocks until the test kills this process
    return result

target.{function} = once_then_killed
run = tasks.plan_run(sys.argv[1], sys.argv[2], {{}})
print("run", run["run_id"], flush=True)
for shard in run["shards"]:
    tasks.deliver_shard(run, tasks.prepare_shard(run, shard))
print("finished", flush=True)
"""
LOCAL_PATH = "posixpath.basename(posixpath.dirname(str(args[0])))"  # (path, ...): its folder
SFTP_FOLDER = "posixpath.basename(args[1])"  # (sftp, folder, name, ...)
PHASES = {
    ("local", "write"): ("pipelines.destinations.local", "write_part", LOCAL_PATH),
    ("local", "rename"): ("pipelines.destinations.local", "commit_part", LOCAL_PATH),
    ("sftp", "write"): ("pipelines.destinations.sftp", "_put_part", SFTP_FOLDER),
    ("sftp", "rename"): ("pipelines.destinations.sftp", "_commit_part", SFTP_FOLDER),
}


def killed_mid_upload(
    world: World, destination: str, kind: str, phase: str, tmp_path: Path
) -> Crash:
    module, function, folder = PHASES[(kind, phase)]
    script = MID_UPLOAD.format(module=module, function=function, folder=folder)
    return crash_after_accept(world, destination, tmp_path, script=script)


@dataclass
class Drop:
    """A file drop destination of the test: its name and the folder its batches land in
    (``server`` for SFTP, to stop and restart it)."""

    name: str
    kind: str
    root: Path
    server: SftpTestServer | None = None


@pytest.fixture(params=["local", "sftp"])
def drop(
    request: pytest.FixtureRequest, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Drop]:
    """Vermont's programs as files: in a local folder, then on a real SFTP server."""
    if request.param == "local":
        root = tmp_path / "drop"
        world.destination(
            "vt-local",
            type="local",
            recipient="VT-AOE",
            agreements=["vt-aoe-ecids"],
            formats=FORMATS,
            local={"root": str(root)},
        )
        yield Drop("vt-local", "local", root)
        return
    with vt_sftp(world, tmp_path, monkeypatch) as (incoming, server):
        yield Drop("vt-sftp", "sftp", incoming, server)


def everything(root: Path) -> list[Path]:
    """Every file at the destination, hidden ones included."""
    return sorted(p for p in root.rglob("*") if p.is_file())


def assert_explained(world: World, root: Path) -> dict[tuple[dt.date, str], set[tuple[str, str]]]:
    """Every file at the destination is vouched for by its folder's manifest (no stray file,
    no ``.part`` file, no folder without one), and every folder's children are logged as
    disclosed with that folder's date and program. Returns the folders."""
    for path in everything(root):
        manifest_path = path.parent / "manifest.json"
        assert manifest_path.is_file(), f"{path.relative_to(root)}: no manifest vouches for it"
        listed = {f["stored_as"] for f in json.loads(manifest_path.read_text())["files"]}
        assert path.name in listed | {"manifest.json"}, f"{path.relative_to(root)} not listed"
    assert not [p for p in root.rglob("*") if p.is_dir() and not any(p.iterdir())], (
        "no empty folder left"
    )
    held = folders(root)
    log = world.disclosures()
    disclosed = log.loc[log["action"] == "disclose"]
    for (run_date, program), children in held.items():
        there = disclosed.loc[
            (disclosed["run_date"] == run_date) & (disclosed["program_code"] == program)
        ]
        logged = set(zip(there["program_code"], there["child_local_id"], strict=True))
        assert logged == children, f"{run_date}/{program}: the log equals what arrived"
    return held


def orphans(root: Path, crash: Crash) -> list[str]:
    """What is in the crashed batch's folder."""
    folder = root / DEMO_DATE.isoformat() / crash.program
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def assert_discarded(world: World, drop: Drop, crash: Crash, summary: dict, removed: int) -> None:  # type: ignore[type-arg]
    """The next run removed the crashed batch's ``removed`` files, logged nothing of it, and
    sent its program afresh; every file left is vouched for and explained."""
    assert summary["status"] == "success", summary.get("stop_lines")
    outcome = summary["reconciled"][crash.program]
    assert outcome.startswith(f"run {crash.run_id} did not arrive; removed {removed} file")
    assert f"{DEMO_DATE.isoformat()}/{crash.program}" in outcome, "names the folder"
    assert orphans(drop.root, crash) == [], "nothing of the crashed batch is left"
    log = world.disclosures()
    assert crash.run_id not in set(log["run_id"]), "nothing of the crashed run is logged"
    with world.engine.connect() as connection:
        statuses = dict(
            connection.execute(
                sql_select(Delivery.run_id, Delivery.status).where(
                    Delivery.program_code == crash.program
                )
            ).all()
        )
    assert statuses[crash.run_id] == "failed"
    assert statuses[summary["run_id"]] == "logged", "sent afresh tonight"
    assert world.staged() == []
    with session_scope(world.engine) as session:
        check = verify_ledgers(session)
    assert all(r.ok for r in check.reports.values()) and not check.delivery_problems


@pytest.mark.parametrize("phase", ["write", "rename"])
def test_file_drop_killed_mid_upload_leaves_nothing_unexplained_the_next_night(
    world: World, drop: Drop, tmp_path: Path, phase: str
) -> None:
    crash = killed_mid_upload(world, drop.name, drop.kind, phase, tmp_path)
    assert_killed_before_logging(world, crash)
    left = orphans(drop.root, crash)
    assert left and "manifest.json" not in left, "files of the batch, no manifest"
    if drop.kind == "sftp" or phase == "write":
        assert any(name.endswith(".part") for name in left)

    summary = world.run(drop.name, run_date=LATER)

    assert_discarded(world, drop, crash, summary, removed=len(left))
    held = assert_explained(world, drop.root)
    assert {p for _, p in held} == set(summary["programs"]["processed"])
    assert {d for d, _ in held} == {LATER}, "only tonight's folders: the old date's is gone"
    assert not (drop.root / DEMO_DATE.isoformat()).exists()


def test_file_drop_killed_mid_upload_with_its_staged_files_lost(
    world: World, drop: Drop, tmp_path: Path
) -> None:
    """The staged batch is gone too (the crashed run's files cannot be read back): what the
    batch left at the destination is still removed, by the names its delivery row records."""
    crash = killed_mid_upload(world, drop.name, drop.kind, "rename", tmp_path)
    left = orphans(drop.root, crash)
    assert left
    with world.engine.begin() as connection:
        connection.execute(text("DELETE FROM staged_chunks"))

    summary = world.run(drop.name, run_date=LATER)

    assert summary["status"] == "success", summary.get("stop_lines")
    outcome = summary["reconciled"][crash.program]
    assert outcome.startswith(f"failed: staged files unreadable; removed {len(left)} file")
    assert outcome.endswith("sent afresh")
    assert orphans(drop.root, crash) == []
    held = assert_explained(world, drop.root)
    assert {d for d, _ in held} == {LATER}
    assert crash.run_id not in set(world.disclosures()["run_id"])


def test_file_drop_batch_the_state_took_before_reconciliation_is_logged(
    world: World, drop: Drop, tmp_path: Path
) -> None:
    """Killed after the batch arrived whole; the state then took its files away (its
    manifest stays): the batch arrived, so it is logged under the run that sent it, not
    discarded and not sent again."""
    crash = crash_after_accept(world, drop.name, tmp_path)
    assert_killed_before_logging(world, crash)
    folder = drop.root / DEMO_DATE.isoformat() / crash.program
    sent = folders(drop.root)[(DEMO_DATE, crash.program)]
    for path in folder.iterdir():
        if path.name != "manifest.json":
            path.unlink()

    summary = world.run(drop.name, run_date=LATER)

    assert summary["reconciled"][crash.program].startswith("logged "), summary["reconciled"]
    log = world.disclosures()
    crashed = log.loc[log["run_id"] == crash.run_id]
    assert set(zip(crashed["program_code"], crashed["child_local_id"], strict=True)) == sent
    assert set(crashed["run_date"]) == {DEMO_DATE}
    assert not (drop.root / LATER.isoformat() / crash.program).exists(), "not sent again"


def change_every_program(world: World) -> None:
    """One child of every program gets another first name: every snapshot differs."""
    with world.engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE children SET first_name = first_name || 'x' WHERE id IN "
                "(SELECT MIN(id) FROM children GROUP BY program_id)"
            )
        )


@pytest.mark.parametrize("phase", ["write", "rename"])
def test_same_day_rerun_killed_mid_upload(
    world: World, drop: Drop, tmp_path: Path, phase: str
) -> None:
    """A second run on the same date (a rerun after a change) killed mid-upload. Killed while
    writing: the earlier run's folder is still complete (its manifest goes only once every
    new file is written), only the rerun's temporary files go. Killed while renaming: the
    earlier folder lost its manifest, so what is left of it goes too (its disclosures stay
    logged: it was complete and could be read) and the next night sends the snapshot again."""
    first = world.run(drop.name)
    assert first["status"] == "success"
    before = folders(drop.root)
    change_every_program(world)
    crash = killed_mid_upload(world, drop.name, drop.kind, phase, tmp_path)
    left = orphans(drop.root, crash)
    logged_before = world.disclosures()

    summary = world.run(drop.name, run_date=LATER)

    assert summary["status"] == "success", summary.get("stop_lines")
    outcome = summary["reconciled"][crash.program]
    assert outcome.startswith(f"run {crash.run_id} did not arrive; removed ")
    log = world.disclosures()
    assert crash.run_id not in set(log["run_id"])
    assert len(log) > len(logged_before), "tonight sent"
    held = assert_explained(world, drop.root)
    if phase == "write":
        assert (
            "kept 2" in outcome
            and held[(DEMO_DATE, crash.program)] == before[(DEMO_DATE, crash.program)]
        ), "the earlier complete folder is untouched"
        assert not [n for n in orphans(drop.root, crash) if n.endswith(".part")]
    else:
        assert "lost its manifest" in outcome and "manifest.json" not in left
        assert orphans(drop.root, crash) == [], "the broken folder is gone"
        assert set(before) - set(held) == {(DEMO_DATE, crash.program)}
    assert (LATER, crash.program) in held, "the program's snapshot went again tonight"
    assert {p for d, p in held if d == LATER} == set(before_programs(before))


def before_programs(before: dict[tuple[dt.date, str], set[tuple[str, str]]]) -> set[str]:
    return {p for _, p in before}


def test_sftp_unreachable_at_reconcile_keeps_the_delivery_open_until_it_is_back(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "sftp-root"
    (root / "incoming").mkdir(parents=True)
    with SftpTestServer(root) as server:
        known = tmp_path / "known_hosts"
        known.write_text(server.known_hosts_line())
        monkeypatch.setenv("TEST_SFTP_PASSWORD", PASSWORD)
        world.destination(
            "vt-sftp",
            type="sftp",
            recipient="VT-AOE",
            agreements=["vt-aoe-ecids"],
            formats=FORMATS,
            retries=0,
            timeout_seconds=5,
            sftp={
                "host": "127.0.0.1",
                "port": server.port,
                "username": USERNAME,
                "password_env": "TEST_SFTP_PASSWORD",
                "known_hosts": str(known),
                "remote_root": "/incoming",
            },
        )
        drop = Drop("vt-sftp", "sftp", root / "incoming", server)
        crash = killed_mid_upload(world, drop.name, "sftp", "write", tmp_path)
        left = orphans(drop.root, crash)
        assert left
        server.stop()

        with pytest.raises(TransientDeliveryError, match="stays open for the next run"):
            world.run(drop.name, run_date=LATER)

        assert_killed_before_logging(world, crash)  # still pending, staged batch kept
        assert orphans(drop.root, crash) == left
        server.start()  # the same port and host key

        summary = world.run(drop.name, run_date=LATER + dt.timedelta(days=1))

        assert_discarded(world, drop, crash, summary, removed=len(left))
        held = assert_explained(world, drop.root)
        assert {d for d, _ in held} == {LATER + dt.timedelta(days=1)}


# The API accepted the first program's students and the process was killed before the
# destination's own ledger (``sent_resources``) recorded them: nothing at our side says they
# went, only the API holds them.
LEDGER_LOST = textwrap.dedent(
    """
    import sys

    import pipelines.edfi.destination as destination
    from pipelines import tasks

    def put(self, entries):
        if not entries:
            return
        if entries[0].resource == "students":
            print("accepted", entries[0].program_code, flush=True)
            sys.stdin.read()  # blocks until the test kills this process
        self._ledger.record(entries, self._run_id)

    destination._LedgerWriter.put = put
    run = tasks.plan_run(sys.argv[1], sys.argv[2], {})
    print("run", run["run_id"], flush=True)
    for shard in run["shards"]:
        tasks.deliver_shard(run, tasks.prepare_shard(run, shard))
    print("finished", flush=True)
    """
)


def test_edfi_crash_before_the_ledger_logs_what_the_api_holds_under_the_run_that_sent_it(
    world: World, edfi: EdfiContractServer, tmp_path: Path
) -> None:
    crash = crash_after_accept(world, "mo-edfi", tmp_path, script=LEDGER_LOST)
    assert world.disclosures().empty
    first = students(edfi)
    assert first and not edfi.held("studentSchoolAssociations"), "students only"
    with world.engine.connect() as connection:
        ledger = connection.execute(text("SELECT resource FROM sent_resources")).scalars().all()
    assert "students" not in ledger, "the ledger never heard of them"
    writes = dict(edfi.writes)

    summary = world.run("mo-edfi", run_date=LATER)

    assert summary["status"] == "success", summary.get("stop_lines")
    assert summary["reconciled"][crash.program].startswith(f"run {crash.run_id} arrived in part")
    again = {k: n for k, n in edfi.writes.items() if k in writes and n > 1}
    assert not again, f"{len(again)} resources the API held were sent again"
    log = world.disclosures()
    disclosed = log.loc[log["action"] == "disclose"]
    crashed = disclosed.loc[disclosed["run_id"] == crash.run_id]
    keys = set(zip(crashed["program_code"], crashed["child_local_id"], strict=True))
    assert identities(world, keys) == first, "each student the API took, under the run that sent it"
    assert set(crashed["run_date"]) == {DEMO_DATE}, "with the date it was sent, not a night late"
    assert all(f.startswith("students:") for row in crashed["fields"] for f in row)
    tonight = disclosed.loc[disclosed["run_id"] == summary["run_id"]]
    students_tonight = {
        (row.program_code, row.child_local_id)
        for row in tonight.itertuples()
        if any(f.startswith("students:") for f in row.fields)
    }
    assert not students_tonight & keys, "their students are not logged again tonight"
    fields: dict[tuple[str, str], Counter[str]] = {}
    for row in disclosed.itertuples():
        fields.setdefault((row.program_code, row.child_local_id), Counter()).update(row.fields)
    assert all(max(f.values()) == 1 for f in fields.values()), "each field logged once"
    assert students(edfi) == identities(world, holding(world))
    with world.engine.connect() as connection:
        run_ids = (
            connection.execute(
                text("SELECT DISTINCT run_id FROM sent_resources WHERE resource = 'students'")
            )
            .scalars()
            .all()
        )
    assert crash.run_id in run_ids, "the ledger now knows what the crashed run left"
    with session_scope(world.engine) as session:
        check = verify_ledgers(session)
    assert all(r.ok for r in check.reports.values()) and not check.delivery_problems


# --- the state took the whole folder before the next run looked ---------------------------

# Killed after the delivery row was written and before the file drop began (no mark on it):
# nothing of the batch ever left.
BEFORE_UPLOAD = """
import sys

import pipelines.submission.deliver as deliver
from pipelines import tasks

def killed_before(context, destination, batch, delivery_id):
    print("accepted", batch.program_code, flush=True)
    sys.stdin.read()  # blocks until the test kills this process

deliver.deliver_marked = killed_before
run = tasks.plan_run(sys.argv[1], sys.argv[2], {})
print("run", run["run_id"], flush=True)
for shard in run["shards"]:
    tasks.deliver_shard(run, tasks.prepare_shard(run, shard))
print("finished", flush=True)
"""
CRASH_POINTS = ["before-upload", "write", "rename", "accepted"]


def killed_at(world: World, drop: Drop, point: str, tmp_path: Path) -> Crash:
    if point == "before-upload":
        return crash_after_accept(world, drop.name, tmp_path, script=BEFORE_UPLOAD)
    if point == "accepted":
        return crash_after_accept(world, drop.name, tmp_path)
    return killed_mid_upload(world, drop.name, drop.kind, point, tmp_path)


def state_takes_the_folder(root: Path, crash: Crash) -> set[tuple[str, str]]:
    """The state's ingestion takes the crashed batch's folder away whole (files, ``.part``
    files, manifest; the date's folder too when that leaves it empty); returns the children
    the files it took name (an oracle read from the bytes that left, not from our ledgers)."""
    folder = root / DEMO_DATE.isoformat() / crash.program
    children: set[tuple[str, str]] = set()
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name.endswith((".csv", ".csv.part")):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            if "LocalChildID" in frame:
                children |= set(zip(frame["ProgramID"], frame["LocalChildID"], strict=True))
    if folder.is_dir():
        shutil.rmtree(folder)
    if folder.parent.is_dir() and not any(folder.parent.iterdir()):
        folder.parent.rmdir()  # the date's folder it emptied goes with it
    return children


def assert_once_and_nothing_more(world: World, drop: Drop, summary: dict) -> pd.DataFrame:  # type: ignore[type-arg]
    """Every folder left is explained by the log, no disclosure twice, no delivery open,
    nothing staged, the ledgers verify; returns the disclosures."""
    assert summary["status"] == "success", summary.get("stop_lines")
    assert_explained(world, drop.root)
    log = world.disclosures()
    disclosed = log.loc[log["action"] == "disclose"]
    assert not disclosed.duplicated(["program_code", "child_local_id", "run_id"]).any()
    assert not disclosed.duplicated(["program_code", "child_local_id", "run_date"]).any(), (
        "one disclosure per child and date: a same-date resend of the same content is the same"
    )
    with world.engine.connect() as connection:
        statuses = Counter(connection.scalars(sql_select(Delivery.status)))
    assert set(statuses) <= {"logged", "unchanged", "failed"}, statuses
    assert world.staged() == []
    with session_scope(world.engine) as session:
        check = verify_ledgers(session)
    assert all(r.ok for r in check.reports.values()) and not check.delivery_problems
    return disclosed


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_folder_the_state_took_before_reconciliation_is_logged_once_if_it_left(
    world: World, drop: Drop, tmp_path: Path, point: str
) -> None:
    """Killed at each point of a file drop's delivery; the state then takes the batch's
    folder away whole, so the destination shows nothing of it. What left (``.part`` files,
    renamed files, the whole batch) is logged once, under the run that sent it, with its
    date, marked presumed; what never left is not logged. Either way the program's snapshot
    goes again tonight and is logged under tonight's run."""
    crash = killed_at(world, drop, point, tmp_path)
    assert_killed_before_logging(world, crash)
    taken = state_takes_the_folder(drop.root, crash)
    assert bool(taken) == (point != "before-upload"), "what the killed run left behind"

    summary = world.run(drop.name, run_date=LATER)

    disclosed = assert_once_and_nothing_more(world, drop, summary)
    outcome = summary["reconciled"][crash.program]
    crashed = disclosed.loc[disclosed["run_id"] == crash.run_id]
    if point == "before-upload":
        assert outcome.startswith(f"run {crash.run_id} did not arrive"), outcome
        assert crashed.empty, "nothing left: nothing logged"
    else:
        assert outcome.startswith(f"logged {len(taken)} disclosures of run {crash.run_id}")
        assert "presumed arrived" in outcome and "no longer shows" in outcome
        assert set(zip(crashed["program_code"], crashed["child_local_id"], strict=True)) == taken
        assert set(crashed["run_date"]) == {DEMO_DATE}, "with the date it was sent"
        with world.engine.connect() as connection:
            row = connection.execute(
                sql_select(Delivery.status, Delivery.artifacts).where(
                    Delivery.run_id == crash.run_id
                )
            ).one()
        assert row.status == "logged"
        assert row.artifacts["reconciled"]["by_run"] == summary["run_id"]
        assert row.artifacts["reconciled"]["verdict"] == (
            "parts_taken" if point == "write" else "taken"
        )
    again = folders(drop.root)[(LATER, crash.program)]
    tonight = disclosed.loc[
        (disclosed["run_id"] == summary["run_id"]) & (disclosed["program_code"] == crash.program)
    ]
    assert set(zip(tonight["program_code"], tonight["child_local_id"], strict=True)) == again
    assert not list(drop.root.rglob("*.part"))


def test_folder_taken_on_the_same_date_is_logged_once(
    world: World, drop: Drop, tmp_path: Path
) -> None:
    """The state took the whole batch; the next run is the same date's: its resend of the
    same content is the same disclosure, so each child of it is logged once, under the
    crashed run."""
    crash = crash_after_accept(world, drop.name, tmp_path)
    taken = state_takes_the_folder(drop.root, crash)

    summary = world.run(drop.name)

    disclosed = assert_once_and_nothing_more(world, drop, summary)
    assert "presumed arrived" in summary["reconciled"][crash.program]
    ours = disclosed.loc[disclosed["program_code"] == crash.program]
    assert set(ours["run_id"]) == {crash.run_id}
    assert set(zip(ours["program_code"], ours["child_local_id"], strict=True)) == taken
    assert folders(drop.root)[(DEMO_DATE, crash.program)] == taken, "the snapshot went again"


def test_folder_taken_with_its_staged_files_lost_is_logged_from_the_delivery_row(
    world: World, drop: Drop, tmp_path: Path
) -> None:
    """Killed while renaming, the state took the folder, and the staged batch is gone too:
    the children the delivery row names are logged under the crashed run (every field the
    agreement allows: never fewer than were sent), and the snapshot goes again."""
    crash = killed_mid_upload(world, drop.name, drop.kind, "rename", tmp_path)
    taken = state_takes_the_folder(drop.root, crash)
    assert taken
    with world.engine.begin() as connection:
        connection.execute(text("DELETE FROM staged_chunks"))

    summary = world.run(drop.name, run_date=LATER)

    disclosed = assert_once_and_nothing_more(world, drop, summary)
    outcome = summary["reconciled"][crash.program]
    assert outcome.startswith(f"logged {len(taken)} disclosures of run {crash.run_id}")
    assert "staged files unreadable" in outcome and "presumed arrived" in outcome
    crashed = disclosed.loc[disclosed["run_id"] == crash.run_id]
    assert set(zip(crashed["program_code"], crashed["child_local_id"], strict=True)) == taken
    assert set(crashed["run_date"]) == {DEMO_DATE}
    tonight = disclosed.loc[
        (disclosed["run_id"] == summary["run_id"]) & (disclosed["program_code"] == crash.program)
    ]
    sent_fields = {(r.program_code, r.child_local_id): set(r.fields) for r in tonight.itertuples()}
    assert set(sent_fields) == taken, "the snapshot went again tonight"
    for row in crashed.itertuples():
        assert set(row.fields) >= sent_fields[(row.program_code, row.child_local_id)]


@pytest.mark.parametrize("drop", ["local"], indirect=True)  # SFTP writes it after publish
def test_part_files_the_state_took_while_leaving_the_manifests_part_file_are_logged(
    world: World, drop: Drop, tmp_path: Path
) -> None:
    """Killed once every ``.part`` file is written, the manifest's last, before the publish;
    the state's ingestion then takes the batch's ``.part`` files and leaves the manifest's,
    which names no child. The batch's files left: it is logged once, presumed, as when the
    state takes the folder whole; the manifest's ``.part`` file goes."""
    script = MID_UPLOAD.format(
        module="pipelines.destinations.local", function="write_part", folder=LOCAL_PATH
    ).replace("if not done:", "if not done and str(args[0]).endswith('manifest.json'):")
    crash = crash_after_accept(world, drop.name, tmp_path, script=script)
    folder = drop.root / DEMO_DATE.isoformat() / crash.program
    assert ".manifest.json.part" in {p.name for p in folder.iterdir()}
    batch: set[tuple[str, str]] = set()
    for path in folder.glob(".*.csv.part"):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        batch |= set(zip(frame["ProgramID"], frame["LocalChildID"], strict=True))
        path.unlink()
    assert batch and [p.name for p in folder.iterdir()] == [".manifest.json.part"]

    summary = world.run(drop.name, run_date=LATER)

    disclosed = assert_once_and_nothing_more(world, drop, summary)
    outcome = summary["reconciled"][crash.program]
    assert outcome.startswith(f"logged {len(batch)} disclosures of run {crash.run_id}"), outcome
    assert "presumed arrived" in outcome
    crashed = disclosed.loc[disclosed["run_id"] == crash.run_id]
    assert set(zip(crashed["program_code"], crashed["child_local_id"], strict=True)) == batch
    assert orphans(drop.root, crash) == [], "the manifest's .part file is gone"


def test_files_the_state_took_while_leaving_hidden_part_files_are_logged(
    world: World, drop: Drop, tmp_path: Path
) -> None:
    """Killed while renaming (one file already under its final name); the state's ingestion
    then takes every file it sees and leaves the hidden ``.part`` files. A file of the batch
    under no name was published and taken: the batch is logged once (all of it: which of its
    fields left is not known), presumed, what the state left goes, the snapshot goes again."""
    crash = killed_mid_upload(world, drop.name, drop.kind, "rename", tmp_path)
    folder = drop.root / DEMO_DATE.isoformat() / crash.program
    batch: set[tuple[str, str]] = set()
    for path in folder.iterdir():  # a local folder's manifest is a .part file too by now
        if path.name != ".manifest.json.part":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            batch |= set(zip(frame["ProgramID"], frame["LocalChildID"], strict=True))
    visible = [p for p in folder.iterdir() if not p.name.startswith(".")]
    hidden = [p for p in folder.iterdir() if p.name.startswith(".")]
    assert visible and hidden, "one file renamed, the others still .part files"
    for path in visible:
        path.unlink()

    summary = world.run(drop.name, run_date=LATER)

    disclosed = assert_once_and_nothing_more(world, drop, summary)
    outcome = summary["reconciled"][crash.program]
    assert outcome.startswith(f"logged {len(batch)} disclosures of run {crash.run_id}")
    assert "presumed arrived" in outcome
    crashed = disclosed.loc[disclosed["run_id"] == crash.run_id]
    assert set(zip(crashed["program_code"], crashed["child_local_id"], strict=True)) == batch
    assert set(crashed["run_date"]) == {DEMO_DATE}
    assert orphans(drop.root, crash) == [], "the .part files the state left are gone"
    assert (LATER, crash.program) in folders(drop.root), "the snapshot went again"
