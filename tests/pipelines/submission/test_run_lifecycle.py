"""A run's life across hosts and crashes: staged batches in the program database reach a
worker with another state folder; a crashed run is marked abandoned and what it staged goes;
a live run of the same destination makes the next one stop; a failing program names itself."""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import io
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import select, update

from pipelines.commands.run import show_summary
from pipelines.destinations.base import TerminalDeliveryError, TransientDeliveryError
from pipelines.staging import StagedFileTampered, StagingKeyError
from pipelines.submission.context import RunContext
from pipelines.submission.deliver import deliver_program
from pipelines.submission.finish import finish_run
from pipelines.submission.plan import plan_run
from pipelines.submission.prepare import BatchStopped, prepare_program
from pipelines.submission.runs import ConcurrentRun
from pipelines.submission.stops import StopReason, classify, record_stop
from privacy.errors import MissingKeyError
from schemas import Child, Program, Run
from tests.pipelines.submission.conftest import World

FORMATS = ["hs_child_identity", "hs_enrollment"]


def local_vt(world: World) -> Path:
    root = world.config.parent / "drop"
    world.destination(
        "vt", type="local", recipient="VT-AOE", agreements=["vt-aoe-ecids"], formats=FORMATS,
        local={"root": str(root)},
    )  # fmt: skip
    return root


def dead_pid() -> int:
    """The id of a process that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def open_run(world: World, run_id: str, *, owner: dict, ago: dt.timedelta) -> None:
    """A ``running`` ledger run of ``vt`` as a crash (or a live run) leaves it, with a batch
    staged in the program database."""
    heartbeat = dt.datetime.now(dt.UTC) - ago
    context = RunContext.of(
        {"run_id": run_id, "destination": "vt", "run_date": "2026-11-27"}, world.settings
    )
    context.staged.put(b"sealed batch", bytes(32), run_id=run_id, program="VT-HS-01", name="x")
    with world.engine.begin() as connection:
        connection.execute(
            Run.__table__.insert().values(
                id=run_id, destination="vt", run_date=dt.date(2026, 11, 27), dry_run=False,
                status="running", started_at=heartbeat, heartbeat_at=heartbeat,
                summary={"owner": owner},
            )
        )  # fmt: skip


def status(world: World, run_id: str) -> str:
    with world.engine.connect() as connection:
        return connection.scalar(select(Run.status).where(Run.id == run_id))


MINUTE = dt.timedelta(minutes=1)
ELSEWHERE = {"host": "another-worker", "pid": 1, "in_process": False}
CRASHES = pytest.mark.parametrize(
    ("owner", "ago"),
    [
        pytest.param({"host": socket.gethostname(), "in_process": True}, MINUTE, id="process-gone"),
        pytest.param(ELSEWHERE, 91 * MINUTE, id="silent-past-stale-after"),
    ],
)
"""How a crashed run is known: its process is gone, or it ran elsewhere and went silent."""


def crashed_run(world: World, owner: dict, ago: dt.timedelta) -> None:
    """The local destination ``vt`` and a crashed run of it, ``vt-crashed``, as ``owner``
    left it ``ago``."""
    local_vt(world)
    if owner.get("in_process"):
        owner = {**owner, "pid": dead_pid()}
    open_run(world, "vt-crashed", owner=owner, ago=ago)


@CRASHES
def test_when_a_run_crashed_then_the_next_run_marks_it_abandoned_and_removes_its_batches(
    world: World, owner: dict, ago: dt.timedelta
) -> None:
    crashed_run(world, owner, ago)
    assert world.staged() == ["vt-crashed/VT-HS-01/x"]
    summary = world.run("vt")
    assert summary["status"] == "success"
    assert status(world, "vt-crashed") == "abandoned"
    assert world.staged() == [], "the abandoned run's staged batch is removed"
    assert summary["abandoned_runs"] == ["vt-crashed"], "the run's summary says what it marked"
    out = io.StringIO()
    show_summary(Console(file=out, width=200), summary)
    assert "Crashed runs marked abandoned: vt-crashed" in out.getvalue()
    assert "would mark" not in out.getvalue()
    again = world.run("vt")
    assert "abandoned_runs" not in again, "a run that marked nothing says nothing"


def row(world: World, run_id: str) -> dict:
    with world.engine.connect() as connection:
        table = Run.__table__
        return dict(connection.execute(select(table).where(table.c.id == run_id)).one()._mapping)


@CRASHES
def test_when_a_run_crashed_then_a_dry_run_says_it_would_mark_it_abandoned_and_marks_nothing(
    world: World, owner: dict, ago: dt.timedelta
) -> None:
    crashed_run(world, owner, ago)
    before = row(world, "vt-crashed")
    dry = world.run("vt", dry_run=True)
    assert dry["status"] == "success"
    assert dry["would_abandon"] == ["vt-crashed"]
    assert row(world, "vt-crashed") == before, "status, end and summary as the crash left them"
    assert world.staged() == ["vt-crashed/VT-HS-01/x"], "nor is its staged batch removed"
    real = world.run("vt")
    assert real["status"] == "success" and "would_abandon" not in real
    assert "abandoned_runs" not in dry and real["abandoned_runs"] == ["vt-crashed"]
    after = row(world, "vt-crashed")
    assert after["status"] == "abandoned" and after["finished_at"] is not None
    assert after["summary"]["abandoned_by"] == real["run_id"]
    assert world.staged() == []


def test_a_dry_run_leaves_what_a_closed_run_left_staged_for_the_real_run_to_remove(
    world: World,
) -> None:
    local_vt(world)
    open_run(world, "vt-failed", owner=ELSEWHERE, ago=MINUTE)
    with world.engine.begin() as connection:  # closed, its staged batch left (a crash in finish)
        connection.execute(update(Run).where(Run.id == "vt-failed").values(status="failed"))
    dry = world.run("vt", dry_run=True)
    assert dry["status"] == "success"
    assert world.staged() == ["vt-failed/VT-HS-01/x"], "a dry run removes nothing"
    assert world.run("vt")["status"] == "success"
    assert world.staged() == [], "the real run removes it"


def test_when_a_run_of_the_destination_is_alive_then_a_dry_run_stops_too(world: World) -> None:
    local_vt(world)
    open_run(world, "vt-live", owner=ELSEWHERE, ago=80 * MINUTE)
    before = row(world, "vt-live")
    with pytest.raises(ConcurrentRun, match="vt-live"):
        world.run("vt", dry_run=True)
    assert row(world, "vt-live") == before
    with world.engine.connect() as connection:
        [(refused, dry_run)] = connection.execute(
            select(Run.status, Run.dry_run).where(Run.id != "vt-live")
        ).all()
    assert (refused, dry_run) == ("refused", True)


def test_when_a_run_of_the_destination_is_alive_then_the_next_stops_and_says_why(
    world: World,
) -> None:
    local_vt(world)
    open_run(world, "vt-live", owner=ELSEWHERE, ago=80 * MINUTE)
    with pytest.raises(ConcurrentRun, match="vt-live"):
        world.run("vt")
    assert status(world, "vt-live") == "running"
    assert world.staged() == ["vt-live/VT-HS-01/x"], "a live run's batch is not touched"
    with world.engine.connect() as connection:
        [(refused, summary)] = connection.execute(
            select(Run.status, Run.summary).where(Run.id != "vt-live")
        ).all()
    assert refused == "refused"
    [line] = summary["stop_lines"]
    assert "concurrent_run" in line and "vt-live" in line


def test_staged_batches_in_the_database_reach_a_worker_with_another_state_folder(
    world: World, tmp_path: Path
) -> None:
    root = local_vt(world)
    plan = plan_run("vt", dt.date(2026, 11, 27), settings=world.settings)
    prepared = [prepare_program(plan, p, world.settings) for p in plan["programs"]]
    other = dataclasses.replace(world.settings, state_dir=tmp_path / "other-worker")
    other.state_dir.mkdir()
    shutil.copy(world.settings.staging_key_file, other.staging_key_file)  # the shared key only
    assert not (other.state_dir / "staging").exists()
    delivered = [deliver_program(plan, p, other) for p in prepared]
    summary = finish_run(plan, delivered, other)
    assert summary["status"] == "success" and summary["children"]["logged"] > 0
    assert {p.parent.name for p in root.rglob("hs_child_identity.csv")} == set(plan["programs"])
    assert not any(world.settings.state_dir.rglob("*.stg")), "nothing staged on a worker's disk"
    assert world.staged() == []


def test_when_one_program_stops_then_the_others_are_delivered_and_the_summary_names_it(
    world: World,
) -> None:
    root = local_vt(world)
    with world.engine.begin() as connection:  # every child of one program born in the future
        program = select(Program.id).where(Program.code == "VT-EHS-02").scalar_subquery()
        connection.execute(
            update(Child).where(Child.program_id == program).values(birth_date=dt.date(2030, 1, 1))
        )
    plan = plan_run("vt", dt.date(2026, 11, 27), settings=world.settings)
    delivered = []
    for code in plan["programs"]:  # what the DAG's tasks do, program by program
        try:
            prepared = prepare_program(plan, code, world.settings)
        except BatchStopped as error:
            record_stop(world.engine, plan["run_id"], code, "prepare", error)
            continue
        delivered.append(deliver_program(plan, prepared, world.settings))
    summary = finish_run(plan, delivered, world.settings)
    assert summary["status"] == "partial"
    assert summary["programs"]["processed"] == ["VT-HS-01"]
    assert summary["programs"]["stopped"] == ["VT-EHS-02"]
    [line] = summary["stop_lines"]
    assert line.startswith("VT-EHS-02: stopped at prepare (gate_failed): BatchStopped:")
    assert {p.parent.name for p in root.rglob("hs_child_identity.csv")} == {"VT-HS-01"}
    assert status(world, plan["run_id"]) == "partial"


def test_a_program_with_no_outcome_and_no_recorded_failure_is_reported_lost(world: World) -> None:
    local_vt(world)
    plan = plan_run("vt", dt.date(2026, 11, 27), settings=world.settings)
    summary = finish_run(plan, [], world.settings)
    assert summary["status"] == "failed"
    assert all("(task_lost)" in line for line in summary["stop_lines"])
    assert len(summary["stop_lines"]) == len(plan["programs"]) > 0


def _disk_full() -> BaseException:
    try:
        raise OSError(errno.ENOSPC, "No space left on device", "/var/lib/x/Ada Lovelace.csv")
    except OSError as cause:
        try:
            raise RuntimeError("write failed") from cause
        except RuntimeError as error:
            return error


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (StagingKeyError("no staging key: set DATASHARE_STAGING_KEY"), StopReason.MISSING_KEY),
        (MissingKeyError("VT-AOE", ["DATASHARE_KEY_VT_AOE"]), StopReason.MISSING_KEY),
        (_disk_full(), StopReason.DISK_FULL),
        (BatchStopped("program X: the output privacy gate failed"), StopReason.GATE_FAILED),
        (StagedFileTampered("staged file db:r/p/x fails"), StopReason.STAGED_BATCH_UNREADABLE),
        (TransientDeliveryError("sftp: connection reset"), StopReason.DESTINATION_UNAVAILABLE),
        (TerminalDeliveryError("sftp: permission denied"), StopReason.DESTINATION_REFUSED),
        (ConcurrentRun("run r is still running"), StopReason.CONCURRENT_RUN),
        (ValueError("could not convert 'Ada Lovelace' to date"), StopReason.UNEXPECTED_ERROR),
    ],
)  # fmt: skip
def test_each_failure_gets_its_reason_and_a_line_without_values(
    error: BaseException, reason: StopReason
) -> None:
    code, line = classify(error)
    assert code is reason
    assert "Ada" not in line and "\n" not in line and len(line) <= 300
