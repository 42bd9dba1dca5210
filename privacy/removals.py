"""Field-level rules: which fields are removed from a child that is otherwise disclosed.

The rules fill a (children x fields) matrix of reason codes, 0 meaning "kept", in this order
of precedence (a field removed by an earlier rule keeps that reason):

1. ``AIAN_FIELD_EXCLUDED``: fields an AIAN program's opt-in excludes.
2. ``NOTICE_CATEGORY_NOT_PERMITTED``: under the notice basis, fields outside identity and
   enrollment (1303.22(b) is for enrollment or transfer only).
3. ``DISABILITY_CONSENT_MISSING``: disability fields (IDEA) without a valid consent naming the
   disability category, unless the agreement cites an IDEA exception; under audit or study
   without the exception, always.
4. ``TRIBAL_AFFILIATION_NOT_PERMITTED``: tribal affiliation, unless the child's program
   shares under an AIAN program's active opt-in (that does not exclude it: rule 1). A
   non-AIAN program never sends it: the tribe's data is the tribe's decision (1302.53(b)(4)).
5. ``PARENT_STATEMENT_NOT_CARRIED``: a field with a parent's statement on file when the
   agreement does not carry statements (1303.24(c): the statement must travel with the field,
   so the field may not travel without it). A statement counts whatever its filing date.
6. ``PARENT_STATEMENT_ON_TRANSFORMED_FIELD``: where statements are carried, a field with a
   statement that the agreement sends transformed (anything but ``keep``: a birth date sent
   as a month, a pseudonymized id, a ZIP cut to three digits), unless the agreement sets
   ``statements_on_transformed_fields: carry``. The statement must travel with the field
   (1303.24(c)) but may quote the exact value the transform hides (1303.22(f), minimum
   necessary), so the protective default holds the field back for that child.

Where the agreement carries statements, the (child, field) pairs whose statement must travel
with a kept field are returned instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from privacy.agreements import Agreement, LegalBasis, StatementHandling
from privacy.bases import NOTICE_CATEGORIES, require
from privacy.fields import CATALOG
from privacy.reasons import Reason
from schemas.codes import RecordCategory

FIELD_REASONS: tuple[Reason, ...] = (
    Reason.AIAN_FIELD_EXCLUDED,
    Reason.NOTICE_CATEGORY_NOT_PERMITTED,
    Reason.DISABILITY_CONSENT_MISSING,
    Reason.PARENT_STATEMENT_NOT_CARRIED,
    Reason.PARENT_STATEMENT_ON_TRANSFORMED_FIELD,
    Reason.TRIBAL_AFFILIATION_NOT_PERMITTED,
)
_AIAN, _NOTICE, _DISABILITY, _STATEMENT, _TRANSFORMED, _TRIBAL = range(1, len(FIELD_REASONS) + 1)
STATEMENT_COLUMNS = ("child_id", "field")


@dataclass(frozen=True)
class FieldRules:
    """The outcome: ``matrix[i, j]`` is 0 when child ``i`` keeps field ``j``, else the 1-based
    index of its reason in ``FIELD_REASONS``; ``carry`` lists statements that must travel."""

    matrix: np.ndarray
    carry: pd.DataFrame


def _mark(matrix: np.ndarray, rows: np.ndarray | slice, column: int, code: int) -> None:
    target = matrix[rows, column]
    matrix[rows, column] = np.where(target == 0, code, target)


def field_rules(
    child_ids: np.ndarray,
    programs: np.ndarray,
    fields: Sequence[str],
    agreement: Agreement,
    disability_ok: np.ndarray,
    excluded: Mapping[int, frozenset[str]],
    statements: pd.DataFrame,
    *,
    opted_in: frozenset[int] = frozenset(),
) -> FieldRules:
    """Apply the field rules to the contributing children ``child_ids``.

    ``programs`` (each child's program as an integer code) and ``disability_ok`` are aligned
    with ``child_ids``; ``excluded`` maps a program code to the fields its opt-in excludes;
    ``opted_in`` holds the program codes sharing under an AIAN program's active opt-in.
    """
    matrix = np.zeros((len(child_ids), len(fields)), dtype=np.int8, order="F")
    column = {name: j for j, name in enumerate(fields)}
    for program, names in excluded.items():
        rows = np.flatnonzero(programs == program)
        for name in names:
            if name in column and len(rows):
                _mark(matrix, rows, column[name], _AIAN)
    basis = agreement.legal_basis
    no_exception = not (agreement.idea_exception and agreement.idea_exception.strip())
    for name, j in column.items():
        category = CATALOG[name].category
        if basis is LegalBasis.SCHOOL_ENROLLMENT_NOTICE and category not in NOTICE_CATEGORIES:
            _mark(matrix, slice(None), j, _NOTICE)
        elif category is RecordCategory.DISABILITY and no_exception:
            if basis is LegalBasis.CONSENT:
                _mark(matrix, np.flatnonzero(~disability_ok), j, _DISABILITY)
            else:
                _mark(matrix, slice(None), j, _DISABILITY)
        elif category is RecordCategory.TRIBAL_AFFILIATION:
            allowed = np.isin(programs, np.fromiter(opted_in, dtype=np.int64, count=len(opted_in)))
            _mark(matrix, np.flatnonzero(~allowed), j, _TRIBAL)
    carry = pd.DataFrame({"child_id": child_ids[:0], "field": pd.Series([], dtype=object)})
    if len(statements) and len(fields):
        require(statements, STATEMENT_COLUMNS, "statements")
        rows = pd.Index(child_ids).get_indexer(statements["child_id"])
        cols = pd.Index(list(fields)).get_indexer(statements["field"])
        found = (rows >= 0) & (cols >= 0)
        rows, cols = rows[found], cols[found]
        kept = matrix[rows, cols] == 0
        rows, cols = rows[kept], cols[kept]
        if agreement.parent_statements is StatementHandling.CARRY:
            if agreement.statements_on_transformed_fields is not StatementHandling.CARRY:
                names = np.asarray(fields, dtype=object)[cols]
                hidden = np.array(
                    [agreement.fields[name].name != "keep" for name in names], dtype=bool
                )
                matrix[rows[hidden], cols[hidden]] = _TRANSFORMED
                rows, cols = rows[~hidden], cols[~hidden]
            pairs = (
                pd.DataFrame({"row": rows, "col": cols})
                .drop_duplicates()
                .sort_values(["row", "col"])
            )
            carry = pd.DataFrame(
                {
                    "child_id": child_ids[pairs["row"].to_numpy()],
                    "field": np.asarray(fields, dtype=object)[pairs["col"].to_numpy()],
                }
            )
        else:
            matrix[rows, cols] = _STATEMENT
    return FieldRules(matrix=matrix, carry=carry.reset_index(drop=True))
