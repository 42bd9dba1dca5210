"""A small world for output-gate tests: real agreements, plans and file layouts, a stub of the
preparation the gate reads (specs, agreement, plan, the extracted children), and frames made
by the real transforms and renderer, so a test changes one cell and asks whether the batch
stops."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

from pipelines.mapping import render
from pipelines.submission.gate import IDENTITY_COLUMNS, output_gate
from privacy.agreements import Agreement, load_agreement
from privacy.keys import RecipientKey
from privacy.transforms import FieldPlan, compile_plan
from schemas.filespec import FileSpec, load_spec
from tests.pipelines.quality_frames import RUN_DATE, clean_extract

AGREEMENTS = Path(__file__).resolve().parents[2] / "config" / "agreements"
PROGRAM = "VT-HS-01"
STATEMENTS = "hs_parent_statements.csv"
IDENTITY = "hs_child_identity.csv"
ENROLLMENT = "hs_enrollment.csv"
RECORDS = "records"
STATEMENT_SOURCES = ("statement_field", "statement", "statement_filed_date")


class Keys:
    """One fixed test key per recipient."""

    def key(self, recipient_code: str) -> RecipientKey:
        return RecipientKey("gatetest1", b"k" * 32)


def children(people: list[dict[str, Any]]) -> pd.DataFrame:
    """An extract frame (every catalog field) whose rows take the given overrides."""
    frame = clean_extract(len(people), program_code=PROGRAM)
    for i, person in enumerate(people):
        for column, value in person.items():
            frame[column] = frame[column].astype(object)
            frame.at[i, column] = value
    return frame


@dataclass
class StubPreparation:
    """What ``output_gate`` reads of a preparation (the run date the frames were made on)."""

    agreement: Agreement
    plan: FieldPlan
    specs: list[FileSpec]
    extract: pd.DataFrame
    identity: list[pd.DataFrame] = field(default_factory=list)
    collected: dict[str, Any] = field(default_factory=dict)
    run_date: dt.date = RUN_DATE

    def __post_init__(self) -> None:
        self.identity = [self.extract[IDENTITY_COLUMNS]]  # what identity_of keeps of a chunk
        names = pd.concat([self.extract["first_name"], self.extract["last_name"]])
        self.collected = {PROGRAM: SimpleNamespace(names=set(names.dropna().astype(str)))}

    def plan_for(self, program: str) -> FieldPlan:
        return self.plan


def preparation(agreement_id: str, extract: pd.DataFrame, formats: list[str]) -> StubPreparation:
    agreement = load_agreement(AGREEMENTS / f"{agreement_id}.yaml")
    plan = compile_plan(agreement, Keys(), recipient_code=agreement.recipient)
    return StubPreparation(agreement, plan, [load_spec(f) for f in formats], extract)


def keys_of(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return [
        (str(p), str(c))
        for p, c in zip(frame["program_code"], frame["child_local_id"], strict=True)
    ]


def record_frames(p: StubPreparation) -> dict[str, tuple[pd.DataFrame, list[tuple[str, str]]]]:
    """The record files (or, with no specs, the API records) of every child of the extract."""
    permitted = p.plan.apply(p.extract, p.run_date)
    keys = keys_of(p.extract)
    if not p.specs:
        return {RECORDS: (permitted.reset_index(drop=True), keys)}
    out = {}
    for spec in p.specs:
        if spec.name == "hs_parent_statements":
            continue
        result = render(spec, permitted, p.plan.columns, child_keys=keys)
        assert result.unrenderable.empty, spec.name
        out[spec.file_name] = (result.frame, keys)
    return out


def statement_frame(
    p: StubPreparation, statements: list[tuple[int, str, str]]
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """The statements file for ``(child row, field, text)`` triples."""
    spec = next(s for s in p.specs if s.name == "hs_parent_statements")
    permitted = p.plan.apply(p.extract, p.run_date).reset_index(drop=True)
    rows = [i for i, _, _ in statements]
    frame = pd.DataFrame(
        {
            "program_code": permitted["program_code"].iloc[rows].tolist(),
            "child_local_id": permitted["child_local_id"].iloc[rows].tolist(),
            "statement_field": [f for _, f, _ in statements],
            "statement": [t for _, _, t in statements],
            "statement_filed_date": [dt.date(2026, 10, 1)] * len(rows),
        }
    )
    keys = [keys_of(p.extract)[i] for i in rows]
    result = render(spec, frame, [*p.plan.columns, *STATEMENT_SOURCES], child_keys=keys)
    return result.frame, keys


def gate(p: StubPreparation, frames: dict[str, tuple[pd.DataFrame, list]]) -> list[str]:
    """The gate's failures for the program (empty: the batch leaves)."""
    results = output_gate(p, {PROGRAM: frames})  # type: ignore[arg-type]
    return [f for result in results[PROGRAM].values() for f in result["failures"]]
