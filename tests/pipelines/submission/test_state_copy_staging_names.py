"""One staging database, two destination names: a destination renamed in config, and two
destination files pointing at the same database.

The staging database keeps a marker per batch (and per deletion) naming the destination that
wrote it; the program database keeps, per destination name, what that destination holds. A
renamed destination used to start from nothing: it resent everything and never withdrew a
child the database still held from before the rename. Two files on one database each skipped a
batch equal to their own latest marker although the other had deleted those rows since. Here,
night by night through the submission, on SQLite and PostgreSQL: after every run the tables
hold exactly what the agreement permits (the oracle: the test's own model of the controlled
world) and exactly the children whose latest disclosure-log entry is a disclosure.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.orm import Session

from pipelines.destinations.registry import DestinationConfigError
from privacy.participation import record_change
from schemas import DeliveredRecord, Delivery
from schemas.codes import ParticipationAction
from tests.pipelines.submission import nights as n
from tests.pipelines.submission.conftest import World
from tests.pipelines.submission.nights import Killed
from tests.pipelines.submission.test_state_copy_staging import (
    crashed_run_id,
    small_world,
    staging_url,
)

__all__ = ["small_world", "staging_url"]  # fixtures


def assert_copy_is_right(world: World, url: str, permitted: set[n.ChildKey], when: str) -> None:
    held = set(n.held_by_staging(url))
    assert held == permitted, f"{when}: the tables hold what the agreement permits"
    disclosed = {k for k, e in n.latest(world).items() if e.action == "disclose"}
    assert disclosed == held, f"{when}: the tables hold what the log says was disclosed"


def rename(world: World, old: str, new: str) -> None:
    """The destination file ``old`` renamed ``new`` (same content)."""
    folder = world.config / "destinations"
    (folder / f"{old}.yaml").rename(folder / f"{new}.yaml")


def test_a_renamed_destination_withdraws_what_the_database_held_before_the_rename(
    small_world: World, staging_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = small_world
    children = n.control(world, 3)
    revoked = children[1]
    n.staging_destination(world, staging_url, monkeypatch, "state")
    first = world.run("state", run_date=n.night(1))
    assert first["status"] == "success", first["programs"]
    assert_copy_is_right(world, staging_url, set(children), "night 1")

    rename(world, "state", "state-copy")
    n.revoke(world, revoked, n.night(2))
    second = world.run("state-copy", run_date=n.night(2))
    assert second["status"] == "success", second["programs"]
    assert_copy_is_right(world, staging_url, set(children) - {revoked}, "night 2, renamed")
    tonight = world.disclosures()
    tonight = tonight.loc[tonight["run_id"] == second["run_id"]]
    assert list(zip(tonight["child_local_id"], tonight["action"], strict=True)) == [
        (revoked[1], "delete")
    ], "the rename resends nothing the database holds; it withdraws the revoked child"

    n.reconsent(world, revoked, n.night(3))
    third = world.run("state-copy", run_date=n.night(3))
    assert third["status"] == "success", third["programs"]
    assert_copy_is_right(world, staging_url, set(children), "night 3, re-consented")


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")], ids=["a_first", "b_first"])
def test_two_destinations_on_one_database_keep_its_copy_and_the_log_equal(
    small_world: World, staging_url: str, monkeypatch: pytest.MonkeyPatch, order: tuple[str, str]
) -> None:
    """One in-play child, so every batch of it is the very batch last sent: night 2 one file
    deletes it, night 3 (re-consented) the other must write it again, not skip it because its
    own latest marker is that batch."""
    world = small_world
    (child,) = n.control(world, 1)
    for name in ("a", "b"):
        n.staging_destination(world, staging_url, monkeypatch, name)
    nights = [(1, None, {child}), (2, "revoke", set()), (3, "reconsent", {child})]
    for number, event, permitted in nights:
        if event == "revoke":
            n.revoke(world, child, n.night(number))
        elif event == "reconsent":
            n.reconsent(world, child, n.night(number))
        names = order if number != 3 else order[::-1]
        for name in names:
            summary = world.run(name, run_date=n.night(number))
            assert summary["status"] == "success", summary["programs"]
            assert_copy_is_right(world, staging_url, permitted, f"night {number}, {name}")


def test_a_rename_right_after_a_crash_logs_the_crashed_delivery_once_under_its_own_run(
    small_world: World, staging_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Night 2 under the old name sends one child's correction and dies before logging; the
    file is renamed. Night 3 under the new name settles the old name's open delivery: the
    correction is logged once, under night 2's run and date, nothing is sent again, no
    delivery stays open, and the tables match the log."""
    world = small_world
    children = n.control(world, 3)
    corrected = children[0]
    n.staging_destination(world, staging_url, monkeypatch, "state")
    first = world.run("state", run_date=n.night(1))
    assert first["status"] == "success", first["programs"]

    with monkeypatch.context() as patch:
        n.kill_before_logging(patch)
        n.set_middle(world, corrected, "Bea")
        with pytest.raises(Killed):
            world.run("state", run_date=n.night(2))
    crashed = crashed_run_id(world, n.night(2))
    assert n.held_by_staging(staging_url)[corrected].middle == "Bea", "the batch was committed"

    rename(world, "state", "state-copy")
    third = world.run("state-copy", run_date=n.night(3))

    assert third["status"] == "success", third.get("stop_lines")
    log = world.disclosures()
    mine = log.loc[(log["child_local_id"] == corrected[1]) & (log["action"] == "disclose")]
    assert mine["run_id"].tolist() == [first["run_id"], crashed], "once, under the crashed run"
    assert mine["run_date"].tolist() == [n.night(1), n.night(2)], "with the crashed run's date"
    tonight = log.loc[log["run_id"] == third["run_id"]]
    assert tonight.empty, "the new name sends and logs nothing the database already holds"
    with world.engine.connect() as connection:
        statuses = set(connection.scalars(select(Delivery.status)))
    assert statuses <= {"logged", "unchanged"}, f"no delivery left open: {statuses}"
    assert crashed in third["reconciled"][n.PROGRAM], third["reconciled"]
    assert_copy_is_right(world, staging_url, set(children), "night 3, renamed after a crash")
    assert n.held_by_staging(staging_url)[corrected].middle == "Bea"


def test_two_destinations_on_one_database_under_different_agreements_are_refused_before_writing(
    small_world: World, staging_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second file on the same database carries another agreement (no middle name): each
    run is refused where its file is loaded, naming both files and the rule, and nothing is
    written to the staging database or logged."""
    world = small_world
    n.control(world, 2)
    path = world.config / "agreements" / f"{n.AGREEMENT}.yaml"
    data = yaml.safe_load(path.read_text())
    data["id"] = "mo-dese-state-copy-narrow"
    data["fields"] = {k: v for k, v in data["fields"].items() if k != "middle_name"}
    (path.parent / "mo-dese-state-copy-narrow.yaml").write_text(yaml.safe_dump(data))
    n.staging_destination(world, staging_url, monkeypatch, "wide")
    n.staging_destination(world, staging_url, monkeypatch, "narrow")
    narrow = world.config / "destinations" / "narrow.yaml"
    narrow.write_text(narrow.read_text().replace(n.AGREEMENT, "mo-dese-state-copy-narrow"))

    for name, other in (("wide", "narrow"), ("narrow", "wide")):
        with pytest.raises(DestinationConfigError) as caught:
            world.run(name, run_date=n.night(1))
        message = str(caught.value)
        assert "rule staging_db_one_agreement" in message
        assert f"{other}.yaml" in message and f"{name}.yaml" in message
    engine = create_engine(staging_url)
    try:
        assert inspect(engine).get_table_names() == [], "nothing was written"
    finally:
        engine.dispose()
    assert world.disclosures().empty, "nothing was logged"


UNREACHABLE = [
    pytest.param("sqlite:///{tmp}/no-such-folder/staging.db", "SQLite file ", id="sqlite"),
    pytest.param(
        "postgresql+psycopg://datashare:s3cr3t-pw@127.0.0.1:1/staging",
        "host 127.0.0.1:1, database staging",
        id="postgresql",
    ),
]


@pytest.mark.parametrize(("template", "where"), UNREACHABLE)
def test_an_unreachable_staging_database_stops_its_programs_at_plan_naming_it(
    small_world: World,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    staging_url: str,
    template: str,
    where: str,
) -> None:
    """The take-over reads the database at plan. Unreachable, the run is still planned and
    closed: each program to process stops at plan (``destination_unavailable``) with a line
    naming the destination and the database (never its password), nothing is sent or logged,
    the skipped programs are reported as always; the next night, reachable, sends."""
    world = small_world
    children = n.control(world, 2)
    n.staging_destination(world, template.format(tmp=tmp_path), monkeypatch, "state")

    summary = world.run("state", run_date=n.night(1))

    assert summary["status"] == "failed"
    assert summary["programs"]["processed"] == [] and n.PROGRAM in summary["programs"]["stopped"]
    assert summary["stop_lines"]
    for line in summary["stop_lines"]:
        assert "stopped at plan (destination_unavailable)" in line, line
        assert "destination state" in line and where in line, line
        assert "s3cr3t-pw" not in line and "datashare:" not in line, line
    assert world.disclosures().empty, "nothing was logged"

    n.staging_destination(world, staging_url, monkeypatch, "state")
    again = world.run("state", run_date=n.night(2))
    assert again["status"] == "success", again.get("stop_lines")
    assert again["programs"]["skipped"] == summary["programs"]["skipped"]
    assert set(n.held_by_staging(staging_url)) == set(children)


def test_a_dry_run_after_a_rename_reports_what_the_real_run_then_does_and_writes_nothing(
    small_world: World, staging_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renamed after night 1, with one child revoked: the dry run under the new name reads
    the take-over view (without taking anything over) and says it would send nothing and
    withdraw that one child, which is what the real run then does."""
    world = small_world
    children = n.control(world, 3)
    revoked = children[1]
    n.staging_destination(world, staging_url, monkeypatch, "state")
    first = world.run("state", run_date=n.night(1))
    assert first["status"] == "success", first["programs"]
    rename(world, "state", "state-copy")
    n.revoke(world, revoked, n.night(2))

    def state_rows() -> list[tuple[str, str, str, str]]:
        with world.engine.connect() as connection:
            return sorted(
                (r.destination, r.program_code, r.child_local_id, r.digest)
                for r in connection.execute(select(DeliveredRecord))
            )

    before = state_rows()
    dry = world.run("state-copy", run_date=n.night(2), dry_run=True)

    assert dry["status"] == "success", dry.get("stop_lines")
    would = dry["would_deliver"]
    assert (would["children_sent"], would["children_withdrawn"]) == (0, 1), would
    assert state_rows() == before, "the dry run took nothing over"
    assert set(n.held_by_staging(staging_url)) == set(children), "and deleted nothing"

    real = world.run("state-copy", run_date=n.night(2))
    assert real["status"] == "success", real.get("stop_lines")
    tonight = world.disclosures().loc[lambda f: f["run_id"] == real["run_id"]]
    actions = list(zip(tonight["child_local_id"], tonight["action"], strict=True))
    assert actions == [(revoked[1], "delete")], "the real run did what the dry run said"
    assert real["rows_deleted"] == would["rows_deleted"]


def test_a_dry_run_after_a_rename_counts_a_stopped_programs_children_as_the_real_run(
    small_world: World, staging_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The program stops taking part after the rename: the dry run lists the children the
    real run withdraws (the take-over view), and takes nothing over."""
    world = small_world
    children = n.control(world, 3)
    n.staging_destination(world, staging_url, monkeypatch, "state")
    first = world.run("state", run_date=n.night(1))
    assert first["status"] == "success", first["programs"]
    rename(world, "state", "state-copy")
    with Session(world.engine) as session, session.begin():
        record_change(
            session,
            n.PROGRAM,
            ParticipationAction.WITHDRAW,
            recipient_code="MO-DESE",
            decided_by="director",
            effective_date=n.night(2),
            reason="program closed",
        )

    dry = world.run("state-copy", run_date=n.night(2), dry_run=True)
    assert dry["programs"]["withdrawing"] == {n.PROGRAM: len(children)}, dry["programs"]
    assert set(n.held_by_staging(staging_url)) == set(children), "the dry run deleted nothing"

    real = world.run("state-copy", run_date=n.night(2))
    assert real["status"] == "success", real.get("stop_lines")
    assert real["programs"]["withdrawing"] == dry["programs"]["withdrawing"]
    assert n.held_by_staging(staging_url) == {}
