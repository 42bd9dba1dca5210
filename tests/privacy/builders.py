"""Builders for decision tests: a valid case by default, each test overriding one thing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from privacy.agreements import Agreement
from privacy.decision import DecisionInputs, RecipientInfo
from privacy.fields import CATALOG, Kind
from privacy.participation import OptIn, ParticipationState, ProgramStatus
from schemas.codes import OptInScope

RUN = dt.date(2026, 11, 27)
DAY = dt.timedelta(days=1)
SEDS = RecipientInfo("VT-AOE", "state_education_data_system", "state", "VT")
LEA = RecipientInfo("VT-BSD", "local_education_agency", "local", "VT")
FEDERAL = RecipientInfo("HHS-OHS", "federal_agency", "federal", "VT")  # a regional office
RESEARCHER = RecipientInfo("UVM-CRC", "researcher", "acts_for_program", "VT")
PRIVATE = RecipientInfo("ACME", "other", "private", "VT")
NOWHERE = RecipientInfo("HHS-OHS", "federal_agency", "federal")  # no jurisdiction on record
PURPOSE = "state_longitudinal_data_system"
PROGRAM = "VT-HS-01"
AIAN = "NM-AIAN-07"
ALL_CATEGORIES = ["identity", "demographics", "enrollment", "attendance", "services"]

_SAMPLE = {
    Kind.TEXT: "x",
    Kind.IDENTIFIER: "ID1",
    Kind.CODE: "code",
    Kind.DATE: dt.date(2022, 5, 1),
    Kind.FLAG: True,
    Kind.COUNT: 3,
    Kind.ZIP: "05401",
}


def agreement(**overrides: Any) -> Agreement:
    """A valid consent agreement with VT-AOE, in force and reviewed on ``RUN``."""
    data: dict[str, Any] = {
        "id": "vt-aoe-consent",
        "recipient": SEDS.code,
        "legal_basis": "consent",
        "purpose": "state early childhood data system",
        "purpose_code": PURPOSE,
        "effective": dt.date(2025, 7, 1),
        "last_reviewed": dt.date(2026, 7, 1),
        "record_categories": ["identity", "demographics", "enrollment"],
        "fields": {
            "program_code": "keep",
            "child_local_id": "keep",
            "birth_date": "keep",
            "race": "keep",
            "entry_date": "keep",
        },
    }
    data.update(overrides)
    return Agreement.model_validate(data)


def unchecked(base: Agreement, **update: Any) -> Agreement:
    """``base`` with fields replaced without the loader's validation (defence-in-depth tests)."""
    return base.model_copy(update=update)


def child(child_id: int, program: str = PROGRAM, **fields: Any) -> dict[str, Any]:
    """A synthetic child row with every catalog field (no real person)."""
    row: dict[str, Any] = {name: _SAMPLE[f.kind] for name, f in CATALOG.items()}
    row.update(child_id=child_id, program_code=program, child_local_id=f"L{child_id:04d}")
    row["program_type"] = "aian" if "AIAN" in (program or "") else "head_start"
    row.update(fields)
    return row


def consent(child_id: int, **overrides: Any) -> dict[str, Any]:
    """A consent valid for ``SEDS`` and ``PURPOSE`` on ``RUN`` covering the five everyday
    categories, signed by the child's mother (a guardian row of the same child, no dates)."""
    row: dict[str, Any] = {
        "child_id": child_id,
        "signer_child_id": child_id,
        "signer_relationship": "mother",
        "signer_since": None,
        "signer_until": None,
        "signature_evidence": "esign:1",
        "signed_date": RUN - 30 * DAY,
        "recipient_code": SEDS.code,
        "recipient_category": None,
        "purpose_code": PURPOSE,
        "record_categories": list(ALL_CATEGORIES),
        "expires_date": None,
        "revoked_date": None,
    }
    row.update(overrides)
    return row


def notice(child_id: int, **overrides: Any) -> dict[str, Any]:
    """A notice to ``LEA`` given 30 days before ``RUN``, not refused."""
    row: dict[str, Any] = {
        "child_id": child_id,
        "recipient_code": LEA.code,
        "notified_date": RUN - 30 * DAY,
        "refused_date": None,
    }
    row.update(overrides)
    return row


def statement(child_id: int, field: str, filed: dt.date = RUN - 5 * DAY) -> dict[str, Any]:
    """A parent statement on file for ``field``."""
    return {"child_id": child_id, "field": field, "filed_date": filed}


def _frame(rows: Iterable[Mapping[str, Any]], columns: list[str]) -> pd.DataFrame:
    rows = list(rows)
    if not rows:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    return pd.DataFrame(list(rows), columns=columns)


def inputs(
    children: Iterable[Mapping[str, Any]],
    consents: Iterable[Mapping[str, Any]] = (),
    notices: Iterable[Mapping[str, Any]] = (),
    statements: Iterable[Mapping[str, Any]] = (),
) -> DecisionInputs:
    """The frames of the extract contract from rows."""
    return DecisionInputs(
        children=_frame(children, ["child_id", *CATALOG]),
        consents=_frame(consents, list(consent(0))),
        notices=_frame(notices, list(notice(0))),
        statements=_frame(statements, ["child_id", "field", "filed_date"]),
    )


def participating(
    *codes: str,
    aian: bool = False,
    scope: OptInScope | None = None,
    excluded: Iterable[str] = (),
    state: ParticipationState = ParticipationState.PARTICIPATING,
) -> dict[str, ProgramStatus]:
    """Registry entries for ``codes``; with ``scope``, an active opt-in of that scope."""
    opt_in = (
        OptIn("Tribal Council Resolution 2026-14", scope, frozenset(excluded), RUN, None, "t")
        if scope is not None
        else None
    )
    return {
        code: ProgramStatus(code, aian, state, RUN - 100 * DAY, "tester", opt_in) for code in codes
    }
