"""The state's copy is right after every night, for every destination type (issue 9).

Table-driven: each scenario (a correction that reverts, a revocation, a consent that expires
so the child leaves the agreement's scope, natural-key changes) is three nights of changes to
one in-play child of a controlled world (:mod:`tests.pipelines.submission.nights`). After each
night the destination — a local folder, a real SFTP server on loopback, a PostgreSQL staging
database, the Ed-Fi contract server — holds what the scenario expects for that child, exactly
the children the agreement permits, and exactly what the disclosure log's latest entry per
child says (``disclose``: held, with the logged digest for file drops; ``delete``: not held);
the logged field list names parent statements sent, and for Ed-Fi the resource of each field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import reset_schema
from tests.edfi.contract_server import EdfiContractServer
from tests.pipelines.submission import nights as n
from tests.pipelines.submission.conftest import World, make_world
from tests.sftp_server import PASSWORD, USERNAME, SftpTestServer

CHILDREN = 60
IN_PLAY = 3


@dataclass(frozen=True)
class Night:
    """What happens to the acted child before the night's run, and what the destination must
    then hold for it: ``middle`` (None: the child is not held), statements' fields (file drops
    and staging database) and the school association's entry date (staging database, Ed-Fi)."""

    edits: tuple[tuple[str, Any], ...]
    middle: str | None
    statements: tuple[str, ...] = ()
    entry: str | None = None


ENTRY_1, ENTRY_2 = "2026-08-24", "2026-09-08"
SCENARIOS = {
    "a_b_a": [
        Night((("middle", "Ann"), ("entry", ENTRY_1)), "Ann", entry=ENTRY_1),
        Night((("middle", "Bea"),), "Bea", entry=ENTRY_1),
        Night((("middle", "Ann"),), "Ann", entry=ENTRY_1),
    ],
    "revocation": [
        Night((("middle", "Ann"), ("entry", ENTRY_1)), "Ann", entry=ENTRY_1),
        Night((("revoke", 2),), None),
        Night((("reconsent", 3),), "Ann", entry=ENTRY_1),
    ],
    "out_of_scope": [
        Night((("middle", "Ann"), ("entry", ENTRY_1)), "Ann", entry=ENTRY_1),
        Night((("expire", 1),), None),
        Night((("reconsent", 3),), "Ann", entry=ENTRY_1),
    ],
    "natural_key_change": [
        Night(
            (("middle", "Ann"), ("entry", ENTRY_1), ("statement", "race")),
            "Ann",
            ("race",),
            ENTRY_1,
        ),
        Night((("entry", ENTRY_2), ("statement", "ethnicity")), "Ann", ("ethnicity",), ENTRY_2),
        Night((("statement", None),), "Ann", (), ENTRY_2),
    ],
}
EDITS: dict[str, Callable[..., None]] = {
    "middle": n.set_middle,
    "statement": n.set_statement,
    "revoke": lambda world, key, night: n.revoke(world, key, n.night(night)),
    "expire": lambda world, key, night: n.expire(world, key, n.night(night)),
    "reconsent": lambda world, key, night: n.reconsent(world, key, n.night(night)),
    "entry": lambda world, key, value: n.set_entry_date(world, key, dt.date.fromisoformat(value)),
}


@pytest.fixture
def small_world(tmp_path: Path) -> Iterator[World]:
    world = make_world(f"sqlite:///{tmp_path / 'program.db'}", tmp_path, children=CHILDREN)
    n.write_agreement(world)
    yield world
    world.engine.dispose()


class Destination:
    """One destination type under test: configures itself and reads what it holds."""

    kind: str
    files = True

    def __init__(self, world: World, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.world = world

    def held(self) -> tuple[dict[n.ChildKey, n.Holding], set[n.ChildKey]]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop what the destination started."""


class Local(Destination):
    kind = "local"

    def __init__(self, world: World, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        super().__init__(world, tmp_path, request)
        self.root = tmp_path / "drop"
        world.destination(
            "state",
            type="local",
            recipient="MO-DESE",
            agreements=[n.AGREEMENT],
            formats=n.FILES,
            local={"root": str(self.root)},
        )

    def held(self) -> tuple[dict[n.ChildKey, n.Holding], set[n.ChildKey]]:
        return n.held_by_files(self.root)


class Sftp(Local):
    kind = "sftp"

    def __init__(self, world: World, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.world = world
        server_root = tmp_path / "sftp-root"
        (server_root / "incoming").mkdir(parents=True)
        self.server = SftpTestServer(server_root).start()
        self.root = server_root / "incoming"
        known = tmp_path / "known_hosts"
        known.write_text(self.server.known_hosts_line())
        request.getfixturevalue("monkeypatch").setenv("TEST_SFTP_PASSWORD", PASSWORD)
        world.destination(
            "state",
            type="sftp",
            recipient="MO-DESE",
            agreements=[n.AGREEMENT],
            formats=n.FILES,
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


class Staging(Destination):
    kind = "staging_db"
    files = False

    def __init__(self, world: World, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        super().__init__(world, tmp_path, request)
        self.url = request.getfixturevalue("staging_pg_url")
        engine = create_engine(self.url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        n.staging_destination(world, self.url, request.getfixturevalue("monkeypatch"))

    def held(self) -> tuple[dict[n.ChildKey, n.Holding], set[n.ChildKey]]:
        return n.held_by_staging(self.url), set()

    def close(self) -> None:
        """Empty the worker's staging database again: later tests of the worker expect it
        empty."""
        reset_schema(self.url)


class Edfi(Destination):
    kind = "edfi"
    files = False

    def __init__(self, world: World, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        super().__init__(world, tmp_path, request)
        self.server = EdfiContractServer(5).__enter__()
        world.edfi_destination(
            "state",
            self.server.base_url,
            request.getfixturevalue("monkeypatch"),
            agreement=n.AGREEMENT,
            concurrency=2,
        )

    def held(self) -> tuple[dict[n.ChildKey, n.Holding], set[n.ChildKey]]:
        return n.held_by_edfi(self.server, self.world), set()

    def close(self) -> None:
        self.server.__exit__(None, None, None)


KINDS = [
    pytest.param(Local, id="local"),
    pytest.param(Sftp, id="sftp"),
    pytest.param(Staging, id="staging_db", marks=pytest.mark.postgres),
    pytest.param(Edfi, id="edfi"),
]


def assert_copy_matches_log(
    destination: Destination, permitted: set[n.ChildKey], run_ids: list[str]
) -> dict[n.ChildKey, n.Holding]:
    """The destination holds exactly the permitted children, and exactly what the log's
    latest entry per child says."""
    held, withdrawn = destination.held()
    log = n.latest(destination.world, run_ids)
    assert set(held) == permitted
    disclosed = {k for k, e in log.items() if e.action == "disclose"}
    assert disclosed == set(held), "held = latest entry is a disclosure"
    for key, entry in log.items():
        if entry.action == "delete":
            assert key not in held
    if destination.files:
        for key, holding in held.items():
            assert holding.digest == log[key].digest, "the log's digest is of what is held"
        deleted_tonight = {k for k, e in log.items() if e.action == "delete"}
        assert withdrawn <= deleted_tonight
    return held


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("kind", KINDS)
def test_after_every_night_the_destination_holds_what_the_agreement_permits_and_the_log_says(
    small_world: World,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    kind: type[Destination],
    scenario: str,
) -> None:
    world = small_world
    in_play = n.control(world, IN_PLAY)
    acted = in_play[0]
    destination = kind(world, tmp_path, request)
    permitted = set(in_play)
    run_ids: list[str] = []
    try:
        for number, expected in enumerate(SCENARIOS[scenario], start=1):
            for name, value in expected.edits:
                EDITS[name](world, acted, value)
            if expected.middle is None:
                permitted.discard(acted)
            else:
                permitted.add(acted)
            summary = world.run("state", run_date=n.night(number))
            assert summary["status"] == "success", summary["programs"]
            run_ids.append(summary["run_id"])
            held = assert_copy_matches_log(destination, permitted, run_ids)
            if expected.middle is None:
                assert acted not in held
                log = n.latest(world, run_ids)
                assert log[acted].action == "delete"
                if destination.files:
                    assert acted in destination.held()[1], "named in tonight's withdrawals file"
                continue
            assert held[acted].middle == expected.middle
            if kind is not Edfi:
                assert sorted(held[acted].statements) == sorted(expected.statements)
            if kind in (Staging, Edfi) and expected.entry is not None:
                assert held[acted].entry_dates == [expected.entry], "no stale old copy"
            for other in in_play[1:]:
                assert other in held
            fields = n.latest(world, run_ids)[acted].fields
            if kind is Edfi and scenario == "a_b_a" and number > 1:
                # only the student resource carried the corrected middle name tonight
                assert "students:middle_name" in fields
                assert all(f.startswith("students:") for f in fields), fields
            if kind is not Edfi:
                statements = {f"parent_statement:{f}" for f in expected.statements}
                assert statements == {f for f in fields if f.startswith("parent_statement:")}
    finally:
        destination.close()


@pytest.mark.parametrize(
    ("resend", "second_night", "logged_again"),
    [
        ("changes", 2, 0),  # nothing differs: nothing sent, nothing logged
        ("full", 2, IN_PLAY),  # everything sent again on a new date: a new disclosure each
        ("full", 1, 0),  # the same content again on the same date: the same disclosure
    ],
    ids=["changes-next-night", "full-next-night", "full-same-night"],
)
def test_resend_full_sends_everything_every_night_and_changes_nothing_when_nothing_differs(
    small_world: World, tmp_path: Path, resend: str, second_night: int, logged_again: int
) -> None:
    world = small_world
    in_play = n.control(world, IN_PLAY)
    root = tmp_path / "drop"
    world.destination(
        "state",
        type="local",
        recipient="MO-DESE",
        agreements=[n.AGREEMENT],
        formats=n.FILES,
        resend=resend,
        local={"root": str(root)},
    )
    first = world.run("state", run_date=n.night(1))
    second = world.run("state", run_date=n.night(second_night))
    folders = sorted(p.parent.parent.name for p in root.glob(f"*/{n.PROGRAM}/manifest.json"))
    assert first["children"]["logged"] == IN_PLAY
    assert second["children"]["logged"] == logged_again
    log = world.disclosures()
    assert not log.duplicated(["program_code", "child_local_id", "run_date", "action"]).any()
    if resend == "full":
        assert folders == sorted({str(n.night(1)), str(n.night(second_night))})
        assert second["deliveries"][n.PROGRAM] != "unchanged", "full: sent every night"
    else:
        assert folders == [str(n.night(1))]
        assert second["deliveries"][n.PROGRAM] == "unchanged"
    held, _ = n.held_by_files(root)
    assert set(held) == set(in_play)


def test_a_second_destination_of_the_same_recipient_logs_its_own_copy(
    small_world: World, tmp_path: Path
) -> None:
    """Two systems of one recipient, same content, same night: each holds a copy, so each
    copy has its entries (a same-day repeat is one disclosure only within one destination)."""
    world = small_world
    in_play = n.control(world, IN_PLAY)
    for name in ("state-a", "state-b"):
        world.destination(
            name,
            type="local",
            recipient="MO-DESE",
            agreements=[n.AGREEMENT],
            formats=n.FILES,
            resend="full",
            local={"root": str(tmp_path / name)},
        )
    first = world.run("state-a", run_date=n.night(1))
    second = world.run("state-b", run_date=n.night(1))
    assert first["children"]["logged"] == IN_PLAY
    assert second["children"]["logged"] == IN_PLAY
    for name in ("state-a", "state-b"):
        held, _ = n.held_by_files(tmp_path / name)
        assert set(held) == set(in_play)
