"""A file drop's run killed mid-upload whose staged batch is then lost (the staged files cannot
be read back): its redaction audit (who was withheld, which fields were removed, and why)
went with its staged ledger. The next run says so in the redaction audit, under the crashed
run, with the counts its delivery row kept, whether the batch is then logged (the state took
the folder) or discarded (it never arrived). Before, the loss was silent."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text

from pipelines.db import session_scope
from privacy.anchors import verify_ledgers
from schemas import Delivery
from schemas.ledgers import RedactionEntry
from tests.pipelines.submission.conftest import World
from tests.pipelines.submission.test_crash_after_accept import (
    LATER,
    Drop,
    drop,  # noqa: F401 (the fixture)
    killed_mid_upload,
    state_takes_the_folder,
)


@pytest.mark.parametrize("taken", [False, True], ids=["discarded", "taken-and-logged"])
def test_a_crashed_runs_lost_redaction_audit_is_said_lost_with_its_counts(
    world: World,
    drop: Drop,  # noqa: F811
    tmp_path: Path,
    taken: bool,
) -> None:
    crash = killed_mid_upload(world, drop.name, drop.kind, "rename", tmp_path)
    if taken:
        assert state_takes_the_folder(drop.root, crash)
    with world.engine.connect() as connection:
        prepared = connection.execute(
            select(Delivery.artifacts).where(Delivery.run_id == crash.run_id)
        ).scalar_one()["prepared"]
    withheld = sum(prepared["counts"]["withheld_by_reason"].values())
    assert withheld, "the crashed run withheld children: its audit had lines"
    with world.engine.begin() as connection:
        connection.execute(text("DELETE FROM staged_chunks"))

    summary = world.run(drop.name, run_date=LATER)

    assert summary["status"] == "success", summary.get("stop_lines")
    with world.engine.connect() as connection:
        said = connection.execute(
            select(RedactionEntry.__table__).where(
                RedactionEntry.run_id == crash.run_id,
                RedactionEntry.reason_code == "redaction_audit_lost",
            )
        ).all()
    assert len(said) == 1, "one line says the crashed run's audit is lost"
    line = said[0]
    assert line.program_code == crash.program and line.subject == crash.program
    assert line.field is None
    assert f"run {crash.run_id}" in line.rule and "not recovered" in line.rule
    assert f"{withheld} children withheld" in line.rule, line.rule
    for reason, count in prepared["counts"]["withheld_by_reason"].items():
        if count:
            assert f"{reason} {count}" in line.rule
    again = world.run(drop.name, run_date=LATER)
    assert again["status"] == "success"
    with world.engine.connect() as connection:
        count = connection.execute(
            text("SELECT count(*) FROM redaction_audit WHERE reason_code = 'redaction_audit_lost'")
        ).scalar_one()
    assert count == 1, "said once"
    with session_scope(world.engine) as session:
        check = verify_ledgers(session)
    assert all(r.ok for r in check.reports.values()) and not check.delivery_problems
