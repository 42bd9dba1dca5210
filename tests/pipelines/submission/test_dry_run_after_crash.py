"""A dry run after a crashed real run says what the next real run will do, and writes nothing.

The crashed run (night 1) sent its first program's batch and died before logging it (the
bytes left: the destination holds it), or before any byte left. The next real run settles
that open delivery first (:mod:`pipelines.submission.reconcile`): a batch that arrived is
logged under the crashed run and not sent again, one that did not is sent afresh. A dry run
before it (night 2) must report exactly that, per program (what it would settle, log, send,
withdraw, find unchanged), for every destination type; and it must write nothing: no table
of the program database but its own run row, nothing at the destination.
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import MetaData, select, update

import pipelines.submission.deliver as deliver
from pipelines.commands.run import show_summary
from pipelines.demo import DEMO_DATE
from pipelines.destinations.staging_db import StagingDbDestination
from pipelines.submission.deliver import deliver_program
from pipelines.submission.plan import plan_run
from pipelines.submission.prepare import prepare_program
from schemas import Delivery, Run
from tests.pipelines.submission import nights as n
from tests.pipelines.submission.conftest import World, make_world
from tests.pipelines.submission.kinds import KINDS, Dest, small_world
from tests.pipelines.submission.nights import Killed

NIGHT2 = DEMO_DATE + dt.timedelta(days=1)


def crash(world: World, monkeypatch: pytest.MonkeyPatch, *, bytes_left: bool) -> str:
    """Night 1 dies at its first program: after the destination took the batch and before
    it was logged (``bytes_left``), or before anything was sent. Returns the crashed run."""

    def killed_before_sending(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    with monkeypatch.context() as patch:
        if bytes_left:
            n.kill_before_logging(patch)
        else:
            patch.setattr(deliver, "deliver_marked", killed_before_sending)
        with pytest.raises(Killed):
            world.run("dest", run_date=DEMO_DATE)
    with world.engine.connect() as connection:
        rows = connection.execute(select(Delivery.run_id, Delivery.status)).all()
    assert [status for _, status in rows] == ["pending"], "one delivery left open"
    assert world.disclosures().empty, "nothing logged"
    return str(rows[0].run_id)


def tables(world: World, run_id: str = "") -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the program database but what every run writes of its
    own, a dry run too: its ``runs`` row, and (of ``run_id``) the anchor of the ledgers'
    heads as its finish found them."""
    metadata = MetaData()
    metadata.reflect(world.engine)
    out = {}
    with world.engine.connect() as connection:
        for name, table in metadata.tables.items():
            if name == "runs":
                continue
            query = select(table)
            if name == "ledger_anchors":
                query = query.where(table.c.run_id != run_id)
            out[name] = sorted(map(tuple, connection.execute(query)), key=repr)
    return out


def runs(world: World) -> dict[str, tuple[str, Any]]:
    with world.engine.connect() as connection:
        rows = connection.execute(select(Run.id, Run.status, Run.summary)).all()
    return {r.id: (r.status, r.summary) for r in rows}


def logged_per_program(world: World, run_id: str, action: str = "disclose") -> dict[str, int]:
    log = world.disclosures()
    if log.empty:
        return {}
    mine = log.loc[(log["run_id"] == run_id) & (log["action"] == action)]
    return dict(Counter(mine["program_code"]))


def printed(summary: dict[str, Any]) -> str:
    out = io.StringIO()
    show_summary(Console(file=out, width=250), summary)
    return out.getvalue()


def dry_run_then_real(
    world: World,
    dest: Dest,
    tmp_path: Path,
    name: str = "dest",
    run_date: dt.date = NIGHT2,
    after_dry: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The dry run (checked to write nothing; then ``after_dry`` called with its summary),
    then the real run, both on ``run_date``."""
    before, held, ran = tables(world), dest.content(), runs(world)
    dry = world.run(name, run_date=run_date, dry_run=True, output=str(tmp_path / "dry"))
    assert dry["status"] == "success", dry.get("stop_lines")
    now = tables(world, dry["run_id"])
    changed = sorted(name for name in {*now, *before} if now.get(name) != before.get(name))
    assert changed == [], "the dry run wrote nothing to the program database"
    assert dest.content() == held, "nor anything at the destination"
    after = runs(world)
    assert set(after) - set(ran) == {dry["run_id"]}, "but its own run row"
    assert {k: v[0] for k, v in after.items() if k in ran} == {k: v[0] for k, v in ran.items()}
    if after_dry is not None:
        after_dry(dry)
    real = world.run(name, run_date=run_date)
    assert real["status"] == "success", real.get("stop_lines")
    return dry, real


def assert_dry_run_said_what_the_real_run_did(
    world: World, dry: dict[str, Any], real: dict[str, Any], crashed: str
) -> None:
    sent = logged_per_program(world, real["run_id"])
    withdrawn = logged_per_program(world, real["run_id"], "delete")
    total = dry["would_deliver"]
    assert total["children_sent"] == sum(sent.values()), "it would send what the real run sent"
    would = total["programs"]
    assert set(would) == set(real["deliveries"]), "the same programs"
    settle = dry["would_settle"]
    for program, counts in would.items():
        assert counts["send"] == sent.get(program, 0), (program, counts, sent)
        left = settle["programs"].get(program, {}).get("old_copies", 0)  # deleted by the real run
        assert counts["withdraw"] + left == withdrawn.get(program, 0), (program, counts, withdrawn)
        unchanged = real["deliveries"][program] == "unchanged"
        assert unchanged == (counts == {"send": 0, "withdraw": 0}), (program, counts)
    assert set(dry["reconciled"]) == set(real["reconciled"]), "the same open deliveries"
    assert settle["runs"] == [crashed] and settle["deliveries"] == len(real["reconciled"])
    for program, said in settle["programs"].items():
        assert said["run_id"] == crashed
        done = real["reconciled"][program]
        assert done.startswith("logged ") == (said["outcome"] in ("arrived", "presumed")), done
        assert ("sent afresh" in done) == said["resend"], done
        logged = logged_per_program(world, crashed).get(program, 0)
        assert said["logged"] == logged, "as many as the real run logged under the crashed run"
        assert said["deleted"] == logged_per_program(world, crashed, "delete").get(program, 0)
        assert f"logged {logged} disclosures" in done or said["resend"]
    resent = sum(1 for text in real["reconciled"].values() if "sent afresh" in text)
    assert (settle["arrived"], settle["resend"]) == (len(real["reconciled"]) - resent, resent)
    line = (
        f"would settle {settle['deliveries']} open delivery from run {crashed}: "
        f"{settle['arrived']} arrived, to be logged; {settle['resend']} to resend"
    )
    assert line in printed(dry)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_dry_run_after_a_crash_once_the_bytes_left_reports_what_the_real_run_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The batch arrived unlogged: the dry run says it would be logged under the crashed
    run (and not sent again: its program unchanged), not a full resend."""
    world = small_world(tmp_path)
    try:
        with KINDS[kind](world, tmp_path, monkeypatch) as dest:
            crashed = crash(world, monkeypatch, bytes_left=True)
            assert dest.held() > 0, "the crashed run's batch is at the destination"
            dry, real = dry_run_then_real(world, dest, tmp_path)
            assert_dry_run_said_what_the_real_run_did(world, dry, real, crashed)
            (program,) = dry["would_settle"]["programs"]
            assert dry["would_settle"]["programs"][program]["outcome"] == "arrived"
            assert dry["would_deliver"]["programs"][program] == {"send": 0, "withdraw": 0}
            assert real["deliveries"][program] == "unchanged", "not sent again"
            assert logged_per_program(world, crashed)[program] > 0
    finally:
        world.engine.dispose()


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_dry_run_after_a_crash_before_any_byte_left_reports_the_resend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Nothing left: the dry run says the open delivery is to be resent (nothing logged
    under the crashed run), and the program goes whole, as the real run then sends it."""
    world = small_world(tmp_path)
    try:
        with KINDS[kind](world, tmp_path, monkeypatch) as dest:
            crashed = crash(world, monkeypatch, bytes_left=False)
            assert dest.held() == 0, "nothing reached the destination"
            dry, real = dry_run_then_real(world, dest, tmp_path)
            assert_dry_run_said_what_the_real_run_did(world, dry, real, crashed)
            (program,) = dry["would_settle"]["programs"]
            said = dry["would_settle"]["programs"][program]
            assert (said["outcome"], said["resend"], said["logged"]) == ("not_arrived", True, 0)
            assert dry["would_deliver"]["programs"][program]["send"] > 0
            assert logged_per_program(world, crashed) == {}
    finally:
        world.engine.dispose()


@pytest.mark.parametrize("kind", ["local", "sftp"])
def test_a_dry_run_after_a_crash_whose_folder_the_state_took_reports_it_presumed_arrived(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The batch was published and the state took its folder before the next run looked:
    the real run logs it as presumed arrived under the crashed run and sends the program's
    whole snapshot again; the dry run says both, and removes nothing."""
    world = small_world(tmp_path)
    try:
        with KINDS[kind](world, tmp_path, monkeypatch) as dest:
            crashed = crash(world, monkeypatch, bytes_left=True)
            assert dest.root is not None
            (folder,) = [p.parent for p in dest.root.glob("*/*/manifest.json")]
            shutil.rmtree(folder)  # the state took it
            dry, real = dry_run_then_real(world, dest, tmp_path)
            assert_dry_run_said_what_the_real_run_did(world, dry, real, crashed)
            program = folder.name
            assert dry["would_settle"]["programs"][program]["outcome"] == "presumed"
            assert dry["would_deliver"]["programs"][program]["send"] > 0, "the snapshot again"
            assert "presumed arrived" in real["reconciled"][program]
    finally:
        world.engine.dispose()


def dead_pid() -> int:
    """The id of a process that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def crash_unfinished(world: World, monkeypatch: pytest.MonkeyPatch, *, how: str) -> str:
    """Night 1 killed at its first program after the destination took the batch and before
    it was logged, and nothing of it after (no ``finish``): its row stays ``running``, as a
    ``kill -9`` of ``datashare run`` leaves it (``process-gone``: its owner is a process that
    has exited) or as a lost worker leaves it (``stale``: no sign of life for longer than the
    destination's ``stale_after``). Returns the crashed run."""
    plan = plan_run("dest", DEMO_DATE, settings=world.settings)
    with monkeypatch.context() as patch:
        n.kill_before_logging(patch)
        with pytest.raises(Killed):
            for program in [p for shard in plan["shards"] for p in shard]:
                prepared = prepare_program(plan, program, world.settings)
                deliver_program(plan, prepared, world.settings)
    crashed = plan["run_id"]
    with world.engine.begin() as connection:
        summary = connection.scalar(select(Run.summary).where(Run.id == crashed))
        if how == "process-gone":
            me = {"host": socket.gethostname(), "pid": dead_pid(), "in_process": True}
            values: dict[str, Any] = {"summary": {**summary, "owner": me}}
        else:
            gone = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
            elsewhere = {"host": "another-worker", "pid": 1, "in_process": False}
            values = {
                "heartbeat_at": gone, "started_at": gone, "summary": {**summary, "owner": elsewhere}
            }  # fmt: skip
        connection.execute(update(Run).where(Run.id == crashed).values(**values))
        rows = connection.execute(select(Delivery.run_id, Delivery.status)).all()
    assert [tuple(r) for r in rows] == [(crashed, "pending")], "one delivery left open"
    assert world.disclosures().empty, "nothing logged"
    return crashed


def run_row(world: World, run_id: str) -> dict[str, Any]:
    """Every column of a run's row."""
    with world.engine.connect() as connection:
        table = Run.__table__
        return dict(connection.execute(select(table).where(table.c.id == run_id)).one()._mapping)


@pytest.mark.parametrize("how", ["process-gone", "stale"])
@pytest.mark.parametrize("kind", ["local", "staging_db"])
def test_a_dry_run_after_a_crash_left_running_marks_nothing_and_says_what_it_would_abandon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, how: str
) -> None:
    """The crashed run is still ``running`` (nothing finished it). The dry run leaves its
    row exactly as it is (status, end, summary: it is not marked abandoned by a dry run),
    says it would mark it abandoned, and previews the settlement of its open delivery as the
    real run does once it has marked it; the real run then marks it abandoned itself."""
    world = small_world(tmp_path)
    try:
        with KINDS[kind](world, tmp_path, monkeypatch) as dest:
            crashed = crash_unfinished(world, monkeypatch, how=how)
            assert dest.held() > 0, "the crashed run's batch is at the destination"
            before = run_row(world, crashed)
            assert (before["status"], before["finished_at"]) == ("running", None)

            def untouched(dry: dict[str, Any]) -> None:
                assert run_row(world, crashed) == before, "the crashed run's row is unchanged"
                assert dry["would_abandon"] == [crashed]
                with world.engine.connect() as connection:
                    mine = connection.scalar(select(Run.summary).where(Run.id == dry["run_id"]))
                assert mine["would_abandon"] == [crashed] and "abandoned_runs" not in mine
                assert f"would mark abandoned {crashed}" in printed(dry)

            dry, real = dry_run_then_real(world, dest, tmp_path, after_dry=untouched)
            assert_dry_run_said_what_the_real_run_did(world, dry, real, crashed)
            (program,) = dry["would_settle"]["programs"]
            assert dry["would_settle"]["programs"][program]["outcome"] == "arrived"
            assert real["deliveries"][program] == "unchanged", "not sent again"
            assert "would_abandon" not in real
            with world.engine.connect() as connection:
                status, finished, summary = connection.execute(
                    select(Run.status, Run.finished_at, Run.summary).where(Run.id == crashed)
                ).one()
            assert status == "abandoned" and finished is not None
            assert summary["abandoned_by"] == real["run_id"], "by the real run, not the dry one"
    finally:
        world.engine.dispose()


class DeleteFailed(Exception):
    """The staging database's delete fails right after its batch was committed."""


@pytest.mark.parametrize("seam", ["after_deleting", "at_the_delete"])
def test_a_dry_run_after_a_staging_crash_with_deletions_reports_what_the_real_run_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seam: str
) -> None:
    """Night 2 corrects one child, revokes another's consent and moves a third child's
    parent statement (an old copy to delete); it dies after its deletions, before logging,
    or at the delete itself. The dry run of night 3 says what the real one then logs under
    night 2 (the correction, and the deletions night 2 made) and what it does itself (the
    withdrawal and the old copy night 2 did not delete), and deletes nothing."""
    world = make_world(f"sqlite:///{tmp_path / 'program.db'}", tmp_path, children=60)
    n.write_agreement(world)
    url = f"sqlite:///{tmp_path / 'staging.db'}"
    try:
        corrected, revoked, moved = n.control(world, 3)
        n.set_statement(world, moved, "race")
        n.staging_destination(world, url, monkeypatch)
        assert world.run("state", run_date=n.night(1))["status"] == "success"

        def failing(self: Any, *args: Any, **kwargs: Any) -> Any:
            raise DeleteFailed

        with monkeypatch.context() as patch:
            if seam == "after_deleting":
                n.kill_before_logging(patch)
            else:
                patch.setattr(StagingDbDestination, "delete_rows", failing)
            n.set_middle(world, corrected, "Bea")
            n.revoke(world, revoked, n.night(2))
            n.set_statement(world, moved, "sex")
            with pytest.raises((Killed, DeleteFailed)):
                world.run("state", run_date=n.night(2))
        with world.engine.connect() as connection:
            (crashed,) = connection.scalars(select(Run.id).where(Run.run_date == n.night(2)))
        staging = sqlite_content(tmp_path / "staging.db")
        dest = Dest(None, lambda: len(n.held_by_staging(url)), staging)
        dry, real = dry_run_then_real(world, dest, tmp_path, "state", n.night(3))
        assert_dry_run_said_what_the_real_run_did(world, dry, real, crashed)
        said = dry["would_settle"]["programs"][n.PROGRAM]
        assert said["outcome"] == "arrived" and said["logged"] == 2
        if seam == "after_deleting":
            assert (said["deleted"], said["old_copies"]) == (2, 0)
        else:
            assert (said["deleted"], said["old_copies"]) == (0, 1)
            assert dry["would_deliver"]["programs"][n.PROGRAM]["withdraw"] == 1
        assert set(n.held_by_staging(url)) == {corrected, moved}
    finally:
        world.engine.dispose()


def sqlite_content(path: Path) -> Any:
    """Everything a SQLite staging database holds, table by table."""

    def content() -> dict[str, list[tuple[Any, ...]]]:
        with sqlite3.connect(path) as connection:
            names = [
                t
                for (t,) in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"
                )
            ]
            return {
                t: sorted(map(tuple, connection.execute(f'SELECT * FROM "{t}"')), key=repr)
                for t in names
            }

    return content
