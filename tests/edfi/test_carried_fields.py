"""What the disclosure log says an Ed-Fi request carried: exactly the permitted fields whose
values the request body holds (or a descriptor in it is chosen by), per resource.

A value the mapping reads and then leaves out (a code with no Ed-Fi equivalent, a generalized
date, an incomplete address, a language not on the descriptor list, a false flag that writes
nothing) is not carried, so it is not logged (over-statement). A field whose value changes the
body is always logged (under-statement): a property checks that nulling or changing a field
the log does not name leaves every body as it was, against the payloads themselves. A field
the agreement does not permit never reaches a body nor the log, and every field logged is one
the resource can carry at all (:data:`RESOURCE_FIELDS`, what a crash recovery that knows only
the resource logs)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.edfi.destination import EdfiDestination
from pipelines.edfi.mapping import (
    DEMOGRAPHICS,
    DIRECTORIES,
    MAPPED_FIELDS,
    RESOURCE_FIELDS,
    SEOA,
    SPA,
    SSA,
    SSEPA,
    STUDENTS,
    EdfiMapper,
    Mapped,
)
from privacy.fields import CATALOG
from schemas.codes import ProgramType
from tests.edfi.conftest import make_settings
from tests.edfi.contract_server import EdfiContractServer
from tests.edfi.frames import records_batch, synthetic_frame

PROGRAM = "VT-HS-01"
DEMOGRAPHIC = {5: SEOA, 6: DEMOGRAPHICS}
ADDRESSED = {5: SEOA, 6: DIRECTORIES}


def mapped(frame: pd.DataFrame, keys: list, data_standard: int) -> Mapped:  # type: ignore[type-arg]
    return EdfiMapper(make_settings(data_standard=data_standard)).map_frame(frame, keys, PROGRAM)


def payload_of(result: Mapped, resource: str, key: tuple[str, str]) -> Any:
    found = [p for p in result.payloads if p.resource == resource and p.child_key == key]
    assert len(found) <= 1
    return found[0] if found else None


def child(**values: Any) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """One Head Start child of four at entry, every catalog field, ``values`` set."""
    frame, keys = synthetic_frame(1, seed=3)
    frame = frame.astype(object)
    base = {
        "birth_date": dt.date(2021, 6, 1),
        "entry_date": dt.date(2025, 8, 20),
        "race": "white",
        "home_language": "eng",
        "disability": True,
        "iep": True,
        "ifsp": False,
        "homeless": True,
        "foster_care": True,
        "dual_language_learner": True,
        "address_street": "12 Main St",
        "address_city": "Burlington",
        "address_state": "VT",
        "address_zip": "05401",
        "exit_date": dt.date(2026, 5, 1),
        "exit_reason": "aged_out",
    }
    for name, value in (base | values).items():
        frame.at[0, name] = value
    return frame, keys


# (what is set, the resource by Data Standard, the fields it must not log, the body keys it
# must not hold); each a value the mapping reads and cannot (or need not) send
LEFT_OUT = [
    pytest.param({"race": "two_or_more"}, DEMOGRAPHIC, {"race"}, {"races"}, id="race-no-edfi-code"),
    pytest.param(
        {"home_language": "zzz"}, DEMOGRAPHIC, {"home_language"}, {"languages"}, id="language"
    ),
    pytest.param(
        {"address_zip": "054"},
        ADDRESSED,
        {*("address_street", "address_city")},
        {"addresses"},
        id="zip3",
    ),
    pytest.param(
        {"address_street": None},
        ADDRESSED,
        {"address_city", "address_state", "address_zip"},
        {"addresses"},
        id="no-street",
    ),
    pytest.param(
        {"address_state": "ZZ"},
        ADDRESSED,
        {"address_street", "address_state"},
        {"addresses"},
        id="state-not-listed",
    ),
    pytest.param(
        {"exit_date": "2026-05"}, SSA, {"exit_date"}, {"exitWithdrawDate"}, id="exit-month"
    ),
    pytest.param({"exit_date": "2026-05"}, SPA, {"exit_date"}, {"endDate"}, id="end-month"),
    pytest.param({"ifsp": True, "iep": True}, SSEPA, {"iep"}, set(), id="ifsp-chooses-program"),
    pytest.param({"homeless": "maybe"}, DEMOGRAPHIC, {"homeless"}, set(), id="flag-not-boolean"),
]


def resource_for(where: Any, data_standard: int) -> str:
    return where[data_standard] if isinstance(where, dict) else where


@pytest.mark.parametrize(("values", "where", "not_logged", "absent"), LEFT_OUT)
@pytest.mark.parametrize("data_standard", [5, 6])
def test_a_value_read_and_left_out_is_not_logged_as_carried(
    values: dict[str, Any],
    where: Any,
    not_logged: set[str],
    absent: set[str],
    data_standard: int,
) -> None:
    frame, keys = child(**values)
    resource = resource_for(where, data_standard)
    payload = payload_of(mapped(frame, keys, data_standard), resource, keys[0])
    if resource == DIRECTORIES:  # 6.x: an address it cannot send leaves no directory at all
        assert payload is None
        return
    assert payload is not None, f"{resource} is still sent"
    assert not absent & set(payload.body), "the body does not hold it"
    assert not not_logged & set(payload.fields), f"{resource} logs what it did not carry"


# the same child with usable values: each of those fields is carried (the control). A false
# flag is carried too: the body is built from it, and what the body lacks tells it
CARRIED = [
    pytest.param({}, DEMOGRAPHIC, {"race", "home_language", "disability", "iep", "homeless"}),
    pytest.param({}, ADDRESSED, {"address_street", "address_city", "address_zip"}),
    pytest.param({}, SSA, {"exit_date", "exit_reason", "entry_date", "birth_date"}),
    pytest.param({"dual_language_learner": False}, SEOA, {"dual_language_learner"}, id="dll-no"),
    pytest.param(
        {"disability": False, "homeless": False},
        DEMOGRAPHIC,
        {"disability", "homeless"},
        id="false-flags",
    ),
    pytest.param({"ifsp": True, "iep": True}, SSEPA, {"ifsp", "entry_date"}, id="ifsp"),
    pytest.param({"ifsp": False}, SSEPA, {"iep", "ifsp"}, id="iep"),
]


@pytest.mark.parametrize(("values", "where", "logged"), CARRIED)
@pytest.mark.parametrize("data_standard", [5, 6])
def test_a_value_the_body_holds_is_logged_as_carried(
    values: dict[str, Any], where: Any, logged: set[str], data_standard: int
) -> None:
    frame, keys = child(**values)
    resource = resource_for(where, data_standard)
    payload = payload_of(mapped(frame, keys, data_standard), resource, keys[0])
    assert payload is not None and logged <= set(payload.fields)


# --- property: the log never under-states, nothing unpermitted leaves ----------------------

ODD = {  # values the mapping reads and may not be able to send
    "race": ["two_or_more", "white", "unknown"],
    "home_language": ["zzz", "spa"],
    "address_zip": ["054", "05401"],
    "address_state": ["ZZ", "VT"],
    "exit_date": ["2026-05", dt.date(2026, 5, 1), None],
    "exit_reason": ["aged_out", "family_moved", None],
    "homeless": [True, False, "maybe"],
    "disability": [True, False],
    "iep": [True, False],
    "ifsp": [True, False],
    "dual_language_learner": [True, False, None],
    "state_student_id": [None, "9000000001"],
    "middle_name": [None, "Lee"],
    "program_type": [ProgramType.HEAD_START.value, ProgramType.EARLY_HEAD_START.value],
}


def changed(value: Any) -> list[Any]:
    """A null and another value of the same kind (what a field the body does not depend on
    can be turned into without changing the body); nothing for a null (no value: nothing
    to carry)."""
    if value is None or (not isinstance(value, str | bool) and pd.isna(value)):
        return []
    if isinstance(value, bool):
        other: Any = not value
    elif isinstance(value, dt.date):
        other = value - dt.timedelta(days=3 * 365 + 40)
    elif isinstance(value, str):
        other = value + "X"
    else:
        other = "X"
    return [None, other]


def contents(result: Mapped, key: tuple[str, str]) -> dict[str, bytes]:
    return {p.resource: p.content for p in result.payloads if p.child_key == key}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    permitted=st.sets(st.sampled_from(sorted(MAPPED_FIELDS)), min_size=8),
    choices=st.fixed_dictionaries({k: st.sampled_from(v) for k, v in ODD.items()}),
    data_standard=st.sampled_from([5, 6]),
)
def test_a_field_the_log_does_not_name_does_not_change_the_body(
    permitted: set[str], choices: dict[str, Any], data_standard: int
) -> None:
    """Oracle from the rule, not the mapping: a field is carried when the body depends on it.
    For each resource sent, every permitted field it does not log can be nulled or changed
    without changing that body (unless the child's student or school association is then
    withheld, which withholds every resource of the child); every field it logs is permitted
    and one the resource can carry; no field outside the agreement is logged."""
    frame, keys = child(**choices)
    columns = [c for c in CATALOG if c in permitted | {"program_code", "child_local_id"}]
    frame = frame[columns]
    before = mapped(frame, keys, data_standard)
    sent = contents(before, keys[0])
    for payload in before.payloads:
        if payload.child_key is None:
            continue
        assert set(payload.fields) <= set(columns), "only permitted fields"
        assert set(payload.fields) <= RESOURCE_FIELDS[data_standard][payload.resource]
    logged = {p.resource: set(p.fields) for p in before.payloads if p.child_key == keys[0]}
    for name in columns:
        unnamed = [r for r in sent if name not in logged[r]]
        if not unnamed:
            continue
        for value in changed(frame.at[0, name]):
            other = frame.copy()
            other[name] = other[name].astype(object)
            other.at[0, name] = value
            after = contents(mapped(other, keys, data_standard), keys[0])
            for resource in unnamed:
                if not {STUDENTS, SSA} <= set(after):
                    # a student goes only with its school association and the rest only after
                    # both: what the other lacks withholds it whole, carrying nothing
                    assert resource not in after
                    continue
                assert after.get(resource) == sent[resource], (
                    f"{resource} depends on {name} but does not log it"
                )


# --- at the contract server: the log equals what the API holds ------------------------------

# Which body keys hold which catalog field, written from the Ed-Fi resource definitions (the
# server's copy is read back, not the mapper's payloads)
HOLDS = {
    "firstName": "first_name",
    "lastSurname": "last_name",
    "middleName": "middle_name",
    "birthDate": "birth_date",
    "entryDate": "entry_date",
    "beginDate": "entry_date",
    "exitWithdrawDate": "exit_date",
    "endDate": "exit_date",
    "exitWithdrawTypeDescriptor": "exit_reason",
    "reasonExitedDescriptor": "exit_reason",
    "sexDescriptor": "sex",
    "races": "race",
    "hispanicLatinoEthnicity": "ethnicity",
    "languages": "home_language",
    "disabilities": "disability",
    "studentIndicators": "dual_language_learner",
    "addresses": "address_street",
}
# made of (a descriptor chosen by them) or told by what the body lacks (a false flag), beside
# the student id's own fields
FLAGS = {"disability", "homeless", "foster_care", "ifsp", "iep"}
DERIVED = {
    SSA: {"birth_date", "entry_date", "program_type"},
    SEOA: FLAGS | {"birth_date", "entry_date", "program_type"},
    DEMOGRAPHICS: FLAGS | {"birth_date", "entry_date", "program_type"},
    DIRECTORIES: set(),
    SPA: {"program_type"},
    SSEPA: {"ifsp", "iep", "program_type", "birth_date", "entry_date"},
    STUDENTS: set(),
}
ID = {"state_student_id", "child_local_id", "program_code"}


def held_fields(body: dict[str, Any]) -> set[str]:
    """The catalog fields a body read back from the API holds, by its keys."""
    names = {HOLDS[k] for k in body if k in HOLDS}
    for item in body.get("studentCharacteristics", []):
        descriptor = item["studentCharacteristicDescriptor"].split("#")[-1]
        names.add({"Homeless": "homeless", "Foster Care": "foster_care"}[descriptor])
    if body.get("addresses"):
        names |= {"address_street", "address_city", "address_state", "address_zip"}
    return names


@pytest.mark.parametrize("dropped", [(), ("race", "home_language", "address_zip", "homeless")])
def test_what_the_api_holds_is_exactly_what_is_logged_and_nothing_unpermitted_leaves(
    server: EdfiContractServer, make_destination: Any, data_standard: int, dropped: tuple[str, ...]
) -> None:
    frame, keys = synthetic_frame(40, seed=11)
    frame = frame.astype(object)
    for i in range(0, 40, 4):  # values that cannot all be sent
        frame.at[i, "race"] = "two_or_more"
        frame.at[i + 1, "home_language"] = "zzz"
        frame.at[i + 2, "address_zip"] = "054"
        frame.at[i + 3, "exit_date"] = "2026-05"
    frame = frame.drop(columns=list(dropped))
    destination: EdfiDestination = make_destination()
    result = destination.deliver(records_batch(frame, keys))
    carried = result.carried or {}
    ids = {}
    for key, row in zip(keys, frame.to_dict("records"), strict=True):
        state_id = row.get("state_student_id")
        ids[state_id if isinstance(state_id, str) else f"{key[0]}-{key[1]}"] = key
    checked = 0
    for resource in RESOURCE_FIELDS[data_standard]:
        for body in server.held(resource) if resource != "programs" else []:
            key = ids[body["studentReference"]["studentUniqueId"] if "studentReference" in body
                      else body["studentUniqueId"]]  # fmt: skip
            logged = {f.split(":", 1)[1] for f in carried[key] if f.startswith(f"{resource}:")} - ID
            there = held_fields(body)
            assert there <= logged, f"{resource}: the API holds {there - logged} unlogged"
            assert logged <= there | DERIVED[resource], f"{resource}: logs {logged - there}"
            assert not logged & set(dropped), "a field the agreement does not permit"
            checked += 1
    assert checked > 80
    text = " ".join(str(b) for r in RESOURCE_FIELDS[data_standard] for b in server.held(r))
    if "address_zip" in dropped:
        assert "postalCode" not in text, "no address without a permitted ZIP"
    if "race" in dropped:
        assert "raceDescriptor" not in text
