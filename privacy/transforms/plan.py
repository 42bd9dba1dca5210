"""Compile an agreement into a ``FieldPlan`` once, fail closed, then apply it to batches.

Every rule is validated while compiling (catalog field, transform, parameters, key); anything
wrong refuses the whole plan. Only the fields the agreement names with a transform other than
``drop`` get a column, minus the ``excluded_fields`` (e.g. an AIAN program's opt-in excludes
``race``); there is no default ``keep``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pandas as pd

from privacy.errors import MissingKeyError, TransformError
from privacy.fields import CATALOG, Field
from privacy.keys import KeyProvider, RecipientKey
from privacy.transforms.base import Transform, TransformContext
from privacy.transforms.registry import get_transform

if TYPE_CHECKING:
    from privacy.agreements import Agreement


@dataclass(frozen=True, slots=True)
class ColumnRule:
    """One output column: which catalog field it comes from and how."""

    column: str
    field: Field
    transform: Transform
    params: Mapping[str, Any]

    def __str__(self) -> str:
        return f"{self.column} <- {self.transform.name}({self.field.name})"


@dataclass(frozen=True)
class FieldPlan:
    """The compiled field rules of one agreement for one recipient."""

    agreement_id: str
    recipient_code: str
    rules: tuple[ColumnRule, ...]
    removed: tuple[str, ...] = ()
    """Fields the agreement names that do not leave (``drop``, or excluded for this run)."""
    key: RecipientKey | None = field(default=None, repr=False)

    @property
    def columns(self) -> tuple[str, ...]:
        """The output columns, in the agreement's order."""
        return tuple(rule.column for rule in self.rules)

    @property
    def fields(self) -> tuple[str, ...]:
        """The catalog fields that leave (in some form)."""
        return tuple(rule.field.name for rule in self.rules)

    @property
    def key_id(self) -> str | None:
        """The id of the key pseudonyms are made with, if any field is pseudonymized."""
        return self.key.key_id if self.key is not None else None

    def source(self, column: str) -> str:
        """The catalog field an output column comes from; ``KeyError`` for another column."""
        for rule in self.rules:
            if rule.column == column:
                return rule.field.name
        raise KeyError(column)

    def apply(self, frame: pd.DataFrame, run_date: dt.date) -> pd.DataFrame:
        """The output of ``frame``: exactly ``columns``, same index; nothing else leaves.

        Text a transform makes is an object column with None for null; whole numbers are
        ``Int64``; ``keep`` passes the extract's column (and dtype) through.
        """
        if isinstance(run_date, dt.datetime):
            run_date = run_date.date()
        missing = [rule.field.name for rule in self.rules if rule.field.name not in frame.columns]
        if missing:
            raise TransformError(
                f"plan {self.agreement_id}: the extract lacks column(s) {', '.join(missing)}"
            )
        out: dict[str, pd.Series] = {}
        for rule in self.rules:
            ctx = TransformContext(rule.field, rule.params, run_date, self.key)
            column = rule.transform.apply(frame[rule.field.name], ctx)
            if len(column) != len(frame):
                raise TransformError(f"{rule}: the transform changed the number of rows")
            out[rule.column] = column.reset_index(drop=True)  # positional, keeps the dtype
        result = pd.DataFrame(out, index=pd.RangeIndex(len(frame)), columns=list(self.columns))
        return result.set_axis(frame.index)

    def __str__(self) -> str:
        rules = ", ".join(str(rule) for rule in self.rules)
        return f"FieldPlan({self.agreement_id} -> {self.recipient_code}: {rules})"


def compile_plan(
    agreement: Agreement,
    keys: KeyProvider | None,
    *,
    recipient_code: str,
    excluded_fields: Iterable[str] = frozenset(),
) -> FieldPlan:
    """Validate every rule of ``agreement`` and build its plan for ``recipient_code``.

    Raises ``TransformError`` for a rule that does not compile, an unknown excluded field, a
    recipient other than the agreement's, or two rules making the same column; and
    ``MissingKeyError`` when a field is pseudonymized but ``keys`` has no key for the recipient.
    """
    if recipient_code != agreement.recipient:
        raise TransformError(
            f"agreement {agreement.id} is with {agreement.recipient}, not {recipient_code}"
        )
    excluded = frozenset(excluded_fields)
    unknown = sorted(excluded - CATALOG.keys())
    if unknown:
        raise TransformError(f"excluded field(s) not in the catalog: {', '.join(unknown)}")
    rules: list[ColumnRule] = []
    removed: list[str] = []
    for name, spec in agreement.fields.items():
        if name not in CATALOG:
            raise TransformError(f"agreement {agreement.id}: {name} is not a catalog field")
        catalog_field = CATALOG[name]
        transform = get_transform(spec.name)
        params = MappingProxyType(dict(spec.params))
        transform.validate(params, catalog_field)
        if not transform.leaves or name in excluded:
            removed.append(name)
            continue
        column = transform.output_column(catalog_field, params)
        rules.append(ColumnRule(column, catalog_field, transform, params))
    columns = [rule.column for rule in rules]
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise TransformError(f"agreement {agreement.id}: two fields both make {', '.join(twice)}")
    key = None
    if any(rule.transform.needs_key for rule in rules):
        if keys is None:
            raise MissingKeyError(recipient_code, [])
        key = keys.key(recipient_code)
    return FieldPlan(agreement.id, recipient_code, tuple(rules), tuple(removed), key)
