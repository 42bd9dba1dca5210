"""The output privacy gate: every outgoing frame of every program through the output suite.

Frames of the same layout are validated together (one suite run for all programs); only when
that fails is each program's frame validated alone, to say which program stops.

Each column gets the rules that fit what it can carry (see
:mod:`pipelines.quality.output_suite`), decided from the field it comes from and how the
agreement sends it:

- a text field (names, street, city, guardian contacts) and a pseudonymized id: checked
  against every value of the row's own child that the agreement does not send as recorded;
  a text field the agreement keeps must also be that child's own value (or empty);
- a generalized field (month, year, age in months, bucket, ZIP3): must hold no full date,
  whoever's and in whatever common form (ISO, US, ``15.11.2021``, ``Nov 15, 2021``, compact
  ``20211115``, ISO ordinal or week, Spanish or French month names, or the column's own
  pattern; Excel's day number ``44515`` too, except in a bucket's band), and not the row
  child's full value (a ZIP, a banded count);
- a field cut to the month (the ``month`` transform): must be empty or exactly what the
  column writes for the row child's month (a file's date column: its pattern without the day;
  any other column: the transform's ``YYYY-MM``), so another child's month stops too;
- a field cut to a year, an age in months, a band or three ZIP digits (the ``year``,
  ``age_months``, ``bucket`` and ``zip3`` transforms, :data:`EXACT`): must be empty or exactly
  what the rule's own transform writes for the row child's recorded value (with the plan's
  bins, on the run date), so another child's year, a year-month or week, months and days, an
  age in days, a decimal age, an exact age in a band column, another band, another child's
  ZIP3 or full ZIP, a ZIP+4 or any other text stops (the row child's own full value and a full
  date stay ``full_value``);
- a parent's statement: must not mention another child of the batch (their full name or id);
  a phone, e-mail or number in it is the parent's own words and travels (45 CFR 1303.24(c));
- a layout column whose field the agreement does not send: must be empty;
- codes, flags, counts, dates and identifiers the agreement keeps (a site code, a program
  code): no name check, so a site code equal to a surname passes.

The "batch" whose children a statement may not mention is every child extracted for the
programs prepared together, quarantined or withheld ones included.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipelines.quality.mentions import KeyIndex, id_keys, name_key_matrix
from pipelines.quality.output_suite import Columns, RowValues, validate_output
from privacy.fields import CATALOG, Kind
from privacy.transforms import PSEUDONYM_PATTERN, ColumnRule, FieldPlan, TransformContext
from schemas.filespec import ColumnType

if TYPE_CHECKING:
    from pipelines.submission.prepare import Preparation

KEY = ["program_code", "child_local_id"]
ID_FIELDS = ("child_local_id", "state_student_id")
ROW_FIELDS = tuple(
    name
    for name, f in CATALOG.items()
    if f.kind in (Kind.TEXT, Kind.DATE, Kind.ZIP) or name in ID_FIELDS
)
"""The fields whose values the row-wise rules look for: the child's own identifying data, and
every date and ZIP code (a field an agreement may send cut to the month, year or three digits,
whose full value in that column stops the batch: ``full_value``)."""
COUNT_FIELDS = tuple(name for name, f in CATALOG.items() if f.kind is Kind.COUNT)
"""Counts: row values only where the plan bands them (a band column carries the row child's
own band; its exact count there is ``full_value``)."""
IDENTITY_COLUMNS = list(dict.fromkeys([*KEY, *ROW_FIELDS, *COUNT_FIELDS]))
PASSED = "passed_input_gate"
STATEMENT = "statement"
STATEMENT_SOURCES = frozenset({"statement_field", STATEMENT, "statement_filed_date"})
SERIAL_FREE = frozenset({"year", "age_months", "zip3", "month"})
"""Transforms whose output is never a five-digit whole number (a year, an age in months, a
ZIP3, a month's text): a cell of Excel's day number there is a full date. Not ``bucket``: a
band's label is whatever number its bins say."""
MONTH_TEXT = "%Y-%m"
"""How the ``month`` transform writes a month (``privacy/transforms/month.py``), and so any
column but a file's date column (a string column, an API record)."""
EXACT = frozenset({"year", "age_months", "bucket", "zip3"})
"""Transforms whose column may carry only what the transform writes for the row child's own
recorded value (the child's year, age in months on the run date, band with the plan's bins,
ZIP3), or nothing: the gate asks the rule's own transform (:func:`written_by`)."""
PATTERN_EXEMPT = {
    "guardian_phone": frozenset({"phone_like"}),
    "guardian_email": frozenset({"email_like"}),
}


def identity_of(children: pd.DataFrame, passed: pd.Series) -> pd.DataFrame:
    """What the gate keeps of an extract chunk: the key, the row-wise fields, and whether the
    row passed the input gate (``passed``, by ``child_id``)."""
    out = children[IDENTITY_COLUMNS].copy()
    out[PASSED] = children["child_id"].isin(passed).to_numpy()
    return out


class Identities:
    """Every extracted child of the preparation, by (program code, local id), with the
    mention keys of the whole batch.

    Column-wise: each distinct name and id is split and keyed once
    (:func:`~pipelines.quality.mentions.name_key_matrix`), keys are built by array
    concatenation, and each row's own keys are a row of :attr:`own` (``None`` past them).
    The keys are made only when a frame carries a parent's statement (the only text searched
    for mentions); the row values of the same keys are looked up once for every frame that
    names them (:meth:`rows`)."""

    def __init__(self, parts: list[pd.DataFrame]) -> None:
        frame = (
            pd.concat(parts, ignore_index=True)
            if parts
            else pd.DataFrame({c: pd.Series([], dtype=object) for c in IDENTITY_COLUMNS})
        )
        if PASSED not in frame.columns:
            frame = frame.assign(**{PASSED: True})
        self.every = frame.astype({c: str for c in KEY}).reset_index(drop=True)
        # A key twice (the input gate quarantines duplicates): the row that passed is the one
        # an outgoing frame can hold; every row's names and ids still count for the batch.
        first = self.every.sort_values(PASSED, ascending=False, kind="stable")
        first = first.drop_duplicates(KEY, keep="first")
        self.first = first.index.to_numpy()
        """Position in :attr:`every` of each child's row (the one an outgoing row names)."""
        self.frame = first.reset_index(drop=True)
        self.position = dict(
            zip(
                zip(self.frame[KEY[0]].tolist(), self.frame[KEY[1]].tolist(), strict=True),
                range(len(self.frame)),
                strict=True,
            )
        )
        """(program code, local id) -> its row of :attr:`frame`."""
        self.looked_up: tuple[list[tuple[str, str]], np.ndarray, pd.DataFrame, dict] | None = None

    @cached_property
    def keys(self) -> np.ndarray:
        """Every extracted row's own mention keys (full names, then ids)."""
        frame = self.every
        return np.hstack(
            [
                name_key_matrix(frame["first_name"], frame["middle_name"], frame["last_name"]),
                id_keys(frame["child_local_id"]).reshape(-1, 1),
                id_keys(frame["state_student_id"]).reshape(-1, 1),
            ]
        )

    @cached_property
    def batch(self) -> KeyIndex:
        """The mention keys of every extracted row, indexed when first searched."""
        present = self.keys[pd.notna(self.keys)]
        return KeyIndex.lazy(set(present.tolist()))

    @cached_property
    def own(self) -> np.ndarray:
        """Row ``i`` of :attr:`frame`'s own keys (the child's, then its primary guardian's
        full name); the last row (none) is for unknown keys."""
        first = self.frame
        guardian = name_key_matrix(first["guardian_first_name"], None, first["guardian_last_name"])
        own = np.hstack([self.keys[self.first], guardian[:, :2]])
        return np.vstack([own, np.full((1, own.shape[1]), None, dtype=object)])

    def rows(
        self,
        keys: list[tuple[str, str]],
        kept: frozenset[str],
        counts: frozenset[str] = frozenset(),
        *,
        mentions: bool = True,
    ) -> tuple[RowValues, int]:
        """The row values of ``keys`` (of the count fields, only ``counts``) and how many keys
        name no extracted child; the rows' own mention keys and the batch's only with
        ``mentions`` (else none: no key)."""
        if not keys:
            empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in ROW_FIELDS})
            return RowValues(empty, kept, [], self.batch if mentions else KeyIndex()), 0
        if self.looked_up is None or self.looked_up[0] != keys:
            at = np.fromiter((self.position.get(k, -1) for k in keys), np.intp, len(keys))
            values = self.frame.reindex(at).drop(columns=[*KEY, PASSED])  # -1: missing values
            self.looked_up = (list(keys), at, values.reset_index(drop=True), {})
        _, at, values, forms = self.looked_up
        values = values.drop(columns=[c for c in COUNT_FIELDS if c not in counts])
        unknown = int((at < 0).sum())
        if not mentions:
            none = np.empty((len(keys), 0), dtype=object)
            return RowValues(values, kept, none, KeyIndex(), forms), unknown
        own = self.own[at]  # -1 (no such child) picks the trailing row of no keys
        return RowValues(values, kept, own, self.batch, forms), unknown


def written_by(rule: ColumnRule, run_date: dt.date) -> Callable[[pd.Series], np.ndarray]:
    """What ``rule``'s transform writes for each recorded value on ``run_date`` (each
    distinct value once): an object array, ``None`` where it writes nothing."""
    if isinstance(run_date, dt.datetime):  # as the plan applies it
        run_date = run_date.date()
    context = TransformContext(rule.field, rule.params, run_date)

    def write(recorded: pd.Series) -> np.ndarray:
        codes, uniques = pd.factorize(recorded, use_na_sentinel=True)
        written = rule.transform.apply(pd.Series(uniques), context).to_numpy(dtype=object)
        table = np.array([*written, None], dtype=object)  # code -1 (missing) picks None
        table[pd.isna(table)] = None
        return table[codes]

    return write


def _columns(
    sources: dict[str, str],
    plan: FieldPlan,
    record_level: bool,
    run_date: dt.date,
    date_formats: dict[str, tuple[str, str]] | None = None,
) -> Columns:
    """Which rules read which column, from each column's source and the plan's transform
    (``date_formats``: a layout's date column -> its full and month patterns)."""
    rules = {rule.column: rule for rule in plan.rules}
    transform = {rule.column: rule.transform.name for rule in plan.rules}
    field_of = {rule.column: rule.field.name for rule in plan.rules}
    text, empty, statements = [], [], []
    generalized: dict[str, str] = {}
    month_cut: dict[str, str] = {}
    exact: dict[str, Callable[[pd.Series], np.ndarray]] = {}
    serial_dates: set[str] = set()
    kept_text: dict[str, str] = {}
    exempt: dict[str, frozenset[str]] = {}
    for column, source in sources.items():
        if source in transform:
            name, how = field_of[source], transform[source]
            kind = CATALOG[name].kind
            exempt[column] = PATTERN_EXEMPT.get(name, frozenset())
            if how == "pseudonymize":
                text.append(column)
            elif how != "keep":
                generalized[column] = name
                if how in SERIAL_FREE:
                    serial_dates.add(column)
                if how == "month":  # a file's date column writes it with its month pattern
                    month_cut[column] = (date_formats or {}).get(column, ("", MONTH_TEXT))[1]
                if how in EXACT:
                    exact[column] = written_by(rules[source], run_date)
            if kind is Kind.TEXT:
                text.append(column)
                if how == "keep":
                    kept_text[column] = name
        elif source == STATEMENT:
            statements.append(column)
        elif source in STATEMENT_SOURCES or not record_level:
            continue
        elif source in CATALOG:  # a layout column the agreement does not send
            empty.append(column)
        else:  # a column of no known field: could carry anything
            text.append(column)
    return Columns(
        text=tuple(dict.fromkeys(text)),
        generalized=generalized,
        kept_text=kept_text,
        statements=tuple(statements),
        empty=tuple(empty),
        pattern_exempt=exempt,
        date_formats={c: f for c, f in (date_formats or {}).items() if c in generalized},
        month_cut=month_cut,
        exact=exact,
        serial_dates=frozenset(serial_dates),
    )


def _check(
    p: Preparation,
    name: str,
    frame: pd.DataFrame,
    keys: list[tuple[str, str]],
    plan: FieldPlan,
    identities: Identities,
) -> dict[str, Any]:
    spec = next((s for s in p.specs if s.file_name == name), None)
    pseudonymized = {r.column for r in plan.rules if r.transform.name == "pseudonymize"}
    formats: dict[str, tuple[str, str]] = {}
    if spec is None:  # an API destination's records: exactly the plan's columns
        sources = {c: c for c in plan.columns}
        pseudonyms = [c for c in plan.columns if c in pseudonymized]
    else:
        sources = {c.name: c.source for c in spec.columns}
        formats = {
            c.name: (c.date_format, c.month_format)
            for c in spec.columns
            if c.type is ColumnType.DATE
        }
        pseudonyms = [c.name for c in spec.columns if c.source in pseudonymized]
    aggregate = spec is not None and spec.level == "aggregate"
    if spec is not None and aggregate:  # rendered counts are text; the cell-size rule reads numbers
        counts = frame["ChildCount"].replace({spec.suppressed_marker: None})
        frame = frame.assign(ChildCount=pd.to_numeric(counts).astype("Float64"))
    columns = _columns(sources, plan, not aggregate, p.run_date, date_formats=formats)
    kept = frozenset(r.field.name for r in plan.rules if r.transform.name == "keep")
    banded = frozenset(columns.generalized.values()) & frozenset(COUNT_FIELDS)
    mentions = bool(columns.statements)
    rows, unknown = (
        identities.rows(keys, kept, banded, mentions=mentions) if not aggregate else (None, 0)
    )
    result = validate_output(
        frame,
        expected_columns=list(sources),
        pseudonym_columns=pseudonyms,
        pseudonym_pattern=PSEUDONYM_PATTERN,
        aggregate_count_column="ChildCount" if aggregate else None,
        min_cell_size=p.agreement.min_cell_size,
        numeric_id_columns=[
            c
            for c, s in sources.items()
            if s in plan.columns and CATALOG[plan.source(s)].kind is Kind.IDENTIFIER
        ],
        columns=columns,
        rows=rows,
    )
    failures = list(result.failures)
    if unknown:
        failures.append(f"row_child on frame {name}: {unknown} of {len(frame)} rows name no child")
    return {"ok": not failures, "failures": failures, "report": result.report}


def output_gate(p: Preparation, frames: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Program -> frame name -> gate result (ok, failures, report: no values)."""
    results: dict[str, dict[str, Any]] = {code: {} for code in frames}
    identities = Identities(p.identity)
    layouts: dict[tuple[str, int], list[str]] = {}
    for code, program_frames in frames.items():
        plan = p.plan_for(code)
        for name in program_frames:
            layouts.setdefault((name, id(plan)), []).append(code)
    for (name, _), codes in layouts.items():
        plan = p.plan_for(codes[0])
        whole = pd.concat([frames[code][name][0] for code in codes], ignore_index=True)
        keys = [key for code in codes for key in frames[code][name][1]]
        together = _check(p, name, whole, keys, plan, identities)
        for code in codes:
            results[code][name] = together
        if not together["ok"] and len(codes) > 1:
            for code in codes:
                frame, program_keys = frames[code][name]
                results[code][name] = _check(p, name, frame, program_keys, plan, identities)
    return results
