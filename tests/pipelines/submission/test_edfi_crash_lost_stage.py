"""An Ed-Fi run killed after the API accepted its batch and before it was logged, whose staged
batch is then lost too (the staged files cannot be read back): the API's own ledger
(``sent_resources``) still says, per child, which resources that run sent and which fields
each body carried. The next run logs them under the run that sent them and with its date,
once, per child and resource, with exactly the fields the bodies the API received carried;
nothing is sent or logged twice. A ledger row written before it kept fields (``fields`` NULL,
migration 0014) is logged, as before, with every permitted field such a resource can carry:
never fewer than were sent.

Before, such a batch was marked "did not arrive": the next delivery found the API holding it
unchanged, did not send it again, and nothing ever logged the disclosure."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from pipelines.db import session_scope
from pipelines.demo import DEMO_DATE
from pipelines.edfi.mapping import RESOURCE_FIELDS
from privacy.agreements import load_agreement
from privacy.anchors import verify_ledgers
from tests.edfi.contract_server import EdfiContractServer
from tests.pipelines.submission.conftest import World
from tests.pipelines.submission.test_crash_after_accept import (
    CHILD,
    LATER,
    crash_after_accept,
    edfi,  # noqa: F401 (the fixture)
    holding,
    identities,
    students,
)

# The crashed run as ``CHILD`` runs it, also writing down each body it POSTs (with the catalog
# fields the mapping says it carries) to the file ``TEST_SENT_BODIES`` names, before it goes.
RECORDING = (
    textwrap.dedent(
        """
        import json
        import os

        import pipelines.edfi.destination as _destination

        _post_all = _destination.EdfiDestination._post_all

        def _written_down(self, resource, payloads):
            with open(os.environ["TEST_SENT_BODIES"], "a", encoding="utf-8") as out:
                for p in payloads:
                    line = {"resource": resource, "child": p.child_key, "body": p.body,
                            "fields": list(p.fields)}
                    out.write(json.dumps(line) + "\\n")
            return _post_all(self, resource, payloads)

        _destination.EdfiDestination._post_all = _written_down
        """
    )
    + CHILD
)
SERVER_KEYS = ("id", "_etag")


def received(
    server: EdfiContractServer, bodies: Path
) -> dict[tuple[str, str], dict[str, set[str]]]:
    """Per child and resource, the fields of the bodies the crashed run POSTed that the server
    holds exactly as sent (what the API received and kept of that run)."""
    held: dict[str, dict[str, dict[str, object]]] = {}
    found: dict[tuple[str, str], dict[str, set[str]]] = {}
    for line in bodies.read_text(encoding="utf-8").splitlines():
        sent = json.loads(line)
        resource, body = sent["resource"], sent["body"]
        if sent["child"] is None:
            continue
        if resource not in held:
            held[resource] = {}
            for item in server.held(resource):
                copy = {k: v for k, v in item.items() if k not in SERVER_KEYS}
                held[resource][server.key_of(resource, copy)] = copy
        if held[resource].get(server.key_of(resource, body)) != body:
            continue
        child = (sent["child"][0], sent["child"][1])
        found.setdefault(child, {}).setdefault(resource, set()).update(sent["fields"])
    return found


@pytest.mark.parametrize("ledger", ["with-fields", "before-0014"])
def test_edfi_crash_with_its_staged_files_lost_is_logged_from_the_apis_ledger(
    world: World,
    edfi: EdfiContractServer,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ledger: str,
) -> None:
    bodies = tmp_path / "sent-bodies.jsonl"
    monkeypatch.setenv("TEST_SENT_BODIES", str(bodies))
    crash = crash_after_accept(world, "mo-edfi", tmp_path, script=RECORDING)
    first = students(edfi)
    assert first and world.disclosures().empty
    with world.engine.begin() as connection:
        connection.execute(text("DELETE FROM staged_chunks"))
        if ledger == "before-0014":  # rows a ledger wrote before it kept fields
            connection.execute(text("UPDATE sent_resources SET fields = NULL"))
    writes = dict(edfi.writes)
    took = received(edfi, bodies)
    assert took and {(p, c) for p, c in took} == {(crash.program, c) for _, c in took}

    summary = world.run("mo-edfi", run_date=LATER)

    assert summary["status"] == "success", summary.get("stop_lines")
    outcome = summary["reconciled"][crash.program]
    assert outcome.startswith("staged files unreadable: logged ") and crash.run_id in outcome
    log = world.disclosures()
    disclosed = log.loc[log["action"] == "disclose"]
    crashed = disclosed.loc[disclosed["run_id"] == crash.run_id]
    keys = set(zip(crashed["program_code"], crashed["child_local_id"], strict=True))
    assert identities(world, keys) == first, "each student the API took, under the run that sent it"
    assert keys == set(took), "each child whose bodies the API holds"
    assert not crashed.duplicated(["program_code", "child_local_id"]).any(), "once per child"
    assert set(crashed["run_date"]) == {DEMO_DATE}, "with the date it was sent"
    agreement = load_agreement(world.config / "agreements" / "mo-dese-consent.yaml")
    permitted = set(agreement.fields)
    over_stated = 0
    for row in crashed.itertuples():
        pairs = [f.split(":", 1) for f in row.fields]
        assert {r for r, _ in pairs} >= {"students", "studentSchoolAssociations"}
        for resource, name in pairs:
            assert name in RESOURCE_FIELDS[5][resource] and name in agreement.fields, (
                f"{resource}:{name} is not a permitted field the resource can carry"
            )
        assert "students:first_name" in row.fields and "students:birth_date" in row.fields
        carried = took[(row.program_code, row.child_local_id)]
        exact = {f"{r}:{n}" for r, names in carried.items() for n in names}
        if ledger == "with-fields":
            assert set(row.fields) == exact, "exactly the fields the bodies the API took carried"
        else:
            superset = {f"{r}:{n}" for r in carried for n in RESOURCE_FIELDS[5][r] & permitted}
            assert set(row.fields) == superset, "an old row: every field the resource can carry"
            assert set(row.fields) >= exact, "never fewer than were sent"
            over_stated += set(row.fields) != exact
    if ledger == "before-0014":
        assert over_stated, "the demo has fields a resource can carry and did not"
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
