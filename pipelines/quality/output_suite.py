"""The output privacy gate: Great Expectations checks on every batch before it leaves.

Run with ``result_format`` SUMMARY and ``partial_unexpected_count: 0`` so GE returns counts,
not values; only :func:`~pipelines.quality.context.summarize` output is kept (GE's result also
carries each expectation's kwargs, and the forbidden-name set is one of them).

Patterns (searched anywhere in a value's text, bounded so longer digit/word runs do not match):

- SSN: ``123-45-6789``, ``123 45 6789`` or a bare run of exactly nine digits. Dashes go both
  or neither, so a ZIP+4 (``05401-1234``) is not an SSN.
- Phone (NANP): ``802-555-0100``, ``(802) 555-0100``, ``802.555.0100``, ``+1 802 555 0100`` or
  a bare ten digits (eleven with a leading 1).
- E-mail: ``local@domain.tld``.

ISO dates (``2024-01-15``, 4-2-2 digits), datetimes and hex pseudonyms match none of them.
Bare digit runs are checked in every column except ``numeric_id_columns`` (e.g. a state
student id the agreement keeps), where only the separated forms and e-mails are.

Aggregates: a count cell passes when it is missing (suppressed), zero, or at least
``min_cell_size``; zero is publishable, as in the suppression helper (an empty cell discloses
no one). Negative counts fail too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from pipelines.quality.context import get_context, run_suite, summarize

_B = r"(?<![\w-])"
_E = r"(?![\w-])"
SSN_PATTERN = _B + r"(?:\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4}|\d{9})" + _E
SSN_SEPARATED_PATTERN = _B + r"(?:\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4})" + _E
_PHONE_SEPARATED = r"(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}"
PHONE_PATTERN = _B + r"(?:" + _PHONE_SEPARATED + r"|(?:\+?1)?\d{10})" + _E
PHONE_SEPARATED_PATTERN = _B + _PHONE_SEPARATED + _E
EMAIL_PATTERN = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
PATTERN_RULES = frozenset({"ssn_like", "phone_like", "email_like"})
RESULT_FORMAT = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": 0,
    "include_unexpected_rows": False,
    "return_unexpected_index_query": False,
}


@dataclass(frozen=True)
class OutputResult:
    """The outcome of the output gate: ``ok`` only when every expectation passed.

    ``failures`` name the rule, the column and how many rows, never a value.
    """

    ok: bool
    report: dict[str, Any]
    failures: list[str] = field(default_factory=list)


def _may_hold_text(series: pd.Series) -> bool:
    """False for dtypes whose text cannot be an SSN, phone, e-mail or name (bool, datetime)."""
    dtype = series.dtype
    return not (pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype))


def _strip(series: pd.Series) -> pd.Series:
    """Strings stripped (for exact name comparison); other values untouched."""
    if series.dtype == object:
        return series.map(lambda v: v.strip() if isinstance(v, str) else v, na_action="ignore")
    if pd.api.types.is_string_dtype(series.dtype):
        return series.str.strip()
    return series


def _occurring(series: pd.Series, forbidden: frozenset[str]) -> list[str]:
    """The forbidden names that occur in ``series``: the value set GE is given.

    GE copies an expectation's kwargs hundreds of times per run, so a value set of every
    source name (tens of thousands) made a 100,000-row batch take minutes; narrowing it to the
    names present is exact (a value equals a forbidden name iff it equals one present) and
    keeps all other names out of GE's objects. GE still does the check and the counting.
    """
    values = pd.unique(series.dropna().astype(str))
    return sorted(forbidden.intersection(values))


@dataclass(frozen=True)
class _Spec:
    """What one call checks (column names and settings; ``forbidden`` holds source names)."""

    expected: list[str]
    pseudonyms: list[str]
    pattern: str | None
    name_columns: frozenset[str]
    numeric_ids: frozenset[str]
    forbidden: frozenset[str]
    count_column: str | None
    min_cell_size: int


def _patterns(column: str, spec: _Spec) -> dict[str, str]:
    """Rule name -> regex of the PII-looking values searched for in ``column``."""
    bare_ok = column in spec.numeric_ids
    return {
        "ssn_like": SSN_SEPARATED_PATTERN if bare_ok else SSN_PATTERN,
        "phone_like": PHONE_SEPARATED_PATTERN if bare_ok else PHONE_PATTERN,
        "email_like": EMAIL_PATTERN,
    }


class _Suite:
    """An unsaved suite whose expectations carry rule, column and order in ``meta``."""

    def __init__(self, name: str) -> None:
        import great_expectations as gx

        get_context()
        self.suite = gx.ExpectationSuite(name=name)
        self.order = 0

    def add(self, expectation: Any, rule: str, column: str | None) -> None:
        expectation.meta = {"rule": rule, "field": column, "order": self.order}
        self.suite.add_expectation(expectation)
        self.order += 1


def _screen_suite(data: pd.DataFrame, spec: _Spec) -> Any:
    """Stage one: every rule, with the three PII patterns of a column as one regex."""
    import great_expectations.expectations as gxe

    out = _Suite("datashare_output")
    out.add(
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=spec.expected), "columns_match", None
    )
    for column in spec.pseudonyms:
        if column in data.columns:
            regex = f"^(?:{spec.pattern})$"
            out.add(
                gxe.ExpectColumnValuesToMatchRegex(column=column, regex=regex),
                "pseudonym_format",
                column,
            )
    for column in data.columns:
        if column == spec.count_column or not _may_hold_text(data[column]):
            continue
        regex = "|".join(f"(?:{p})" for p in _patterns(column, spec).values())
        out.add(
            gxe.ExpectColumnValuesToNotMatchRegex(column=column, regex=regex), "pii_like", column
        )
        if spec.forbidden and column not in spec.name_columns:
            names = _occurring(data[column], spec.forbidden)
            out.add(
                gxe.ExpectColumnValuesToNotBeInSet(column=column, value_set=names),
                "source_name",
                column,
            )
    count = spec.count_column
    if count is not None and count in data.columns:
        column = count
        if spec.min_cell_size > 1:
            small = list(range(1, spec.min_cell_size))
            out.add(
                gxe.ExpectColumnValuesToNotBeInSet(column=column, value_set=small),
                "small_cell",
                column,
            )
        out.add(
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0), "negative_count", column
        )
    return out.suite


def _detail_suite(columns: list[str], spec: _Spec) -> Any:
    """Stage two, only for columns that failed ``pii_like``: which pattern, how many rows."""
    import great_expectations.expectations as gxe

    out = _Suite("datashare_output_detail")
    for column in columns:
        for rule, regex in _patterns(column, spec).items():
            out.add(gxe.ExpectColumnValuesToNotMatchRegex(column=column, regex=regex), rule, column)
    return out.suite


def _column_failure(frame: pd.DataFrame, expected: Sequence[str]) -> str:
    actual = [str(c) for c in frame.columns]
    missing = [c for c in expected if c not in actual]
    extra = [c for c in actual if c not in expected]
    parts = [f"expected {list(expected)}"]
    if missing:
        parts.append(f"missing {missing}")
    if extra:
        parts.append(f"unexpected {extra}")
    if not missing and not extra:
        parts.append("order differs")
    return "columns_match: " + "; ".join(parts)


def validate_output(
    frame: pd.DataFrame,
    *,
    expected_columns: Sequence[str],
    pseudonym_columns: Iterable[str] = (),
    pseudonym_pattern: str | re.Pattern[str] | None = None,
    name_columns: Iterable[str] = (),
    forbidden_values: Iterable[str] = (),
    aggregate_count_column: str | None = None,
    min_cell_size: int = 10,
    numeric_id_columns: Iterable[str] = (),
) -> OutputResult:
    """Run the output privacy suite on one outgoing frame; any failure makes ``ok`` False.

    ``forbidden_values`` are the source batch's first and last names: no value of a column
    outside ``name_columns`` may equal one (exact match after stripping spaces).
    ``ValueError`` for pseudonym columns without a pattern (a caller error, not a data one).
    """
    expected = [str(c) for c in expected_columns]
    pseudonyms = list(dict.fromkeys(pseudonym_columns))
    pattern = pseudonym_pattern.pattern if isinstance(pseudonym_pattern, re.Pattern) else None
    pattern = pattern or (pseudonym_pattern if isinstance(pseudonym_pattern, str) else None)
    if pseudonyms and not pattern:
        raise ValueError("pseudonym_columns need a pseudonym_pattern")
    rows = len(frame)
    if frame.columns.duplicated().any():
        failure = "columns_match: duplicate column names"
        report = {"suite": "output", "rows": rows, "ok": False, "expectations": []}
        return OutputResult(ok=False, report={**report, "failures": [failure]}, failures=[failure])

    spec = _Spec(
        expected=expected,
        pseudonyms=pseudonyms,
        pattern=pattern,
        name_columns=frozenset(name_columns),
        numeric_ids=frozenset(numeric_id_columns),
        forbidden=frozenset(str(v).strip() for v in forbidden_values if _present(v)),
        count_column=aggregate_count_column,
        min_cell_size=min_cell_size,
    )
    data = pd.DataFrame(
        {
            column: frame[column] if column in pseudonyms else _strip(frame[column])
            for column in frame.columns
        }
    )
    failures: list[str] = []
    count = aggregate_count_column
    if count in data.columns and not pd.api.types.is_numeric_dtype(data[count].dtype):
        failures.append(f"count_numeric on column {count}: not a numeric column")
        spec = replace(spec, count_column=None)  # checked as any other column instead
    expectations = summarize(
        run_suite(data, _screen_suite(data, spec), result_format=RESULT_FORMAT)
    )
    flagged = [e["column"] for e in expectations if e["name"] == "pii_like" and not e["success"]]
    if flagged:
        detail = run_suite(data, _detail_suite(flagged, spec), result_format=RESULT_FORMAT)
        expectations += summarize(detail)
    explained = {
        e["column"] for e in expectations if e["name"] in PATTERN_RULES and not e["success"]
    }
    for item in expectations:
        if item["success"] or (item["name"] == "pii_like" and item["column"] in explained):
            continue
        if item["name"] == "columns_match":
            failures.append(_column_failure(frame, expected))
        else:
            failures.append(
                f"{item['name']} on column {item['column']}: "
                f"{item['unexpected_count']} of {rows} rows"
            )
    ok = not failures
    report = {
        "suite": "output",
        "rows": rows,
        "ok": ok,
        "min_cell_size": min_cell_size if aggregate_count_column else None,
        "expectations": expectations,
        "failures": failures,
    }
    return OutputResult(ok=ok, report=report, failures=failures)


def _present(value: object) -> bool:
    return value is not None and value == value and bool(str(value).strip())
