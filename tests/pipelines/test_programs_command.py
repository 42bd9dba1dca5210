"""``datashare programs``: list, participate, withdraw, opt-in, opt-out, on both backends."""

from __future__ import annotations

from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.db import make_engine, session_scope
from privacy.participation import current_participation
from tests.privacy.builders import RUN
from tests.privacy.test_participation import AIAN, HS, OTHER, SEDS, seed

runner = CliRunner()


def invoke(db_url: str, *args: str) -> tuple[int, str]:
    args_ = ["programs", *args, "--database-url", db_url]
    result = runner.invoke(app, args_, env={"COLUMNS": "250"})
    return result.exit_code, result.output


def seeded(db_url: str) -> str:
    engine = make_engine(db_url)
    with session_scope(engine) as session:
        seed(session)
    engine.dispose()
    return db_url


def test_changes_are_recorded_and_listed_with_who_when_why(db_url: str) -> None:
    url = seeded(db_url)
    steps = [
        ("participate", HS, SEDS, "--by", "Policy Council", "--date", "2026-01-05"),
        ("participate", AIAN, SEDS, "--by", "Tribal Council", "--date", "2026-01-05"),
        ("opt-in", AIAN, "--authority", "Tribal Council Resolution 2026-14", "--scope",
         "aggregate", "--exclude-field", "race", "--by", "Tribal Council", "--date",
         "2026-02-01"),
        ("withdraw", HS, SEDS, "--by", "Director", "--date", "2026-11-27", "--reason", "audit"),
    ]  # fmt: skip
    for step in steps:
        code, output = invoke(url, *step)
        assert code == 0, output
        assert output.startswith("Recorded:")
    code, output = invoke(url, "list", "--date", "2026-11-26")
    assert code == 0, output
    assert f"{SEDS}: participating since 2026-01-05" in output
    assert "opt-in aggregate by Tribal Council Resolution 2026-14" in output
    assert "excludes race" in output
    code, output = invoke(url, "list", "--date", "2026-11-27", "--history")
    assert f"{SEDS}: withdrawn since 2026-11-27 (by Director)" in output
    assert "Participation changes" in output and "audit" in output and "all" in output
    engine = make_engine(url)
    with session_scope(engine) as session:
        status = current_participation(session, SEDS, RUN)
    engine.dispose()
    assert not status[HS].shares and status[AIAN].shares


def test_opt_out_stops_the_run_of_its_date(db_url: str) -> None:
    url = seeded(db_url)
    invoke(url, "participate", AIAN, OTHER, "--by", "Council", "--date", "2026-01-01")
    invoke(url, "opt-in", AIAN, "--authority", "Res 1", "--scope", "record", "--by", "Council",
           "--recipient", OTHER, "--date", "2026-01-01")  # fmt: skip
    code, output = invoke(url, "opt-out", AIAN, "--by", "Council", "--reason", "review",
                          "--date", "2026-11-27")  # fmt: skip
    assert code == 0, output
    _, listed = invoke(url, "list", "--date", "2026-11-26")
    assert "opt-in record by Res 1" in listed
    _, listed = invoke(url, "list", "--date", "2026-11-27")
    assert "no opt-in: shares nothing" in listed


def test_refusals_are_clear_and_change_nothing(db_url: str) -> None:
    url = seeded(db_url)
    cases = [
        (("opt-in", HS, "--authority", "x", "--scope", "record", "--by", "me"), "not AIAN"),
        (("participate", "NOPE-01", SEDS, "--by", "me"), "unknown program NOPE-01"),
        (("participate", HS, "NOPE", "--by", "me"), "unknown recipient NOPE"),
        (("opt-out", AIAN, "--by", "me", "--reason", " "), "reason"),
    ]
    for args, message in cases:
        code, output = invoke(url, *args)
        assert code == 1 and message in output, output
    _, listed = invoke(url, "list", "--history")
    assert "not registered with any recipient" in listed
    assert "participate" not in listed.split("Participation changes")[1]


def test_when_scope_is_not_a_choice_then_usage_error(db_url: str) -> None:
    code, output = invoke(seeded(db_url), "opt-in", AIAN, "--authority", "x", "--scope", "all",
                          "--by", "me")  # fmt: skip
    assert code == 2 and "scope" in output


def test_an_opt_in_without_authority_is_listed_as_not_the_programs_decision(db_url: str) -> None:
    import datetime as dt

    import numpy as np
    from sqlalchemy import select

    from pipelines.demo.load import insert_unchecked
    from schemas import Base, Program

    url = seeded(db_url)
    invoke(url, "participate", AIAN, SEDS, "--by", "Tribal Council", "--date", "2026-01-05")
    engine = make_engine(url)
    with engine.begin() as conn:  # as an import wrote it before the registry's constraint
        program = conn.scalar(select(Program.id).where(Program.code == AIAN))
        row = {
            "id": 99,
            "program_id": program,
            "recipient_id": None,
            "action": "opt_in",
            "effective_date": dt.date(2026, 2, 1),
            "decided_by": "enrollment import",
            "authority": None,
            "scope": "record",
            "excluded_fields": [],
            "reason": None,
            "recorded_at": dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
            "recorded_by": None,
        }
        columns = {k: np.array([v], dtype=object) for k, v in row.items()}
        insert_unchecked(conn, Base.metadata.tables["participation_events"], columns)
    engine.dispose()
    code, output = invoke(url, "list", "--date", "2026-11-27", "--history")
    assert code == 0, output
    assert "opt-in on file lacks authority, recorded_by" in output
    assert "aian_opt_in_incomplete" in output and "incomplete: lacks authority" in output
