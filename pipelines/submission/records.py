"""Record-level output: disclosed children's permitted fields, shaped into the destination's
file specs (or kept as plan columns for an API destination), with one disclosure-log line per
child naming the fields it carried and the digest of exactly its rows."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from pipelines.mapping import RenderResult, render
from pipelines.submission.aggregate import breakdown_domains, program_counts
from pipelines.submission.collect import ChildKey, Collected
from privacy.decision import Decision
from privacy.reasons import Reason
from privacy.transforms import FieldPlan
from schemas import ParentStatement
from schemas.filespec import FileSpec

if TYPE_CHECKING:
    from pipelines.submission.prepare import Preparation

RECORDS = "records"
KEY = ["program_code", "child_local_id"]
STATEMENT_COLUMN = "statement_field"
STATEMENT_PREFIX = "parent_statement:"


@dataclass(frozen=True)
class Statements:
    """Parent statements rendered in their file's layout; row ``i`` belongs to the child at
    ``positions[i]`` of the chunk's disclosed children and disputes ``fields[i]``."""

    name: str
    frame: pd.DataFrame
    positions: list[int]
    fields_: pd.Series


REQUIRED_FIELD_MISSING = Reason.REQUIRED_FIELD_MISSING.value
STATEMENT_SOURCES = ("statement_field", "statement", "statement_filed_date")


class RecordMaker:
    """Turns a chunk's disclosed children into outgoing rows, per program."""

    def __init__(self, preparation: Preparation) -> None:
        self.p = preparation

    def add(self, decision: Decision, rows: pd.DataFrame, plan: FieldPlan) -> None:
        """Disclosed children of ``rows`` (programs sharing ``plan``) into outgoing rows."""
        disclosed = decision.redact(rows)
        if disclosed.empty:
            return
        ids = rows[["child_id", *KEY]].set_index("child_id").loc[disclosed["child_id"]]
        keys: list[ChildKey] = list(
            zip(
                ids["program_code"].astype(str).tolist(),
                ids["child_local_id"].astype(str).tolist(),
                strict=True,
            )
        )
        permitted = plan.apply(disclosed, self.p.run_date)
        if self.p.is_edfi:
            self._split({RECORDS: permitted}, keys, decision, disclosed, set(plan.fields))
            return
        results = [
            (spec, render(spec, permitted, plan.columns, child_keys=keys))
            for spec in self.p.record_specs
        ]
        dropped = self._unrenderable(results)
        frames = {spec.file_name: result.frame for spec, result in results}
        if dropped:  # every file loses the child's row
            for spec, result in results:
                rows = [key not in dropped for key in result.child_keys]
                frames[spec.file_name] = result.frame.loc[rows].reset_index(drop=True)
            keep = [k not in dropped for k in keys]
            # only the ids are used of it below: not every extract column filtered
            disclosed = disclosed.loc[keep, ["child_id"]].reset_index(drop=True)
            permitted = permitted.loc[keep].reset_index(drop=True)
            keys = [k for k, ok in zip(keys, keep, strict=True) if ok]
        used = {
            plan.source(col.source)
            for spec in self.p.record_specs
            for col in spec.columns
            if col.source in plan.columns
        }
        statements = None
        if self.p.carries_statements and not decision.statements.empty:
            statements = self._statements(decision, disclosed, permitted, keys, plan)
        self._split(frames, keys, decision, disclosed, used, statements)

    def _unrenderable(self, results: list[tuple[FileSpec, RenderResult]]) -> set[ChildKey]:
        """Children a required column cannot be written for: withheld from every file."""
        dropped: set[ChildKey] = set()
        for spec, result in results:
            bad = result.unrenderable
            for row in bad.drop_duplicates(KEY).itertuples():
                key = (str(row.program_code), str(row.child_local_id))
                if key in dropped:
                    continue
                dropped.add(key)
                c = self.p.collected[key[0]]
                c.reasons[REQUIRED_FIELD_MISSING] = c.reasons.get(REQUIRED_FIELD_MISSING, 0) + 1
                c.reasons["disclosed"] = c.reasons.get("disclosed", 0) - 1
                c.redactions.append(
                    {
                        "subject": key[1],
                        "field": None,
                        "reason": REQUIRED_FIELD_MISSING,
                        "rule": f"{spec.name}: required column {row.column} has no {row.field} "
                        f"({str(row.reason).lower()})",
                    }
                )
        return dropped

    def _split(
        self,
        frames: dict[str, pd.DataFrame],
        keys: list[ChildKey],
        decision: Decision,
        disclosed: pd.DataFrame,
        used: set[str],
        statements: Statements | None = None,
    ) -> None:
        """Hand each program its rows, and log one disclosure line per child: the fields it
        carried and the digest of exactly its rows, parent statements sent beside a field
        included (``parent_statement:<field>``)."""
        fields = [f for f in decision.fields if f in used]
        carried = decision.field_mask.reindex(disclosed["child_id"])[fields].to_numpy(dtype=bool)
        carried_fields = _field_lists(fields, carried)
        digests = _digests(frames, len(keys), statements)
        disputed: dict[int, list[str]] = {}
        if statements is not None:
            for position, field in zip(statements.positions, statements.fields_, strict=True):
                disputed.setdefault(position, []).append(f"{STATEMENT_PREFIX}{field}")
        disputed = {i: sorted(named) for i, named in disputed.items()}
        none: list[str] = []
        # each program's rows in their order: one stable sort, then a slice per program
        order, runs = _by_program(keys)
        by_program = {name: frame.take(order) for name, frame in frames.items()}
        for program, start, stop in runs:
            at = order[start:stop]
            c = self.p.collected[program]
            part_keys = [keys[i] for i in at]
            for name, frame in by_program.items():
                c.keep(name, frame.iloc[start:stop].reset_index(drop=True), part_keys)
            c.disclosures.extend(
                {
                    "program_code": code,
                    "child_local_id": local_id,
                    "fields": carried_fields[i] + disputed.get(i, none),  # a list of its own
                    "digest": digests[i],
                }
                for i, (code, local_id) in zip(at, part_keys, strict=True)
            )
            c.counts["disclosed"] += len(at)
        if statements is not None:
            self._keep_statements(statements, keys)

    def _statements(
        self,
        decision: Decision,
        disclosed: pd.DataFrame,
        permitted: pd.DataFrame,
        keys: list[ChildKey],
        plan: FieldPlan,
    ) -> Statements | None:
        """Parent statements that travel with disclosed fields (45 CFR 1303.24(c)), in their
        file's layout, with the position (in ``keys``) of the child each row belongs to."""
        spec = next(s for s in self.p.specs if s.name == "hs_parent_statements")
        wanted = decision.statements.merge(
            disclosed[["child_id"]].reset_index(names="position"), on="child_id"
        )
        if wanted.empty:
            return None
        with self.p.context.engine.connect() as connection:
            texts = pd.DataFrame(
                connection.execute(
                    select(
                        ParentStatement.child_id,
                        ParentStatement.field,
                        ParentStatement.statement,
                        ParentStatement.filed_date,
                    ).where(ParentStatement.child_id.in_(wanted["child_id"].tolist()))
                ).all(),
                columns=["child_id", "field", "statement", "statement_filed_date"],
            )
        rows = wanted.merge(texts, on=["child_id", "field"])
        ident = permitted[KEY].iloc[rows["position"].to_numpy()]
        frame = pd.concat(
            [
                ident.reset_index(drop=True),
                rows[["field", "statement", "statement_filed_date"]]
                .rename(columns={"field": "statement_field"})
                .reset_index(drop=True),
            ],
            axis=1,
        )
        order = frame.assign(_at=rows["position"].to_numpy()).sort_values(
            ["_at", "statement_field"], kind="stable"
        )
        positions = order["_at"].tolist()
        row_keys = [keys[i] for i in positions]
        frame = order.drop(columns="_at").reset_index(drop=True)
        result = render(spec, frame, [*plan.columns, *STATEMENT_SOURCES], child_keys=row_keys)
        return Statements(spec.file_name, result.frame, positions, frame["statement_field"])

    def _keep_statements(self, statements: Statements, keys: list[ChildKey]) -> None:
        """Hand each program its statement rows."""
        row_keys = [keys[i] for i in statements.positions]
        programs = pd.Series([k[0] for k in row_keys])
        for program, positions in programs.groupby(programs).groups.items():
            at = list(positions)
            self.p.collected[str(program)].keep(
                statements.name,
                statements.frame.iloc[at].reset_index(drop=True),
                [row_keys[i] for i in at],
            )

    def frames(self, program: str, c: Collected) -> dict[str, Any]:
        """The program's outgoing frames, whole: record files (or records) and aggregates."""
        frames: dict[str, Any] = {}
        for name, parts in c.artifacts.items():
            frames[name] = (pd.concat(parts, ignore_index=True), c.keys[name])
        for spec in self.p.record_specs:
            if spec.file_name not in frames:
                empty = pd.DataFrame(
                    {col: pd.Series([], dtype=object) for col in spec.column_names}
                )
                frames[spec.file_name] = (empty, [])
        for spec in self.p.aggregate_specs:
            permitted = pd.concat(c.aggregate, ignore_index=True) if c.aggregate else pd.DataFrame()
            domains = breakdown_domains(spec, self.p.plan_for(program))
            table, hidden = program_counts(
                program, permitted, self.p.agreement.min_cell_size, domains
            )
            c.counts["suppressed_cells"] = hidden
            if table.empty:  # too few children, or none: nothing is published, no empty table
                continue
            frames[spec.file_name] = (
                render(spec, table, list(table.columns), child_keys=[]).frame,
                [],
            )
        return frames


def _by_program(keys: list[ChildKey]) -> tuple[list[int], list[tuple[str, int, int]]]:
    """Positions of ``keys`` ordered by program (stable: each program's in their order), and
    each program's run ``(program, start, stop)`` in that order."""
    if not keys:
        return [], []
    programs = np.array([k[0] for k in keys], dtype=object)
    order = np.argsort(programs, kind="stable")
    ordered = programs[order]
    names, starts = np.unique(ordered, return_index=True)
    stops = [*starts[1:].tolist(), len(keys)]
    runs = [
        (str(name), start, stop)
        for name, start, stop in zip(names.tolist(), starts.tolist(), stops, strict=True)
    ]
    return order.tolist(), runs


def _field_lists(fields: list[str], carried: np.ndarray) -> list[list[str]]:
    """Per row of ``carried`` (a boolean row per child, a column per field), the fields it
    carries: worked out once per distinct row, not once per child."""
    if not len(carried) or not fields:
        return [[] for _ in range(len(carried))]
    packed = np.packbits(carried, axis=1)  # a row's mask as bytes: one value to group by
    rows = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    named = [
        [f for f, keep in zip(fields, carried[i].tolist(), strict=True) if keep]
        for i in first.tolist()
    ]
    return [named[k] for k in inverse.reshape(-1).tolist()]


def _joined(frame: pd.DataFrame) -> list[str]:
    """Each row's cells as text joined by ``\x1f`` (a missing cell is empty)."""
    columns = []
    for name in frame.columns:
        values = frame[name].to_numpy(dtype=object, copy=True)
        values[frame[name].isna().to_numpy()] = ""
        if pd.api.types.infer_dtype(values, skipna=False) == "string":
            columns.append(values.tolist())  # text already: as it is
            continue
        columns.append([value if type(value) is str else str(value) for value in values.tolist()])
    return ["\x1f".join(cells) for cells in zip(*columns, strict=True)]


def _digests(frames: dict[str, pd.DataFrame], n: int, statements: Statements | None) -> list[str]:
    """SHA-256 per child position over each of its rows, file by file in file-name order
    (``name \x1e cells joined by \x1f \x1d`` per row): one row per record file, and its
    parent statements' rows (in ``Field`` order) in theirs."""
    parts: dict[str, list[str]] = {}
    for name, frame in frames.items():
        parts[name] = [f"{name}\x1e{line}\x1d" for line in _joined(frame)]
    if statements is not None and not statements.frame.empty:
        by_child = [""] * n
        for position, line in zip(statements.positions, _joined(statements.frame), strict=True):
            by_child[position] += f"{statements.name}\x1e{line}\x1d"
        parts[statements.name] = by_child
    if not parts:
        return [hashlib.sha256(b"").hexdigest()] * n
    lines = ["".join(cells) for cells in zip(*(parts[name] for name in sorted(parts)), strict=True)]
    return [hashlib.sha256(line.encode()).hexdigest() for line in lines]
