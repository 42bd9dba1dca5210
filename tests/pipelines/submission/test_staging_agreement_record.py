"""A staging database remembers the agreement and formats it was first written under.

The load-time check (rule ``staging_db_one_agreement``) sees the files of one folder only: a
file replaced by another name under another agreement (or a file on another host) is not
there to compare with. The database's own record is: such a run stops at plan, each program
``destination_refused`` with rule ``staging_db_agreement_changed``, naming the destination and
the database (host and name only); nothing is written, taken over or logged, a dry run
included; after the operator's ``datashare destinations rebaseline NAME`` the run goes.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from pipelines.commands.destinations import app
from pipelines.destinations.staging_db import MARKER_TABLE
from tests.conftest import reset_schema
from tests.pipelines.submission import nights as n
from tests.pipelines.submission.conftest import World
from tests.pipelines.submission.test_state_copy_staging import small_world, staging_url
from tests.pipelines.writers_at_once import advisory_waiters, in_thread

__all__ = ["small_world", "staging_url"]  # fixtures

NARROW = "mo-dese-state-copy-narrow"


def narrow_agreement(world: World) -> None:
    """The state-copy agreement without the middle name, under another id."""
    path = world.config / "agreements" / f"{n.AGREEMENT}.yaml"
    data = yaml.safe_load(path.read_text())
    data["id"] = NARROW
    data["fields"] = {k: v for k, v in data["fields"].items() if k != "middle_name"}
    (path.parent / f"{NARROW}.yaml").write_text(yaml.safe_dump(data))


def markers(url: str) -> list[tuple[str, str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            query = text(f"SELECT destination, batch_digest FROM {MARKER_TABLE} ORDER BY id")
            return [(str(d), str(b)) for d, b in connection.execute(query)]
    finally:
        engine.dispose()


def where(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite file {parsed.database}"
    return f"host {parsed.host}:{parsed.port or 5432}, database {parsed.database}"


# id, the later file's name, its agreement, its formats (None: the same), what differs
CHANGES = [
    ("renamed-other-agreement", "narrow", NARROW, None, "agreements"),
    ("same-name-other-agreement", "state", NARROW, None, "agreements"),
    ("renamed-fewer-formats", "narrow", n.AGREEMENT, 2, "formats"),
]


@pytest.mark.parametrize(
    ("name", "agreement", "formats", "differs"), [pytest.param(*c[1:], id=c[0]) for c in CHANGES]
)
def test_a_destination_under_another_agreement_stops_at_plan_until_rebaselined(
    small_world: World,
    staging_url: str,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    agreement: str,
    formats: int | None,
    differs: str,
) -> None:
    world = small_world
    children = n.control(world, 2)
    narrow_agreement(world)
    n.staging_destination(world, staging_url, monkeypatch, "state")
    first = world.run("state", run_date=n.night(1))
    assert first["status"] == "success", first.get("stop_lines")
    assert set(n.held_by_staging(staging_url)) == set(children)

    folder = world.config / "destinations"
    (folder / "state.yaml").unlink()  # one file in the folder: the load check sees no other
    n.staging_destination(world, staging_url, monkeypatch, name)
    data = yaml.safe_load((folder / f"{name}.yaml").read_text())
    data["agreements"] = [agreement]
    if formats is not None:
        data["formats"] = data["formats"][:formats]
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))
    before = markers(staging_url), n.held_by_staging(staging_url)
    logged = len(world.disclosures())

    for dry_run in (True, False):
        summary = world.run(name, run_date=n.night(2), dry_run=dry_run)
        assert summary["status"] == "failed"
        assert summary["programs"]["processed"] == []
        assert n.PROGRAM in summary["programs"]["stopped"]
        for line in summary["stop_lines"]:
            assert "stopped at plan (destination_refused)" in line, line
            assert "rule staging_db_agreement_changed" in line, line
            assert f"destination {name}" in line and where(staging_url) in line, line
            assert differs in line, line
            assert f"datashare destinations rebaseline {name}" in line, line
            assert "postgres@" not in line, line
        assert (markers(staging_url), n.held_by_staging(staging_url)) == before, "no write"
        assert len(world.disclosures()) == logged, "nothing logged"

    monkeypatch.setenv("DATASHARE_CONFIG_DIR", str(world.config))
    result = CliRunner().invoke(app, ["rebaseline", name])
    assert result.exit_code == 0, result.output
    assert "now records" in result.output and where(staging_url) in result.output

    again = world.run(name, run_date=n.night(3))
    assert again["status"] == "success", again.get("stop_lines")
    assert n.PROGRAM in again["programs"]["processed"], again["programs"]
    assert set(n.held_by_staging(staging_url)) == set(children)


@pytest.mark.postgres
def test_two_runs_of_two_names_at_once_on_postgresql_take_turns_at_the_database(
    small_world: World, staging_pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real runs, files ``a`` and ``b`` on one PostgreSQL staging database, the same
    agreement: ``a`` is held inside its batch transaction; ``b``, planned meanwhile (it sees
    nothing of ``a`` yet), waits on the database's advisory lock, then finds ``a``'s batch
    there and writes nothing: one marker, both runs succeed, the tables hold what the
    agreement permits."""
    from pipelines.destinations.staging_db import StagingDbDestination

    url = reset_schema(staging_pg_url)
    world = small_world
    children = n.control(world, 2)
    for name in ("a", "b"):
        n.staging_destination(world, url, monkeypatch, name)
    inside, go = threading.Event(), threading.Event()
    real = StagingDbDestination._latest_digest

    def held(self: StagingDbDestination, *args: Any, **kwargs: Any) -> Any:
        found = real(self, *args, **kwargs)
        if self.name == "a" and not go.is_set():
            inside.set()
            assert go.wait(120), "never released"
        return found

    monkeypatch.setattr(StagingDbDestination, "_latest_digest", held)
    run_a, out_a = in_thread(lambda: world.run("a", run_date=n.night(1)))
    try:
        assert inside.wait(120), "a never reached its batch transaction"
        run_b, out_b = in_thread(lambda: world.run("b", run_date=n.night(1)))
        for _ in range(1200):  # b waits on the lock (now) or runs to its end (before)
            if advisory_waiters(url) or not run_b.is_alive():
                break
            run_b.join(0.1)
        waited = run_b.is_alive()
    finally:
        go.set()
        run_a.join(120)
    run_b.join(120)
    assert waited, "b did not wait for a's batch transaction"
    for out in (out_a, out_b):
        assert "error" not in out, out
        assert out["result"]["status"] == "success", out["result"].get("stop_lines")
    assert [d for d, _ in markers(url)] == ["a"], "b wrote a's batch again"
    assert set(n.held_by_staging(url)) == set(children)
    reset_schema(url)
