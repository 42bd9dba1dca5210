"""``datashare policy check`` and ``explain``: exit codes, file:line output, plain words."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from pipelines.commands.policy import RecipientRow, app, explanation
from privacy.agreements import load_agreement, load_agreements
from privacy.fields import CATALOG
from schemas import Recipient
from schemas.codes import EntityLevel, RecipientCategory

AGREEMENTS = Path(__file__).resolve().parents[2] / "config" / "agreements"
RECIPIENTS = {
    "VT-AOE": ("Vermont Agency of Education", RecipientCategory.STATE_EDUCATION_DATA_SYSTEM),
    "MO-DESE": ("Missouri DESE", RecipientCategory.STATE_EDUCATION_DATA_SYSTEM),
    "NM-ECECD": ("New Mexico ECECD", RecipientCategory.STATE_EDUCATION_DATA_SYSTEM),
    "VT-BSD": ("Burlington School District", RecipientCategory.LOCAL_EDUCATION_AGENCY),
    "UVM-CRC": ("UVM Child Research Center", RecipientCategory.RESEARCHER),
}
runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def no_db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'absent.db'}"


def add_recipients(engine: Engine, codes: list[str]) -> None:
    with Session(engine) as session:
        for code in codes:
            name, category = RECIPIENTS[code]
            session.add(
                Recipient(code=code, name=name, category=category, entity_level=EntityLevel.STATE)
            )
        session.commit()


def test_check_passes_on_the_demo_agreements(no_db: str) -> None:
    code, output = invoke("check", "--agreements", str(AGREEMENTS), "--database-url", no_db)
    assert code == 0, output
    assert "5 agreement(s)" in output and "all valid" in output
    assert not Path(no_db.removeprefix("sqlite:///")).exists()  # checking made no database


def test_check_prints_file_line_message_and_fails(tmp_path: Path, no_db: str) -> None:
    folder = tmp_path / "agreements"
    shutil.copytree(AGREEMENTS, folder)
    path = folder / "vt-bsd-enrollment.yaml"
    text = path.read_text().replace("  exit_reason: keep", "  exit_reasn: keep\n  race: keep")
    path.write_text(text)
    code, output = invoke("check", "--agreements", str(folder), "--database-url", no_db)
    assert code == 1
    lines = text.splitlines()
    typo = lines.index("  exit_reasn: keep") + 1
    race = lines.index("  race: keep") + 1
    assert f"vt-bsd-enrollment.yaml:{typo}: unknown field 'exit_reasn'" in output
    assert f"vt-bsd-enrollment.yaml:{race}: race belongs to the demographics records" in output
    assert "2 problem(s)" in output


def test_check_fails_on_a_missing_folder(tmp_path: Path, no_db: str) -> None:
    code, output = invoke("check", "--agreements", str(tmp_path / "none"), "--database-url", no_db)
    assert code == 1 and "no such folder" in output


def test_check_uses_the_recipients_registry_when_it_has_rows(engine: Engine, db_url: str) -> None:
    code, output = invoke("check", "--agreements", str(AGREEMENTS), "--database-url", db_url)
    assert code == 0 and "recipients not checked" in output  # empty registry: not checked
    add_recipients(engine, ["VT-AOE", "MO-DESE", "NM-ECECD", "UVM-CRC"])
    code, output = invoke("check", "--agreements", str(AGREEMENTS), "--database-url", db_url)
    assert code == 1
    assert "vt-bsd-enrollment.yaml:" in output and "unknown recipient 'VT-BSD'" in output
    add_recipients(engine, ["VT-BSD"])
    code, output = invoke("check", "--agreements", str(AGREEMENTS), "--database-url", db_url)
    assert code == 0, output
    assert "recipients not checked" not in output


def test_check_fails_when_the_database_cannot_be_read() -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    code, output = invoke("check", "--agreements", str(AGREEMENTS), "--database-url", url)
    assert code == 1 and "cannot read the recipients registry" in output


@pytest.mark.parametrize("agreement_id", sorted(p.stem for p in AGREEMENTS.glob("*.yaml")))
def test_explain_mentions_every_field_and_the_basics(agreement_id: str, no_db: str) -> None:
    code, output = invoke(
        "explain", agreement_id, "--agreements", str(AGREEMENTS), "--database-url", no_db
    )
    assert code == 0, output
    a = load_agreements(AGREEMENTS)[agreement_id]
    leaves = output.split("What never leaves:")[0]
    never = output.split("What never leaves:")[1].split("Which children qualify:")[0]
    for name in CATALOG:
        words = name.replace("_", " ")
        if name in a.leaving():
            assert f"  - {words}, " in leaves, name
        else:
            assert words in never, name
    assert f"Recipient: {a.recipient}" in output
    assert a.legal_basis.citation in output
    assert f"In force: from {a.effective}" in output
    assert f"Review due: {a.review_due}" in output
    assert "Which children qualify:" in output
    assert "Destruction:" in output and "Suspensions:" in output


def test_explain_in_plain_words(no_db: str) -> None:
    code, output = invoke(
        "explain", "uvm-crc-study", "--agreements", str(AGREEMENTS), "--database-url", no_db
    )
    assert code == 0
    assert "  - birth date, reduced to month and year" in output
    assert "  - address zip, reduced to its first three digits" in output
    assert "  - child local id, replaced by a pseudonym" in output
    assert "In force: from 2026-01-01 through 2027-12-31" in output
    assert "  - from 2026-03-01 to 2026-04-15: Data stored on an unapproved laptop" in output
    assert "Every child of a participating program; no consent is needed" in output


def test_explain_consent_rule_names_recipient_categories_and_disability() -> None:
    a = load_agreement(AGREEMENTS / "mo-dese-consent.yaml")
    text = "\n".join(explanation(a, None, today=dt.date(2026, 11, 27)))
    assert (
        "Children with a signed and dated written consent from a parent naming MO-DESE (or a "
        "class of recipients it belongs to), covering identity, demographics, enrollment, "
        "attendance, services, not expired and not revoked on the run date." in text
    )
    assert "Disability fields (disability, iep, ifsp) leave only when a valid consent" in text
    assert "Parent statements: a field with a parent's statement on file is held back" in text
    assert "Purpose code: state_longitudinal_data_system" in text
    assert "a consent counts only if it names this purpose" in text
    assert "The consent must name the purpose state_longitudinal_data_system" in text
    assert "parent or guardian of this child on the day it was signed" in text
    assert "Several valid consents may together cover these categories" in text


def test_explain_statements_on_transformed_fields_and_jurisdiction() -> None:
    a = load_agreement(AGREEMENTS / "vt-aoe-ecids.yaml")
    text = "\n".join(explanation(a, RecipientRow("AOE", "state_education_data_system", "VT"),
                                 today=dt.date(2026, 11, 27)))  # fmt: skip
    assert "On fields sent transformed (address zip): the field is held back" in text
    assert "Only programs in VT, the recipient's jurisdiction." in text
    nowhere = RecipientRow("OHS", "federal_agency", None)
    text = "\n".join(explanation(a, nowhere, today=dt.date(2026, 11, 27)))
    assert "The recipient has no state on record: no program's data goes to it." in text


def test_explain_notice_aggregate_and_overdue_review() -> None:
    bsd = load_agreement(AGREEMENTS / "vt-bsd-enrollment.yaml")
    text = "\n".join(explanation(bsd, None, today=dt.date(2027, 8, 2)))
    assert "told in writing at least 10 days before the run date" in text
    assert "In force: from 2025-08-15 with no end date" in text
    assert "OVERDUE" in text
    nm = load_agreement(AGREEMENTS / "nm-ececd-aggregate.yaml")
    text = "\n".join(explanation(nm, None, today=dt.date(2026, 11, 27)))
    assert "counts only" in text and "below 10 is hidden" in text
    assert (
        "birth date, replaced by the child's age in whole months on the run date, grouped" in text
    )
    assert "OVERDUE" not in text


def test_explain_names_the_recipient_from_the_registry(engine: Engine, db_url: str) -> None:
    add_recipients(engine, ["VT-AOE"])
    code, output = invoke(
        "explain", "vt-aoe-ecids", "--agreements", str(AGREEMENTS), "--database-url", db_url
    )
    assert code == 0
    assert "Recipient: VT-AOE (Vermont Agency of Education, state education data system)" in output


def test_explain_unknown_and_invalid_agreements(tmp_path: Path, no_db: str) -> None:
    code, output = invoke(
        "explain", "nope", "--agreements", str(AGREEMENTS), "--database-url", no_db
    )
    assert code == 2 and "No agreement nope" in output and "vt-aoe-ecids" in output
    bad = tmp_path / "bad.yaml"
    bad.write_text((AGREEMENTS / "vt-bsd-enrollment.yaml").read_text())
    code, output = invoke("explain", str(bad), "--database-url", no_db)
    assert code == 1 and "bad.yaml:" in output and "the id must be the file name" in output
