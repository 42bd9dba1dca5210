"""The disclosure decision for a batch of children, one agreement and one run date.

``decide`` is vectorized: joins and group maxima over the whole batch, no loop over children.
It reasons in three layers, the first that says no giving the reason:

1. the agreement (``bases.agreement_reason``): in force, reviewed, recipient not suspended,
   recipient eligible for the basis; otherwise nothing leaves;
2. the program (participation registry on the run date): registered and participating with
   the recipient; an AIAN program also needs an active opt-in. A program missing from the
   registry given, or whose children say ``program_type == "aian"`` while the registry says
   otherwise, is treated the strict way (not registered / AIAN);
3. the child's basis: valid consents that together cover what is sent (signed by a parent of
   this child, for this recipient and the agreement's purpose), an elapsed unrefused notice,
   or none needed (audit, study). Then field rules remove single fields (``removals``).

The agreement layer includes the recipient's jurisdiction: a recipient without a state
receives nothing (``recipient_no_jurisdiction``); the plan passes only programs of its state.

An AIAN program that opted in for aggregate outputs only keeps its children out of child
records (``AIAN_AGGREGATE_ONLY``, scope ``aggregate``); only those whose basis holds count in
aggregates. Fields with transform ``drop`` do not leave and are not decided on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

import numpy as np
import pandas as pd

from privacy.agreements import Agreement, LegalBasis
from privacy.bases import (
    CODE,
    OK,
    REASONS,
    ChildBasis,
    RecipientInfo,
    agreement_reason,
    category_mask,
    consent_basis,
    notice_basis,
    require,
    truth,
    without_consent_basis,
)
from privacy.errors import DecisionError
from privacy.fields import CATALOG
from privacy.participation import ParticipationState, ProgramStatus
from privacy.reasons import Reason
from privacy.removals import FIELD_REASONS, field_rules
from schemas.codes import OptInScope, ProgramType, RecordCategory

__all__ = [
    "Decision",
    "DecisionInputs",
    "ProgramOutcome",
    "RecipientInfo",
    "Scope",
    "decide",
    "program_outcome",
]

CHILD_COLUMNS = ("child_id", "program_code", "child_local_id")
_REASON_DTYPE = pd.CategoricalDtype([reason.value for reason in REASONS])
_FIELD_REASON_DTYPE = pd.CategoricalDtype([reason.value for reason in FIELD_REASONS])


class Scope(StrEnum):
    """What a program's (or child's) data may contribute to."""

    RECORD = "record"
    AGGREGATE = "aggregate"
    NONE = "none"


_SCOPES = list(Scope)
_SCOPE_DTYPE = pd.CategoricalDtype([scope.value for scope in _SCOPES])


@dataclass(frozen=True)
class DecisionInputs:
    """The extract of one batch: children (one row per child) and their related records."""

    children: pd.DataFrame
    consents: pd.DataFrame
    notices: pd.DataFrame
    statements: pd.DataFrame


@dataclass(frozen=True)
class ProgramOutcome:
    """A program's outcome: the reason, the scope its children may contribute to, the
    fields its opt-in excludes, and whether it shares under an AIAN program's active opt-in
    (only then may ``tribal_affiliation`` leave)."""

    reason: Reason
    scope: Scope
    excluded_fields: frozenset[str] = frozenset()
    aian_opt_in: bool = False

    @property
    def shares(self) -> bool:
        """Whether anything of this program may leave."""
        return self.scope is not Scope.NONE


@dataclass(frozen=True, eq=False)
class Decision:
    """The outcome for every child of the batch.

    ``children``: child_id, program_code, child_local_id, disclose, reason, scope (``record``,
    ``aggregate`` or ``none``: what the child may contribute to; ``disclose`` is true when that
    is the agreement's output). ``field_removals``: child_id, field, reason, for children whose
    scope is not ``none``. ``statements``: child_id, field of parent statements that must
    travel with a disclosed field. ``fields``: what the agreement sends (``drop`` excluded).
    """

    agreement_id: str
    recipient_code: str
    run_date: dt.date
    fields: tuple[str, ...]
    children: pd.DataFrame
    field_removals: pd.DataFrame
    statements: pd.DataFrame
    programs: dict[str, ProgramOutcome]
    agreement_reason: Reason | None = None
    _matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int8), repr=False)
    _contributing: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)

    @cached_property
    def field_mask(self) -> pd.DataFrame:
        """One row per contributing child (index child_id), one bool column per sent field:
        whether that child may carry that field."""
        return pd.DataFrame(
            self._matrix == 0,
            index=pd.Index(self._contributing, name="child_id"),
            columns=list(self.fields),
        )

    def disclosed_ids(self) -> np.ndarray:
        """The child ids that are disclosed."""
        return self.children.loc[self.children["disclose"], "child_id"].to_numpy()

    def disclosed_fields(self, child_id: int) -> tuple[str, ...]:
        """The fields ``child_id`` may carry; empty when the child contributes nothing."""
        if child_id not in self.field_mask.index:
            return ()
        row = self.field_mask.loc[child_id].to_numpy()
        return tuple(name for name, keep in zip(self.fields, row, strict=True) if keep)

    def redact(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The disclosed children's rows of ``frame``: child_id and the sent fields only, each
        removed field emptied (NA). Ready for ``FieldPlan.apply``."""
        require(frame, ("child_id", *self.fields), "extract")
        disclosed = self.children.loc[self.children["disclose"], "child_id"]
        rows = frame.loc[frame["child_id"].isin(disclosed), ["child_id", *self.fields]]
        mask = self.field_mask.reindex(rows["child_id"]).to_numpy(dtype=bool)
        out = rows.reset_index(drop=True)
        for j, name in enumerate(self.fields):
            removed = ~mask[:, j]
            if removed.any():
                out[name] = out[name].astype(object).where(~removed, None)
        return out

    def counts(self) -> dict[str, int]:
        """How many children got each reason (reasons with none left out)."""
        counts = self.children["reason"].value_counts()
        return {str(reason): int(n) for reason, n in counts.items() if n}


def sent_fields(agreement: Agreement) -> tuple[str, ...]:
    """The catalog fields the agreement sends, in its order (transform ``drop`` excluded)."""
    unknown = [name for name in agreement.fields if name not in CATALOG]
    if unknown:
        raise DecisionError(f"agreement {agreement.id}: fields not in the catalog: {unknown}")
    return tuple(name for name, spec in agreement.fields.items() if spec.name != "drop")


def program_outcome(
    status: ProgramStatus | None, aian: bool, agreement: Agreement
) -> ProgramOutcome:
    """A program's outcome with the recipient under ``agreement``: not registered, withdrawn,
    AIAN without an opt-in (nothing leaves), AIAN aggregate-only, or sharing."""
    output = Scope(agreement.output.value)
    if status is None or status.state is ParticipationState.NOT_REGISTERED:
        return ProgramOutcome(Reason.PROGRAM_NOT_REGISTERED, Scope.NONE)
    if status.state is not ParticipationState.PARTICIPATING:
        return ProgramOutcome(Reason.PROGRAM_WITHDRAWN, Scope.NONE)
    if not (aian or status.is_aian):
        return ProgramOutcome(Reason.DISCLOSED, output)
    if status.opt_in is None:
        if status.opt_in_missing:  # an opt-in row that is not the program's decision
            return ProgramOutcome(Reason.AIAN_OPT_IN_INCOMPLETE, Scope.NONE)
        return ProgramOutcome(Reason.AIAN_NO_OPT_IN, Scope.NONE)
    excluded = frozenset(status.opt_in.excluded_fields)
    if status.opt_in.scope is OptInScope.AGGREGATE and output is Scope.RECORD:
        return ProgramOutcome(Reason.AIAN_AGGREGATE_ONLY, Scope.AGGREGATE, excluded, True)
    return ProgramOutcome(Reason.DISCLOSED, output, excluded, True)


def _child_basis(
    inputs: DecisionInputs,
    index: pd.Index,
    agreement: Agreement,
    recipient: RecipientInfo,
    run_date: dt.date,
) -> ChildBasis:
    basis = agreement.legal_basis
    if basis is LegalBasis.CONSENT:
        categories = set(agreement.record_categories)
        categories |= {CATALOG[name].category for name in sent_fields(agreement)}
        categories.discard(RecordCategory.DISABILITY)
        needed = category_mask(sorted(categories))
        return consent_basis(
            index, inputs.consents, recipient, run_date, needed, agreement.purpose_code
        )
    if basis is LegalBasis.SCHOOL_ENROLLMENT_NOTICE:
        return notice_basis(index, inputs.notices, recipient, run_date, agreement.notice_days)
    return without_consent_basis(len(index))


@dataclass(frozen=True)
class _Programs:
    """Each program's outcome, and each child's program as an index into ``codes`` (the
    last entry, None, stands for a missing program code)."""

    outcomes: dict[str, ProgramOutcome]
    codes: list[str | None]
    of_child: np.ndarray

    def per_child(self, blocked: Reason | None) -> tuple[np.ndarray, np.ndarray]:
        missing = ProgramOutcome(blocked or Reason.PROGRAM_NOT_REGISTERED, Scope.NONE)
        table = [self.outcomes[c] if c is not None else missing for c in self.codes]
        reasons = np.array([CODE[o.reason] for o in table], dtype=np.int16)
        scopes = np.array([_SCOPES.index(o.scope) for o in table], dtype=np.int8)
        return reasons[self.of_child], scopes[self.of_child]


def _programs(
    children: pd.DataFrame,
    participation: Mapping[str, ProgramStatus],
    agreement: Agreement,
    blocked: Reason | None,
) -> _Programs:
    of_child, uniques = pd.factorize(children["program_code"], use_na_sentinel=True)
    codes = [str(code) for code in uniques]
    aian: set[str] = set()
    if "program_type" in children.columns:
        said = children["program_type"].eq(ProgramType.AIAN.value)
        aian = {codes[c] for c in np.unique(of_child[truth(said)]) if c >= 0}
    outcomes = {
        code: ProgramOutcome(blocked, Scope.NONE)
        if blocked is not None
        else program_outcome(participation.get(code), code in aian, agreement)
        for code in dict.fromkeys([*codes, *participation])
    }
    return _Programs(outcomes, [*codes, None], of_child)


def decide(
    inputs: DecisionInputs,
    agreement: Agreement,
    recipient: RecipientInfo,
    run_date: dt.date,
    *,
    participation: Mapping[str, ProgramStatus],
) -> Decision:
    """Decide, for every child of ``inputs``, whether it is disclosed to ``recipient`` under
    ``agreement`` on ``run_date``, and which fields it carries.

    ``participation`` is the registry on the run date (``participation.current_participation``).
    Raises ``DecisionError`` (nothing leaves) for unusable inputs.
    """
    if isinstance(run_date, dt.datetime) or not isinstance(run_date, dt.date):
        raise DecisionError("run_date must be a date")
    if agreement.recipient != recipient.code:
        raise DecisionError(
            f"agreement {agreement.id} is with {agreement.recipient}, not {recipient.code}"
        )
    fields = sent_fields(agreement)
    children = inputs.children
    require(children, CHILD_COLUMNS, "children")
    index = pd.Index(children["child_id"].to_numpy())
    if index.hasnans or not index.is_unique:
        raise DecisionError("children frame: child_id must be present and unique (one row each)")
    n = len(index)

    blocked = agreement_reason(agreement, recipient, run_date)
    programs = _programs(children, participation, agreement, blocked)
    program_reason, program_scope = programs.per_child(blocked)
    if blocked is None and n:
        basis = _child_basis(inputs, index, agreement, recipient, run_date)
    else:
        basis = without_consent_basis(n)

    # the first layer that says no gives the reason; a closed program outranks the child
    none = _SCOPES.index(Scope.NONE)
    child_ok = basis.codes == OK
    program_open = program_scope != none
    reason = np.where(program_open & ~child_ok, basis.codes, program_reason)
    scope = np.where(program_open & child_ok, program_scope, none).astype(np.int8)
    disclose = scope == _SCOPES.index(Scope(agreement.output.value))

    contributing = np.flatnonzero(scope != none)
    child_ids = index.to_numpy()[contributing]
    excluded = {
        i: programs.outcomes[code].excluded_fields
        for i, code in enumerate(programs.codes)
        if code is not None and programs.outcomes[code].excluded_fields
    }
    opted_in = {
        i for i, code in enumerate(programs.codes) if code and programs.outcomes[code].aian_opt_in
    }
    rules = field_rules(
        child_ids,
        programs.of_child[contributing],
        fields,
        agreement,
        basis.disability_ok[contributing],
        excluded,
        inputs.statements,
        opted_in=frozenset(opted_in),
    )
    rows, cols = np.nonzero(rules.matrix)
    removals = pd.DataFrame(
        {
            "child_id": child_ids[rows],
            "field": pd.Categorical.from_codes(cols, categories=list(fields)),
            "reason": pd.Categorical.from_codes(
                rules.matrix[rows, cols].astype(np.int16) - 1, dtype=_FIELD_REASON_DTYPE
            ),
        }
    )
    positions = pd.RangeIndex(n)
    result = pd.DataFrame(
        {
            "child_id": index.to_numpy(),
            "program_code": children["program_code"].set_axis(positions),
            "child_local_id": children["child_local_id"].set_axis(positions),
            "disclose": disclose,
            "reason": pd.Categorical.from_codes(reason, dtype=_REASON_DTYPE),
            "scope": pd.Categorical.from_codes(scope, dtype=_SCOPE_DTYPE),
        }
    )
    return Decision(
        agreement_id=agreement.id,
        recipient_code=recipient.code,
        run_date=run_date,
        fields=fields,
        children=result,
        field_removals=removals,
        statements=rules.carry,
        programs=programs.outcomes,
        agreement_reason=blocked,
        _matrix=rules.matrix,
        _contributing=child_ids,
    )
