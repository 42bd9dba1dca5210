"""EdfiDestination end to end against the contract server: deliver, idempotency, holds,
withdraw, dry run, configuration."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sqlalchemy import Engine, select, update

from pipelines.db import session_scope
from pipelines.destinations.base import Destination
from pipelines.destinations.registry import DestinationConfig, build_destination
from pipelines.edfi.destination import EdfiDeliveryResult, EdfiDestination
from privacy.fields import CATALOG
from schemas.delivery import SentResource
from tests.edfi.conftest import SCHOOL
from tests.edfi.contract_server import EdfiContractServer
from tests.edfi.frames import records_batch, synthetic_frame

Make = Callable[..., EdfiDestination]
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "destinations" / "edfi-example.yaml"


def held(server: EdfiContractServer) -> set[tuple[str, str]]:
    return {(name, key) for name in server.store for key in server.held_keys(name)}


def reported(server: EdfiContractServer, result: EdfiDeliveryResult) -> set[tuple[str, str]]:
    return {
        (r.resource, json.dumps(r.natural_key, sort_keys=True))
        for r in result.resources
        if r.status in ("sent", "unchanged")
    }


def test_deliver_sends_everything_and_reports_exactly_what_the_api_holds(
    server: EdfiContractServer, make_destination: Make
) -> None:
    frame, keys = synthetic_frame(30)
    destination = make_destination()
    result = destination.deliver(records_batch(frame, keys))
    assert result.accepted == set(keys)
    assert result.rejected == {}
    assert not result.sent_nothing_new
    assert held(server) == reported(server, result)
    assert set(server.writes.values()) == {1}
    assert server.tokens_issued == 1
    protocol: Destination = destination  # the destination protocol, checked by type checkers
    assert callable(protocol.deliver) and callable(protocol.holds)


def test_rerun_of_an_unchanged_batch_sends_nothing(
    server: EdfiContractServer, make_destination: Make
) -> None:
    frame, keys = synthetic_frame(20)
    destination = make_destination()
    destination.deliver(records_batch(frame, keys))
    posts = server.requests["POST data"]
    again = destination.deliver(records_batch(frame, keys, run_id="run-2"))
    assert again.sent_nothing_new
    assert server.requests["POST data"] == posts
    assert {r.status for r in again.resources} == {"unchanged"}
    assert again.accepted == set(keys)


def test_only_the_changed_record_is_resent(
    server: EdfiContractServer, make_destination: Make
) -> None:
    frame, keys = synthetic_frame(20)
    destination = make_destination()
    destination.deliver(records_batch(frame, keys))
    posts = server.requests["POST data"]
    frame.at[3, "first_name"] = "Renamed"
    again = destination.deliver(records_batch(frame, keys, run_id="run-2"))
    sent = [r for r in again.resources if r.status == "sent"]
    assert [(r.resource, r.child_key) for r in sent] == [("students", keys[3])]
    assert sent[0].http_status == 200
    assert server.requests["POST data"] == posts + 1
    renamed = [s for s in server.held("students") if s["firstName"] == "Renamed"]
    assert len(renamed) == 1


def test_withheld_children_are_reported_not_sent(
    server: EdfiContractServer, make_destination: Make
) -> None:
    frame, keys = synthetic_frame(5)
    frame["first_name"] = frame["first_name"].astype(object)
    frame.at[2, "first_name"] = None
    result = make_destination().deliver(records_batch(frame, keys))
    assert keys[2] not in result.accepted
    assert keys[2] not in result.rejected
    assert {n.code for n in result.not_sent if n.child_key == keys[2]} >= {
        "EDFI_REQUIRED_VALUE_MISSING:first_name"
    }
    assert len(server.held("students")) == len(server.held("studentSchoolAssociations")) == 4


def test_holds_by_ledger_and_after_a_lost_ledger_by_reading_the_api(
    server: EdfiContractServer, make_destination: Make, tmp_path: Path
) -> None:
    frame, keys = synthetic_frame(10)
    batch = records_batch(frame, keys)
    destination = make_destination()
    assert not destination.holds(batch)
    destination.deliver(batch)
    gets = server.requests["GET data"]
    assert destination.holds(batch)
    assert server.requests["GET data"] == gets, "the ledger answered"

    from pipelines.db import make_engine
    from schemas import Base

    fresh = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    Base.metadata.create_all(fresh)
    amnesiac = make_destination(engine=fresh)
    assert amnesiac.holds(batch)
    assert server.requests["GET data"] > gets, "the API answered"
    frame.at[0, "last_name"] = "Changed"
    assert not amnesiac.holds(records_batch(frame, keys))


def test_carried_by_asks_the_api_for_what_a_lost_ledger_lacks_and_records_it(
    server: EdfiContractServer, make_destination: Make, tmp_path: Path
) -> None:
    """A crash after the API accepted a batch and before the ledger recorded it: the API is
    asked, what it holds exactly as mapped is carried (logged under the run that sent it)
    and written to the ledger under that run, so the next delivery does not send it again
    and a withdrawal finds it; what the API holds otherwise is not carried."""
    frame, keys = synthetic_frame(6)
    batch = records_batch(frame, keys, run_id="crashed")
    make_destination().deliver(batch)
    from pipelines.db import make_engine
    from schemas import Base

    fresh = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    Base.metadata.create_all(fresh)
    amnesiac = make_destination(engine=fresh)
    frame.at[0, "last_name"] = "Changed"  # the API holds another version of this student
    changed = records_batch(frame, keys, run_id="crashed")
    assert not amnesiac.holds(changed)

    carried = amnesiac.carried_by(changed, "crashed", held_by_api=False)

    assert set(carried) == set(keys)
    assert not any(f.startswith("students:") for f in carried[keys[0]])
    assert any(f.startswith("studentSchoolAssociations:") for f in carried[keys[0]])
    for key in keys[1:]:
        assert any(f.startswith("students:") for f in carried[key])
    with session_scope(fresh) as session:
        rows = session.execute(
            select(SentResource.resource, SentResource.run_id, SentResource.resource_id)
        ).all()
    assert rows and {r.run_id for r in rows} == {"crashed"} and all(r.resource_id for r in rows)
    students_recorded = [r for r in rows if r.resource == "students"]
    assert len(students_recorded) == len(keys) - 1
    posts = server.requests["POST data"]
    again = amnesiac.deliver(records_batch(frame, keys, run_id="tonight"))
    assert server.requests["POST data"] == posts + 1, "only the changed student goes"
    assert set(again.carried or {}) == {keys[0]}
    results = amnesiac.withdraw([keys[1]])
    assert {r.resource for r in results if r.status == "deleted"} >= {"students"}


def test_the_ledger_keeps_what_each_body_carried_for_a_run_whose_stage_is_lost(
    server: EdfiContractServer, make_destination: Make, ledger_engine: Engine
) -> None:
    frame, keys = synthetic_frame(12)
    destination = make_destination()
    result = destination.deliver(records_batch(frame, keys))
    logged = {k: set(v) for k, v in (result.carried or {}).items()}
    assert set(logged) == set(keys)
    everything = set(CATALOG)

    recovered = destination.sent_fields_by("run-1", "VT-HS-01", everything)

    assert {k: set(v) for k, v in recovered.items()} == logged, "what its own log would say"
    assert all(len(v) == len(set(v)) for v in recovered.values())
    with session_scope(ledger_engine) as session:
        session.execute(update(SentResource).values(fields=None))  # a ledger from before 0014
    superset = destination.sent_fields_by("run-1", "VT-HS-01", everything)
    assert set(superset) == set(logged)
    assert all(set(superset[k]) >= logged[k] for k in logged), "never fewer than were sent"
    assert any(set(superset[k]) != logged[k] for k in logged), "an old row over-states"


def test_withdraw_deletes_what_was_sent_and_reports_it(
    server: EdfiContractServer, make_destination: Make, ledger_engine: Engine
) -> None:
    frame, keys = synthetic_frame(6)
    batch = records_batch(frame, keys)
    destination = make_destination()
    destination.deliver(batch)
    before = {name: len(items) for name, items in server.store.items()}
    results = destination.withdraw([keys[1]])
    assert results and {r.status for r in results} == {"deleted"}
    assert {r.child_key for r in results} == {keys[1]}
    resources = [r.resource for r in results]
    assert resources[-2:] == ["studentSchoolAssociations", "students"]
    after = {name: len(items) for name, items in server.store.items()}
    assert sum(before.values()) - sum(after.values()) == len(results)
    with session_scope(ledger_engine) as session:
        statuses = set(
            session.scalars(
                select(SentResource.status).where(SentResource.child_local_id == keys[1][1])
            )
        )
    assert statuses == {"deleted"}
    assert destination.withdraw([keys[1]]) == []
    assert not destination.holds(batch)


def test_withdraw_finds_the_id_by_natural_key_when_the_ledger_lacks_it(
    server: EdfiContractServer, make_destination: Make, ledger_engine: Engine
) -> None:
    frame, keys = synthetic_frame(3)
    destination = make_destination()
    destination.deliver(records_batch(frame, keys))
    with session_scope(ledger_engine) as session:
        session.execute(update(SentResource).values(resource_id=None))
    results = destination.withdraw([keys[0]])
    assert results and {r.status for r in results} == {"deleted"}
    student_ids = {s["studentUniqueId"] for s in server.held("students")}
    assert len(student_ids) == 2


def test_withdraw_of_something_already_gone_is_reported_absent(
    server: EdfiContractServer, make_destination: Make
) -> None:
    frame, keys = synthetic_frame(2)
    destination = make_destination()
    destination.deliver(records_batch(frame, keys))
    for item in server.held("studentProgramAssociations"):
        del server.store["studentProgramAssociations"][item["id"]]
    results = destination.withdraw([keys[0]])
    statuses = {r.resource: r.status for r in results}
    assert statuses["studentProgramAssociations"] == "already_absent"
    assert statuses["students"] == "deleted"


def test_dry_run_writes_the_exact_payloads_per_resource_without_network(
    server: EdfiContractServer, make_destination: Make, tmp_path: Path, data_standard: int
) -> None:
    frame, keys = synthetic_frame(12)
    batch = records_batch(frame, keys)
    destination = make_destination()
    dry = destination.write_dry_run(batch, tmp_path / "dry")
    assert server.requests == {} and destination._client is None
    written = {
        resource: [json.loads(line) for line in path.read_text("utf-8").splitlines()]
        for resource, path in dry.files.items()
    }
    for resource, path in dry.files.items():
        assert path.name == f"{resource}.jsonl"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    names = {p.name for p in (tmp_path / "dry").iterdir()}
    assert {"students.jsonl", "studentSchoolAssociations.jsonl"} <= names
    assert ("studentDemographics.jsonl" in names) is (data_standard == 6)
    # the identity payloads, from the source and the mapping written above
    assert written["students"] == [expected_student(row) for row in rows_of(frame)]
    assert written["studentSchoolAssociations"] == [
        expected_school_association(row) for row in rows_of(frame)
    ]
    # and every payload is exactly what a real delivery then puts on the API
    result = destination.deliver(batch)
    assert sum(1 for r in result.resources if r.status == "sent") == sum(map(len, written.values()))
    for resource, bodies in written.items():
        held_bodies = [  # less what the server adds: its id and _etag
            {k: v for k, v in b.items() if k != "id" and not k.startswith("_")}
            for b in server.held(resource)
        ]
        assert sorted(map(canonical, bodies)) == sorted(map(canonical, held_bodies)), resource


# Ed-Fi identity payloads written from the Ed-Fi documentation, not from the product's mapper:
# studentUniqueId is the state id when known, else "<program>-<local id>"; the entry grade is
# Infant/toddler under 3 years at entry, else Preschool/Prekindergarten.
EXIT_WITHDRAW_TYPE = {
    "aged_out": "Reached maximum age",
    "transition_to_kindergarten": "Completed",
    "transition_to_head_start": "Transferred",
    "family_moved": "Transferred",
    "family_choice": "Withdrawn",
    "other": "Other",
}


def rows_of(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def canonical(body: dict) -> str:
    return json.dumps(body, sort_keys=True)


def student_id(row: dict) -> str:
    return row["state_student_id"] or f"{row['program_code']}-{row['child_local_id']}"


def expected_student(row: dict) -> dict:
    body = {
        "studentUniqueId": student_id(row),
        "firstName": row["first_name"],
        "lastSurname": row["last_name"],
        "birthDate": row["birth_date"].isoformat(),
    }
    return body | ({"middleName": row["middle_name"]} if row["middle_name"] else {})


def expected_school_association(row: dict) -> dict:
    born, entry = row["birth_date"], row["entry_date"]
    years = entry.year - born.year - ((entry.month, entry.day) < (born.month, born.day))
    grade = "Infant/toddler" if years < 3 else "Preschool/Prekindergarten"
    body = {
        "schoolReference": {"schoolId": SCHOOL},
        "studentReference": {"studentUniqueId": student_id(row)},
        "entryDate": entry.isoformat(),
        "entryGradeLevelDescriptor": f"uri://ed-fi.org/GradeLevelDescriptor#{grade}",
    }
    if row["exit_date"]:
        reason = EXIT_WITHDRAW_TYPE[row["exit_reason"]]
        body |= {
            "exitWithdrawDate": row["exit_date"].isoformat(),
            "exitWithdrawTypeDescriptor": f"uri://ed-fi.org/ExitWithdrawTypeDescriptor#{reason}",
        }
    return body


def test_ledger_works_on_sqlite_and_postgresql(
    server: EdfiContractServer, make_destination: Make, engine: Engine
) -> None:
    frame, keys = synthetic_frame(8)
    destination = make_destination(engine=engine)
    first = destination.deliver(records_batch(frame, keys))
    again = destination.deliver(records_batch(frame, keys, run_id="run-2"))
    assert first.accepted == again.accepted == set(keys)
    assert again.sent_nothing_new
    assert destination.withdraw([keys[0]])


def test_from_the_registry_config_of_the_example(
    server: EdfiContractServer,
    ledger_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    data_standard: int,
) -> None:
    data = yaml.safe_load(EXAMPLE.read_text("utf-8"))
    data["edfi"]["base_url"] = server.base_url
    data["edfi"]["data_standard"] = data_standard
    config = DestinationConfig.model_validate({"name": "edfi-example", **data})
    monkeypatch.setenv("EDFI_CLIENT_ID", "datashare")
    monkeypatch.setenv("EDFI_CLIENT_SECRET", "datashare-secret")
    monkeypatch.setenv("DATASHARE_DATABASE_URL", str(ledger_engine.url))
    destination = build_destination(config)
    assert isinstance(destination, EdfiDestination)
    assert destination.settings.timeout_seconds == config.timeout_seconds
    frame, keys = synthetic_frame(4)
    try:
        assert destination.deliver(records_batch(frame, keys)).accepted == set(keys)
    finally:
        destination.close()


def test_from_config_accepts_a_plain_mapping(ledger_engine: Engine) -> None:
    data = yaml.safe_load(EXAMPLE.read_text("utf-8"))
    destination = EdfiDestination.from_config(
        {"name": "plain", "edfi": data["edfi"]}, engine=ledger_engine
    )
    assert destination.name == "plain"
    assert destination.settings.organization("VT-EHS-02").school_id == 255901002


def test_reconciling_a_lost_ledger_reads_each_resource_of_the_api_once(
    server: EdfiContractServer, make_destination: Make, tmp_path: Path
) -> None:
    """``holds`` reads the API for what the ledger lacks; ``carried_by`` right after (the
    reconciliation of the same batch) uses those reads instead of asking again: one GET per
    resource checked, and the same answer as asking."""
    frame, keys = synthetic_frame(6)
    make_destination().deliver(records_batch(frame, keys, run_id="crashed"))
    from pipelines.db import make_engine
    from schemas import Base

    fresh = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    Base.metadata.create_all(fresh)
    amnesiac = make_destination(engine=fresh)
    frame.at[0, "last_name"] = "Changed"
    changed = records_batch(frame, keys, run_id="crashed")
    resources = len(amnesiac.map(changed).payloads)
    gets = server.requests["GET data"]
    assert not amnesiac.holds(changed)
    carried = amnesiac.carried_by(changed, "crashed", held_by_api=False)
    assert server.requests["GET data"] - gets == resources, "one GET per resource"
    assert set(carried) == set(keys)
    assert not any(f.startswith("students:") for f in carried[keys[0]])
    with session_scope(fresh) as session:
        ids = session.execute(select(SentResource.resource_id)).scalars().all()
    assert len(ids) == resources - 1 and all(ids), "recorded with the ids the API gave"
