"""``datashare audit show|verify`` and ``datashare disclosures`` on a seeded database."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.db import session_scope
from privacy.ledger import (
    LEDGER_KEY_ENV,
    Disclosure,
    Redaction,
    append_disclosures,
    append_redactions,
)
from schemas import Child, Program, Recipient, Run
from schemas.codes import EntityLevel, Ethnicity, ProgramType, Race, RecipientCategory, Sex

WHEN = dt.datetime(2026, 11, 27, 18, 0, tzinfo=dt.UTC)
DAY = dt.date(2026, 11, 27)
PII = ("Zanzibar", "Quixote", "2021-03-14", "1 Elm Street")


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv(LEDGER_KEY_ENV, raising=False)
    return CliRunner(env={"COLUMNS": "250"})


def disclosure(child: str, **changes: object) -> Disclosure:
    values: dict[str, object] = {
        "run_id": "run-1",
        "program_code": "VT-HS-01",
        "child_local_id": child,
        "recipient_code": "VT-AOE",
        "agreement_id": "vt-aoe-2026",
        "legal_basis": "consent",
        "purpose": "kindergarten readiness reporting",
        "fields": ("child_local_id", "race", "enrollment_date"),
        "run_date": DAY,
        "payload_digest": "a" * 64,
        "disclosed_at": WHEN,
    }
    values.update(changes)
    return Disclosure(**values)  # type: ignore[arg-type]


def redaction(subject: str, reason: str, field: str | None = None, **changes: object) -> Redaction:
    values: dict[str, object] = {
        "run_id": "run-1",
        "program_code": "VT-HS-01",
        "subject": subject,
        "agreement_id": "vt-aoe-2026",
        "reason_code": reason,
        "rule": f"rule for {reason}",
        "field": field,
        "recorded_at": WHEN,
    }
    values.update(changes)
    return Redaction(**values)  # type: ignore[arg-type]


@pytest.fixture
def seeded(engine: Engine, db_url: str) -> str:
    with session_scope(engine) as session:
        program = Program(
            code="VT-HS-01",
            grant_number="01CH0001",
            name="Green Mountain Head Start",
            state="VT",
            program_type=ProgramType.HEAD_START,
        )
        session.add(program)
        session.flush()
        session.add(
            Child(
                program_id=program.id,
                local_id="C001",
                first_name="Zanzibar",
                last_name="Quixote",
                birth_date=dt.date(2021, 3, 14),
                sex=Sex.FEMALE,
                race=Race.ASIAN,
                ethnicity=Ethnicity.NOT_HISPANIC,
                address_street="1 Elm Street",
            )
        )
        session.add(
            Recipient(
                code="VT-AOE",
                name="Vermont Agency of Education",
                category=RecipientCategory.STATE_EDUCATION_DATA_SYSTEM,
                entity_level=EntityLevel.STATE,
                state="VT",
            )
        )
        session.add(
            Run(
                id="run-1",
                destination="vt-aoe",
                run_date=DAY,
                status="succeeded",
                started_at=WHEN,
                finished_at=WHEN,
                summary={"disclosed": 2, "withheld": 3, "fields_removed": 2, "note": "x"},
            )
        )
        append_disclosures(
            session,
            [
                disclosure("C001"),
                disclosure("C002"),
                disclosure("C001", action="delete", run_id="run-2", fields=()),
                disclosure("C001", program_code="MO-HS-03", recipient_code="MO-DESE"),
            ],
        )
        append_redactions(
            session,
            [
                redaction("C003", "program_not_registered"),
                redaction("C004", "made_up_code"),
                redaction("C005", "made_up_code"),
                redaction("C001", "made_up_code", "race"),
                redaction("C002", "made_up_code", "race"),
                redaction("C009", "made_up_code", program_code="VT-EHS-02"),
            ],
        )
    return db_url


def invoke(runner: CliRunner, url: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--database-url", url])
    return result.exit_code, result.output


def assert_no_pii(output: str) -> None:
    for value in PII:
        assert value not in output


# -- audit show ----------------------------------------------------------------------------


def test_audit_show_lists_runs_in_every_format(runner: CliRunner, seeded: str) -> None:
    code, table = invoke(runner, seeded, "audit", "show")
    assert code == 0 and "run-1" in table and "succeeded" in table
    assert "disclosed=2 withheld=3 fields_removed=2" in table
    code, out = invoke(runner, seeded, "audit", "show", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["run"] for r in rows] == ["run-1"]
    assert rows[0]["destination"] == "vt-aoe"
    assert rows[0]["rows"] == "rows delivered: none"  # a summary without row counts
    code, out = invoke(runner, seeded, "audit", "show", "--format", "json")
    [run] = json.loads(out)
    assert run["summary"]["withheld"] == 3 and run["status"] == "succeeded"


def test_audit_show_run_groups_by_reason_program_and_agreement(
    runner: CliRunner, seeded: str
) -> None:
    code, out = invoke(runner, seeded, "audit", "show", "--run", "run-1", "--format", "json")
    assert code == 0
    groups = {(g["reason"], g["program"]): g for g in json.loads(out)}
    assert set(groups) == {
        ("made_up_code", "VT-EHS-02"),
        ("made_up_code", "VT-HS-01"),
        ("program_not_registered", "VT-HS-01"),
    }
    made_up = groups[("made_up_code", "VT-HS-01")]
    assert (made_up["children_withheld"], made_up["fields_removed"]) == (2, 2)
    assert made_up["fields"] == "race (2)"
    assert made_up["description"] == "made_up_code"  # unknown code: shown raw
    known = groups[("program_not_registered", "VT-HS-01")]["description"]
    assert "not registered" in known  # described by privacy.reasons
    code, table = invoke(runner, seeded, "audit", "show", "--run", "run-1")
    assert code == 0 and "program_not_registered" in table and "vt-aoe-2026" in table
    assert_no_pii(table)


def test_audit_show_drills_down_to_subjects_fields_and_rules(
    runner: CliRunner, seeded: str
) -> None:
    args = ("audit", "show", "--run", "run-1", "--reason", "made_up_code")
    for fmt in ("table", "csv", "json"):
        code, out = invoke(runner, seeded, *args, "--program", "VT-HS-01", "--format", fmt)
        assert code == 0
        for subject in ("C004", "C005", "C001", "C002"):
            assert subject in out
        assert "C009" not in out and "C003" not in out
        assert "rule for made_up_code" in out
        assert_no_pii(out)
    entries = json.loads(out)
    assert [(e["subject"], e["field"]) for e in entries] == [
        ("C004", ""),
        ("C005", ""),
        ("C001", "race"),
        ("C002", "race"),
    ]
    code, out = invoke(runner, seeded, "audit", "show", "--run", "run-1", "--program", "VT-EHS-02")
    assert code == 0 and "C009" in out and "C004" not in out


def test_audit_show_refuses_bad_requests(runner: CliRunner, seeded: str) -> None:
    assert invoke(runner, seeded, "audit", "show", "--run", "nope")[0] == 1  # unknown run
    assert invoke(runner, seeded, "audit", "show", "--reason", "made_up_code")[0] == 2  # no run


# -- audit verify (acceptance: catches an edited, a deleted and a reordered entry) ---------

TAMPER = [
    pytest.param(
        "UPDATE disclosure_log SET recipient_code = 'X' WHERE seq = 2", 2, "edited", id="edited"
    ),
    pytest.param("DELETE FROM disclosure_log WHERE seq = 2", 3, "deleted", id="deleted"),
    pytest.param(
        "UPDATE disclosure_log SET seq = -1 WHERE seq = 2;"
        "UPDATE disclosure_log SET seq = 2 WHERE seq = 3;"
        "UPDATE disclosure_log SET seq = 3 WHERE seq = -1",
        2,
        "reordered",
        id="reordered",
    ),
    pytest.param(
        "UPDATE redaction_audit SET rule = 'none' WHERE seq = 4", 4, "edited", id="redaction-edit"
    ),
]


def test_audit_verify_passes_an_intact_ledger_and_prints_heads(
    runner: CliRunner, seeded: str
) -> None:
    code, out = invoke(runner, seeded, "audit", "verify")
    assert code == 0, out
    assert "disclosures: 4 entries" in out and "redactions: 6 entries" in out
    assert out.count("intact") == 2 and "head 4:" in out


@pytest.mark.parametrize(("statements", "seq", "kind"), TAMPER)
def test_audit_verify_exits_non_zero_and_says_where(
    runner: CliRunner, seeded: str, engine: Engine, statements: str, seq: int, kind: str
) -> None:
    with engine.begin() as connection:
        for statement in statements.split(";"):
            connection.execute(text(statement))
    code, out = invoke(runner, seeded, "audit", "verify")
    assert code == 1
    assert "BROKEN" in out and f"seq {seq} (id " in out and f": {kind}:" in out
    assert_no_pii(out)


def test_audit_verify_with_anchor_catches_a_cut_tail(
    runner: CliRunner, seeded: str, engine: Engine
) -> None:
    _, out = invoke(runner, seeded, "audit", "verify")
    head = next(line.split()[1] for line in out.splitlines() if line.strip().startswith("head 4:"))
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM disclosure_log WHERE seq = 4"))
    # the first verify left a checkpoint at seq 4: a routine verify misses it
    code, out = invoke(runner, seeded, "audit", "verify", "--no-checkpoint")
    assert code == 1 and ": checkpoint: " in out and "that entry is missing" in out
    # a full walk with neither anchor nor checkpoint: what is left is a valid chain
    assert invoke(runner, seeded, "audit", "verify", "--full", "--no-checkpoint")[0] == 0
    code, out = invoke(runner, seeded, "audit", "verify", "--full", "--disclosures-head", head)
    assert code == 1 and "anchor" in out
    assert invoke(runner, seeded, "audit", "verify", "--disclosures-head", "4:zz")[0] == 2


def test_audit_verify_routine_then_full_says_what_each_verified(
    runner: CliRunner, seeded: str, engine: Engine
) -> None:
    code, out = invoke(runner, seeded, "audit", "verify")
    assert code == 0 and "routine verify" in out and "no usable checkpoint" in out
    assert "checkpoint recorded: disclosures verified through seq 4" in out
    with engine.begin() as connection:
        connection.execute(text("UPDATE disclosure_log SET recipient_code = 'X' WHERE seq = 2"))
    code, out = invoke(runner, seeded, "audit", "verify")
    assert code == 0 and "disclosures: from checkpoint seq 4 (full verify of" in out
    assert "incremental: nothing after the checkpoint at seq 4" in out
    assert "only --full is a check there" in out  # unkeyed: said plainly
    code, out = invoke(runner, seeded, "audit", "verify", "--full")
    assert code == 1 and "full verify: every entry of both ledgers walked" in out
    assert "seq 2 (id " in out and ": edited:" in out and "full: every entry, seq 1..4" in out
    assert "checkpoint recorded: disclosures" not in out


def test_audit_verify_with_unusable_key_exits_2(
    runner: CliRunner, seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LEDGER_KEY_ENV, "short")
    code, out = invoke(runner, seeded, "audit", "verify")
    assert code == 2 and LEDGER_KEY_ENV in out


# -- disclosures ---------------------------------------------------------------------------


def test_disclosures_answers_a_parents_request_in_every_format(
    runner: CliRunner, seeded: str
) -> None:
    code, out = invoke(
        runner, seeded, "disclosures", "C001", "--program", "VT-HS-01", "--format", "json"
    )
    assert code == 0
    entries = json.loads(out)
    assert [(e["action"], e["run"]) for e in entries] == [
        ("disclose", "run-1"),
        ("delete", "run-2"),
    ]
    first = entries[0]
    assert first["recipient"] == "VT-AOE"
    assert first["recipient_name"] == "Vermont Agency of Education"
    assert first["legal_basis"] == "consent"
    assert first["purpose"] == "kindergarten readiness reporting"
    assert first["fields"] == "child_local_id, race, enrollment_date"
    assert first["date"] == "2026-11-27T18:00:00+00:00"
    code, out = invoke(
        runner, seeded, "disclosures", "C001", "--program", "VT-HS-01", "--format", "csv"
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["action"] for r in rows] == ["disclose", "delete"]
    code, out = invoke(runner, seeded, "disclosures", "C001", "--program", "VT-HS-01")
    assert code == 0 and "Vermont Agency of Education" in out and "delete" in out
    assert_no_pii(out)


def test_disclosures_needs_program_when_id_is_ambiguous(runner: CliRunner, seeded: str) -> None:
    code, out = invoke(runner, seeded, "disclosures", "C001")
    assert code == 2 and "MO-HS-03" in out and "VT-HS-01" in out
    code, out = invoke(runner, seeded, "disclosures", "C002", "--format", "json")
    assert code == 0 and len(json.loads(out)) == 1


def test_disclosures_of_a_child_never_disclosed(runner: CliRunner, seeded: str) -> None:
    code, out = invoke(runner, seeded, "disclosures", "C777")
    assert code == 0 and "No disclosure" in out
    code, out = invoke(runner, seeded, "disclosures", "C777", "--format", "json")
    assert code == 0 and json.loads(out) == []
