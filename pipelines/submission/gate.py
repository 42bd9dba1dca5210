"""The output privacy gate: every outgoing frame of every program through the output suite.

Frames of the same layout are validated together (one suite run for all programs); only when
that fails is each program's frame validated alone, to say which program stops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from pipelines.quality.output_suite import validate_output
from privacy.fields import CATALOG, Kind
from privacy.transforms import PSEUDONYM_PATTERN, FieldPlan

if TYPE_CHECKING:
    from pipelines.submission.prepare import Preparation

NAME_FIELDS = frozenset(
    {"first_name", "middle_name", "last_name", "guardian_first_name", "guardian_last_name"}
)
FREE_TEXT = frozenset({"statement"})


def _check(
    p: Preparation, name: str, frame: pd.DataFrame, plan: FieldPlan, names: set[str]
) -> dict[str, Any]:
    spec = next((s for s in p.specs if s.file_name == name), None)
    if spec is None:  # an API destination's records: exactly the plan's columns
        sources = {c: plan.source(c) for c in plan.columns}
        pseudonymized = {r.column for r in plan.rules if r.transform.name == "pseudonymize"}
        pseudonyms = [c for c in plan.columns if c in pseudonymized]
    else:
        sources = {
            c.name: plan.source(c.source) if c.source in plan.columns else c.source
            for c in spec.columns
        }
        pseudonymized = {r.column for r in plan.rules if r.transform.name == "pseudonymize"}
        pseudonyms = [c.name for c in spec.columns if c.source in pseudonymized]
    aggregate = spec is not None and spec.level == "aggregate"
    if aggregate:  # the rendered counts are text; the cell-size rule reads numbers
        counts = frame["ChildCount"].replace({spec.suppressed_marker: None})
        frame = frame.assign(ChildCount=pd.to_numeric(counts).astype("Float64"))
    result = validate_output(
        frame,
        expected_columns=list(sources),
        pseudonym_columns=pseudonyms,
        pseudonym_pattern=PSEUDONYM_PATTERN,
        name_columns=[c for c, s in sources.items() if s in NAME_FIELDS | FREE_TEXT],
        forbidden_values=names,
        aggregate_count_column="ChildCount"
        if spec is not None and spec.level == "aggregate"
        else None,
        min_cell_size=p.agreement.min_cell_size,
        numeric_id_columns=[
            c for c, s in sources.items() if s in CATALOG and CATALOG[s].kind is Kind.IDENTIFIER
        ],
    )
    return {"ok": result.ok, "failures": result.failures, "report": result.report}


def output_gate(p: Preparation, frames: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Program -> frame name -> gate result (ok, failures, report: no values)."""
    results: dict[str, dict[str, Any]] = {code: {} for code in frames}
    names = set().union(*(c.names for c in p.collected.values()))
    layouts: dict[tuple[str, int], list[str]] = {}
    for code, program_frames in frames.items():
        plan = p.plan_for(code)
        for name in program_frames:
            layouts.setdefault((name, id(plan)), []).append(code)
    for (name, _), codes in layouts.items():
        plan = p.plan_for(codes[0])
        whole = pd.concat([frames[code][name][0] for code in codes], ignore_index=True)
        together = _check(p, name, whole, plan, names)
        for code in codes:
            results[code][name] = together
        if not together["ok"] and len(codes) > 1:
            for code in codes:
                results[code][name] = _check(p, name, frames[code][name][0], plan, names)
    return results
