"""An Ed-Fi run killed after the API accepted its batch and before it was logged, whose staged
batch is then lost too (the staged files cannot be read back): the API's own ledger
(``sent_resources``) still says, per child, which resources that run sent. The next run logs
them under the run that sent them and with its date, once, per child and resource, with the
permitted fields such a resource can carry; nothing is sent or logged twice.

Before, such a batch was marked "did not arrive": the next delivery found the API holding it
unchanged, did not send it again, and nothing ever logged the disclosure."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy import text

from pipelines.db import session_scope
from pipelines.demo import DEMO_DATE
from pipelines.edfi.mapping import RESOURCE_FIELDS
from privacy.agreements import load_agreement
from privacy.anchors import verify_ledgers
from tests.edfi.contract_server import EdfiContractServer
from tests.pipelines.submission.conftest import World
from tests.pipelines.submission.test_crash_after_accept import (
    LATER,
    crash_after_accept,
    edfi,  # noqa: F401 (the fixture)
    holding,
    identities,
    students,
)


def test_edfi_crash_with_its_staged_files_lost_is_logged_from_the_apis_ledger(
    world: World,
    edfi: EdfiContractServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    crash = crash_after_accept(world, "mo-edfi", tmp_path)
    first = students(edfi)
    assert first and world.disclosures().empty
    with world.engine.begin() as connection:
        connection.execute(text("DELETE FROM staged_chunks"))
    writes = dict(edfi.writes)

    summary = world.run("mo-edfi", run_date=LATER)

    assert summary["status"] == "success", summary.get("stop_lines")
    outcome = summary["reconciled"][crash.program]
    assert outcome.startswith("staged files unreadable: logged ") and crash.run_id in outcome
    log = world.disclosures()
    disclosed = log.loc[log["action"] == "disclose"]
    crashed = disclosed.loc[disclosed["run_id"] == crash.run_id]
    keys = set(zip(crashed["program_code"], crashed["child_local_id"], strict=True))
    assert identities(world, keys) == first, "each student the API took, under the run that sent it"
    assert not crashed.duplicated(["program_code", "child_local_id"]).any(), "once per child"
    assert set(crashed["run_date"]) == {DEMO_DATE}, "with the date it was sent"
    agreement = load_agreement(world.config / "agreements" / "mo-dese-consent.yaml")
    for row in crashed.itertuples():
        pairs = [f.split(":", 1) for f in row.fields]
        assert {r for r, _ in pairs} >= {"students", "studentSchoolAssociations"}
        for resource, name in pairs:
            assert name in RESOURCE_FIELDS[5][resource] and name in agreement.fields, (
                f"{resource}:{name} is not a permitted field the resource can carry"
            )
        assert "students:first_name" in row.fields and "students:birth_date" in row.fields
    again = {k: n for k, n in edfi.writes.items() if k in writes and n > 1}
    assert not again, f"{len(again)} resources of the crashed run were sent again"
    fields: dict[tuple[str, str], Counter[str]] = {}
    for row in disclosed.itertuples():
        fields.setdefault((row.program_code, row.child_local_id), Counter()).update(row.fields)
    assert all(max(f.values()) == 1 for f in fields.values()), "no field logged twice"
    assert students(edfi) == identities(world, holding(world)), "the server holds the logged"
    with session_scope(world.engine) as session:
        check = verify_ledgers(session)
    assert all(r.ok for r in check.reports.values()) and not check.delivery_problems
