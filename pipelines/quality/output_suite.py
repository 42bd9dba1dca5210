"""The output privacy gate: Great Expectations checks on every batch before it leaves.

Run with ``result_format`` SUMMARY and ``partial_unexpected_count: 0`` so GE returns counts,
not values; only :func:`~pipelines.quality.context.summarize` output is kept (GE's result also
carries each expectation's kwargs, and the forbidden-name set is one of them).

Three stages, each only for what the one before found: (1) every rule, where a column-wise
rule of :data:`COMBINED` is one expectation over all its columns (GE's cost is mostly per
expectation: one regex expectation per column cost more than the search itself); (2) for a
combined rule that failed, each of its columns alone (the failure names the column and its
row count); (3) for a column that failed ``pii_like``, each pattern alone. Every stage runs
screened (:meth:`~pipelines.quality.context.Loaded.screened`), all on one loaded frame. A
combined expectation fails
exactly when one of its columns would (same checks, same normalization, the union of rows).

Patterns (searched anywhere in a value's text, bounded so longer digit/word runs do not match):

- SSN: ``123-45-6789``, ``123 45 6789`` or a bare run of exactly nine digits. Dashes go both
  or neither, so a ZIP+4 (``05401-1234``) is not an SSN.
- Phone (NANP): ``802-555-0100``, ``(802) 555-0100``, ``802.555.0100``, ``+1 802 555 0100`` or
  a bare ten digits (eleven with a leading 1).
- E-mail: ``local@domain.tld``.

ISO dates (``2024-01-15``, 4-2-2 digits), datetimes and hex pseudonyms match none of them.
Bare digit runs are checked in every column except ``numeric_id_columns`` (e.g. a state
student id the agreement keeps), where only the separated forms and e-mails are.

The patterns are not searched in ``statement_columns`` (a parent's statement is the parent's
own words and must travel as written, 45 CFR 1303.24(c): a phone number or e-mail in it is the
parent's to give), nor, per column, for the shapes ``pattern_exempt`` names (a guardian phone
column the agreement sends holds phone numbers).

Row-wise rules (with ``rows``, one :class:`RowValues` row per outgoing row, naming the row's
own child): a value the agreement does not send as recorded (a name it leaves out, an id it
pseudonymizes, a birth date it cuts to the month) must not show up where it could be carried:

- ``child_value``: a ``text_columns`` cell (free text and names, pseudonym columns) equals one
  of the row child's protected values, in any of its forms (:mod:`pipelines.quality.mentions`);
  a protected value equal to a value the agreement sends as recorded (a guardian's last name
  that is also the child's) is not protected in that row.
- ``full_value``: a ``generalized_columns`` cell holds a full date, whoever's, in any common
  form (ISO, ``15.11.2021``, ``11/15/21``, ``20211115``, ``Nov 15, 2021``, ``15 November
  2021``, ISO ordinal ``2021-319`` and week ``2021-W46-1``, Spanish ``15 de noviembre de
  2021``, French ``1er novembre 2021``... :func:`~pipelines.quality.mentions.carries_full_date`),
  for a column of ``date_formats`` in the column's own full pattern, or, for a column of
  ``serial_dates`` (one that never rightly holds a five-digit number: a year, an age in
  months, a ZIP3, a month), as Excel's day number (``44515``, the whole cell); a text the
  column's month pattern reads as a month (``202111`` in a ``%Y%m`` column) is a month, not
  a full date. A cell of a generalized column not cut to the month (a ZIP3, a year, a band)
  also may not equal its row child's full value (the full ZIP code, the banded count).
- ``value_mismatch``: a ``kept_text_columns`` cell is neither empty nor its row child's value
  (another child's name in this child's row); a month-cut cell (``month_cut``, and every
  column of ``date_formats``) is neither empty nor exactly what the column writes for the row
  child's month (the first of the month written with the column's month pattern): another
  child's month, or any other text. A month-cut cell holding a full date is ``full_value``
  only (each bad cell is counted once). So is a cell of an ``exact`` column (a ZIP3, a year,
  an age in months, a band) that is neither empty nor exactly what the column's transform
  writes for the row child's own recorded value, compared as text (another child's ZIP3, year
  or band, a full ZIP, a ZIP+4, ``0540``, a year-month ``2021-11``, a week ``2021-W46``, an
  age ``51.5`` or in days, the exact age in a band column, letters); one that holds a full
  date or the row child's full value is ``full_value`` only. A child with no recorded value,
  or one the transform cannot read, has only the empty cell. A protected value equal to what
  an exact column writes for that row (a count of 0 in a band labelled ``0``) is sent, so it
  is not protected in that row.
- ``other_child``: a ``statement_columns`` cell mentions another child of the batch (a full
  name or an id of any child of ``rows.batch`` that is not the row child's own or the row
  child's primary guardian's full name).
- ``not_permitted``: an ``empty_columns`` cell (a layout column whose field the agreement does
  not send) holds a value.

Code, flag, count, date and identifier columns the agreement keeps are not checked for names:
a site code may equal a child's surname. Names are compared with that row's child only.

Aggregates: a count cell passes when it is missing (suppressed), zero, or at least
``min_cell_size``; zero is publishable, as in the suppression helper (an empty cell discloses
no one). Negative counts fail too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from pipelines.quality.context import Loaded, get_context, summarize
from pipelines.quality.mentions import KeyIndex, forms_table, month_texts, normalized

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
HELPER_PREFIX = "\x00row:"
"""Helper columns (the row child's values) start so; they never leave the gate."""


@dataclass(frozen=True)
class OutputResult:
    """The outcome of the output gate: ``ok`` only when every expectation passed.

    ``failures`` name the rule, the column and how many rows, never a value.
    """

    ok: bool
    report: dict[str, Any]
    failures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RowValues:
    """The own child of each outgoing row, for the row-wise rules.

    ``values``: one row per outgoing row (same order), one column per catalog field the rules
    look for, the child's values as recorded. ``kept``: the fields the agreement sends as
    recorded (their values are not protected). ``own_keys``: per row, the mention keys that
    are the row's own (the child's full names and ids, the primary guardian's full name).
    ``batch``: the mention keys of every child of the batch.
    """

    values: pd.DataFrame
    kept: frozenset[str]
    own_keys: Sequence[frozenset[str]] | np.ndarray
    """Per row, a set of keys, or a row of a matrix of keys (``None`` past the row's own)."""
    batch: KeyIndex
    forms: dict[str, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, compare=False, repr=False
    )
    """Field -> :func:`forms_table` of its ``values``, made on first use: frames naming the
    same children share it (a program's record files), so each field's forms are made once."""

    def forms_of(self, source: str) -> tuple[np.ndarray, np.ndarray]:
        """:func:`forms_table` of the ``source`` column of :attr:`values` (not to be
        changed): each row's distinct value, and each distinct value's forms."""
        if source not in self.forms:
            self.forms[source] = forms_table(self.values[source].reset_index(drop=True))
        return self.forms[source]


@dataclass(frozen=True)
class Columns:
    """Which outgoing columns each row-wise rule reads (see the module docstring)."""

    text: tuple[str, ...] = ()
    generalized: Mapping[str, str] = field(default_factory=dict)
    kept_text: Mapping[str, str] = field(default_factory=dict)
    statements: tuple[str, ...] = ()
    empty: tuple[str, ...] = ()
    pattern_exempt: Mapping[str, frozenset[str]] = field(default_factory=dict)
    date_formats: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """A generalized date column -> its ``strftime`` patterns (full date, month cut); the
    column is cut to the month."""
    month_cut: Mapping[str, str] = field(default_factory=dict)
    """A generalized column cut to the month -> the ``strftime`` pattern it writes the month
    with (``%Y-%m`` for the ``month`` transform's own text); overrides ``date_formats``'."""
    exact: Mapping[str, Callable[[pd.Series], Any]] = field(default_factory=dict)
    """A generalized column that may carry only what its transform writes for the row child's
    own recorded value (a ZIP3, a year, an age in months, a band) -> how the transform writes
    each recorded value (a series of them in, one result per value out, ``None`` for
    nothing)."""
    serial_dates: frozenset[str] = frozenset()
    """Generalized columns that never rightly hold a five-digit whole number (a year, an age
    in months, a ZIP3, a month): there a cell that is one of Excel's day numbers
    (:data:`~pipelines.quality.mentions.SERIAL_DAYS`) is a full date. Not a band: its label
    may be any number."""

    def months(self) -> dict[str, str]:
        """Every month-cut column -> its month pattern."""
        return {c: m for c, (_, m) in self.date_formats.items()} | dict(self.month_cut)

    @property
    def row_wise(self) -> bool:
        """Whether any rule needs the rows' own children."""
        return bool(self.text or self.generalized or self.kept_text or self.statements)


def _may_hold_text(series: pd.Series) -> bool:
    """False for dtypes whose text cannot be an SSN, phone, e-mail or name (bool, datetime)."""
    dtype = series.dtype
    return not (pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype))


def _strip(series: pd.Series) -> pd.Series:
    """Strings stripped; other values untouched (an object column stays one)."""
    if series.dtype == object:
        if pd.api.types.infer_dtype(series, skipna=True) == "string":
            codes, uniques = pd.factorize(series, use_na_sentinel=True)  # each text once
            table = np.array([*(u.strip() for u in uniques), None], dtype=object)
            stripped = table[codes]
            missing = codes < 0
            stripped[missing] = series.to_numpy(dtype=object)[missing]  # None, NaN as they were
            return pd.Series(stripped, index=series.index, dtype=object)
        stripped = [v.strip() if isinstance(v, str) else v for v in series.tolist()]
        return pd.Series(stripped, index=series.index, dtype=object)  # ints stay ints
    if pd.api.types.is_string_dtype(series.dtype):
        return series.str.strip()
    return series


@dataclass(frozen=True)
class _Spec:
    """What one call checks (column names and settings; helper columns hold row values)."""

    expected: list[str]
    pseudonyms: list[str]
    pattern: str | None
    numeric_ids: frozenset[str]
    count_column: str | None
    min_cell_size: int
    columns: Columns
    protected: dict[str, list[str]] = field(default_factory=dict)
    """Field -> its helper columns (the row child's protected forms)."""
    own: dict[str, str] = field(default_factory=dict)
    """Field -> the helper column of the row child's own value (kept text fields)."""
    months: dict[str, str] = field(default_factory=dict)
    """A month-cut column -> the helper column of what it writes for the row child's month."""
    exact: dict[str, str] = field(default_factory=dict)
    """An :attr:`Columns.exact` column -> the helper column of what it writes for the row
    child's own value."""
    own_keys: str | None = None
    mentioned: list[str] = field(default_factory=list)
    """The batch's mention keys that occur in the statements (narrowed, like a value set)."""


def _patterns(column: str, spec: _Spec) -> dict[str, str]:
    """Rule name -> regex of the PII-looking values searched for in ``column``."""
    bare_ok = column in spec.numeric_ids
    patterns = {
        "ssn_like": SSN_SEPARATED_PATTERN if bare_ok else SSN_PATTERN,
        "phone_like": PHONE_SEPARATED_PATTERN if bare_ok else PHONE_PATTERN,
        "email_like": EMAIL_PATTERN,
    }
    exempt = spec.columns.pattern_exempt.get(column, frozenset())
    return {rule: regex for rule, regex in patterns.items() if rule not in exempt}


class _Suite:
    """An unsaved suite whose expectations carry rule, column and order in ``meta``."""

    def __init__(self, name: str) -> None:
        import great_expectations as gx

        get_context()
        self.suite = gx.ExpectationSuite(name=name)
        self.order = 0

    def add(self, expectation: Any, rule: str, column: str | None, **meta: Any) -> None:
        expectation.meta = {"rule": rule, "field": column, "order": self.order, **meta}
        self.suite.add_expectation(expectation)
        self.order += 1


COMBINED = ("pii_like", "not_permitted", "child_value", "full_value", "value_mismatch")
"""Rules checked in one expectation for all their columns; which column failed, and how many
rows, is asked only when that one fails (:func:`_detail_suite`)."""

Check = tuple[str, str, Any]
"""A per-column check of a :data:`COMBINED` rule: rule, column and its argument (a regex, or
the :class:`_Against` of a row-wise rule)."""


@dataclass(frozen=True)
class _Against:
    """What a row-wise check compares a cell with: helper columns of the row's values and,
    for a cell that may not hold a full date, its column's (full, month) patterns (``""``
    for none)."""

    helpers: tuple[str, ...]
    dates: tuple[str, str, bool] | None = None
    """(full, month, whether Excel's day number is a date in the column)."""
    normalized: bool = True
    """Whether the helpers hold text the gate normalized when it made them (the expectation
    reads them as they are); not a kept text's own values, which are as recorded."""


def _checks(data: pd.DataFrame, spec: _Spec) -> list[Check]:
    """Every per-column check of the :data:`COMBINED` rules, in rule order."""
    helpers = [c for c in data.columns if str(c).startswith(HELPER_PREFIX)]
    statements = set(spec.columns.statements)
    out: list[Check] = []
    for column in data.columns:
        if column in helpers or column in statements or column == spec.count_column:
            continue
        patterns = _patterns(column, spec)
        if not patterns or not _may_hold_text(data[column]):
            continue
        out.append(("pii_like", column, "|".join(f"(?:{p})" for p in patterns.values())))
    columns = spec.columns
    out += [("not_permitted", c, None) for c in columns.empty if c in data.columns]
    everything = tuple(h for helpers in spec.protected.values() for h in helpers)
    if everything:
        out += [("child_value", c, _Against(everything)) for c in columns.text if c in data.columns]
    months = columns.months()
    for column, source in columns.generalized.items():
        if column not in data.columns:
            continue
        full = columns.date_formats.get(column, ("", ""))[0]
        own = () if column in months else tuple(spec.protected.get(source, []))
        dates = (full, months.get(column, ""), column in columns.serial_dates)
        out.append(("full_value", column, _Against(own, dates)))
    for column, source in columns.kept_text.items():
        if column in data.columns and source in spec.own:
            recorded = _Against((spec.own[source],), normalized=False)
            out.append(("value_mismatch", column, recorded))
    for column, helper in spec.months.items():
        full = columns.date_formats.get(column, ("", ""))[0]
        dates = (full, months[column], column in columns.serial_dates)
        out.append(("value_mismatch", column, _Against((helper,), dates)))
    for column, helper in spec.exact.items():
        # the row child's full value (and a full date) is full_value's: each cell counts once
        full_values = tuple(spec.protected.get(columns.generalized[column], []))
        dates = ("", "", column in columns.serial_dates)
        out.append(("value_mismatch", column, _Against((helper, *full_values), dates)))
    return out


def _one(rule: str, column: str, argument: Any) -> Any:
    """The expectation of one check."""
    import great_expectations.expectations as gxe

    from pipelines.quality import expectations as rx

    if rule == "pii_like":
        return gxe.ExpectColumnValuesToNotMatchRegex(column=column, regex=argument)
    if rule == "not_permitted":
        return gxe.ExpectColumnValuesToBeNull(column=column)
    if not argument.helpers:  # a full date only: one column (a multicolumn one needs two)
        full, month, serial = argument.dates
        return rx.ExpectColumnValuesHoldNoFullDate(
            column=column, full=full, month=month, serial=serial
        )
    return _all(rule, [(rule, column, argument)])


def _all(rule: str, checks: list[Check]) -> Any:
    """One expectation for every check of ``rule`` (a row-wise rule: any number)."""
    from pipelines.quality import expectations as rx

    cells = [column for _, column, _ in checks]
    if rule == "pii_like":
        regexes = [argument for _, _, argument in checks]
        return rx.ExpectColumnsNotMatchingRegexes(column_list=cells, regexes=regexes)
    if rule == "not_permitted":
        return rx.ExpectValuesAllMissing(column_list=cells)
    names = list(dict.fromkeys(cells))
    for _, _, argument in checks:
        names += argument.helpers
    names = list(dict.fromkeys(names))
    at = {name: i for i, name in enumerate(names)}
    groups = [
        [at[column], [at[h] for h in argument.helpers]]
        for _, column, argument in checks
        if argument.helpers
    ]
    dates = [[at[column], *argument.dates] for _, column, argument in checks if argument.dates]
    ready = sorted(
        {at[h] for _, _, argument in checks if argument.normalized for h in argument.helpers}
    )
    kind = rx.ExpectRowValuesMatchAll if rule == "value_mismatch" else rx.ExpectRowValuesAbsentAll
    return kind(column_list=names, groups=groups, dates=dates, normalized=ready)


def _screen_suite(data: pd.DataFrame, spec: _Spec, checks: list[Check]) -> Any:
    """Stage one: every rule; a :data:`COMBINED` rule with several columns as one
    expectation (``meta["columns"]`` says how many), a column's PII patterns as one regex."""
    import great_expectations.expectations as gxe

    from pipelines.quality import expectations as rx

    out = _Suite("datashare_output")
    helpers = [c for c in data.columns if str(c).startswith(HELPER_PREFIX)]
    out.add(
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=[*spec.expected, *helpers]),
        "columns_match",
        None,
    )
    for column in spec.pseudonyms:
        if column in data.columns:
            regex = f"^(?:{spec.pattern})$"
            out.add(
                gxe.ExpectColumnValuesToMatchRegex(column=column, regex=regex),
                "pseudonym_format",
                column,
            )
    for rule in COMBINED:
        mine = [check for check in checks if check[0] == rule]
        if len(mine) == 1:
            out.add(_one(*mine[0]), rule, mine[0][1])
        elif mine:  # no row skipped: GE's "all missing" filter costs more than the check
            expectation = _all(rule, mine)
            expectation.ignore_row_if = "never"
            out.add(expectation, rule, None, columns=len(mine))
    for column in spec.columns.statements:
        if column in data.columns and spec.own_keys is not None:
            out.add(
                rx.ExpectNoOtherChildMentioned(
                    column_list=[column, spec.own_keys], keys=spec.mentioned
                ),
                "other_child",
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


def _detail_suite(rules: set[str], checks: list[Check]) -> Any:
    """Stage two, only for the combined rules that failed: each of their columns alone."""
    out = _Suite("datashare_output_columns")
    for rule, column, argument in checks:
        if rule in rules:
            out.add(_one(rule, column, argument), rule, column)
    return out.suite


def _pattern_suite(columns: list[str], spec: _Spec) -> Any:
    """Stage three, only for columns that failed ``pii_like``: which pattern, how many rows."""
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


def _helpers(
    data: pd.DataFrame, spec: _Spec, rows: RowValues
) -> tuple[dict[str, pd.Series], _Spec]:
    """The helper columns (row child's protected forms, own values and own keys) and the
    spec naming them.

    Vectorized: each distinct value's forms are made once (:func:`forms_table`), and "a
    protected form the row also sends as kept" (or as an exact column writes it) is one array
    comparison of the row's forms (text, or ``None`` past a value's forms); such a form is
    blanked (a sent value is nobody's secret). A form's position among the helper columns
    carries no meaning."""
    values = rows.values.reset_index(drop=True)
    columns = spec.columns
    generalized = set(columns.generalized.values())
    wanted_protected = set(generalized)
    if columns.text:
        wanted_protected |= {f for f in values.columns if f not in rows.kept}
    kept_sources = sorted(rows.kept & set(values.columns)) if columns.text else []
    protected_sources = sorted(wanted_protected & set(values.columns))
    n = len(values)
    helpers: dict[str, pd.Series] = {}
    exact, written = _exact_helpers(data, columns, values, helpers)
    sent_as_kept = _SentAsKept([rows.forms_of(source) for source in kept_sources], n)
    protected: dict[str, list[str]] = {}
    for source in protected_sources:
        codes, table = rows.forms_of(source)
        forms = table[codes]
        if source not in generalized and sent_as_kept.kept.shape[1] and forms.shape[1]:
            forms[sent_as_kept(codes, table)] = None
        for texts in written.get(source, []):  # a band "0" of a count 0 sends the count
            forms[(forms == texts[:, None]) & pd.notna(forms)] = None
        for k in range(forms.shape[1]):
            if not pd.notna(forms[:, k]).any():
                continue
            name = f"{HELPER_PREFIX}{source}:{k}"
            helpers[name] = pd.Series(forms[:, k], dtype=object)
            protected.setdefault(source, []).append(name)
    months: dict[str, str] = {}
    for column, pattern in columns.months().items():
        recorded = columns.generalized.get(column)
        if recorded is None or column not in data.columns:
            continue
        name = f"{HELPER_PREFIX}month:{column}"
        if recorded in values.columns:
            helpers[name] = pd.Series(month_texts(values[recorded], pattern), dtype=object)
        else:  # no recorded date: only an empty cell is the month
            helpers[name] = pd.Series([None] * len(values), dtype=object)
        months[column] = name
    own_values: dict[str, str] = {}
    for source in sorted(set(columns.kept_text.values())):
        name = f"{HELPER_PREFIX}{source}:own"
        if source in values.columns:
            helpers[name] = values[source].astype(object).reset_index(drop=True)
        else:  # nothing recorded to match: every non-empty cell is a mismatch
            helpers[name] = pd.Series([None] * len(values), dtype=object)
        own_values[source] = name
    own_keys = None
    mentioned: list[str] = []
    if columns.statements:
        own_keys = f"{HELPER_PREFIX}own_keys"
        helpers[own_keys] = pd.Series(_joined_keys(rows.own_keys), dtype=object)
        found: set[str] = set()
        for column in columns.statements:
            if column in data.columns:
                for text in data[column].dropna().unique():
                    found |= rows.batch.find(text)
        mentioned = sorted(found)
    return helpers, replace(
        spec,
        protected=protected,
        own=own_values,
        own_keys=own_keys,
        mentioned=mentioned,
        months=months,
        exact=exact,
    )


def _exact_helpers(
    data: pd.DataFrame, columns: Columns, values: pd.DataFrame, helpers: dict[str, pd.Series]
) -> tuple[dict[str, str], dict[str, list[np.ndarray]]]:
    """Add a helper column per :attr:`Columns.exact` column: what it writes for the row
    child's own value, normalized (``None`` when nothing, or nothing recorded). Returns the
    column -> helper names, and each source's written texts."""
    exact: dict[str, str] = {}
    written: dict[str, list[np.ndarray]] = {}
    months = columns.months()
    for column, write in columns.exact.items():
        recorded = columns.generalized.get(column)
        if recorded is None or column not in data.columns or column in months:
            continue
        name = f"{HELPER_PREFIX}exact:{column}"
        if recorded in values.columns:
            texts = normalized(np.asarray(write(values[recorded]), dtype=object))
            written.setdefault(recorded, []).append(texts)
        else:  # no recorded value: only an empty cell is the row child's
            texts = np.full(len(values), None, dtype=object)
        helpers[name] = pd.Series(texts, dtype=object)
        exact[column] = name
    return exact, written


class _SentAsKept:
    """Where a row's form equals one of the same row's kept forms (``kept``: each kept
    field's :func:`forms_table`): texts compared as integer codes, each distinct kept text
    coded once, and each field's distinct forms looked up once, not each row's (a form no
    kept text equals, or ``None``, codes as -1 and matches nothing)."""

    def __init__(self, kept: list[tuple[np.ndarray, np.ndarray]], n: int) -> None:
        texts = [table.ravel() for _, table in kept]
        every = np.concatenate(texts) if texts else np.empty(0, dtype=object)
        # an object index: a bare array would be inferred as a string dtype first
        self.index = pd.Index(pd.unique(every[pd.notna(every)]), dtype=object)
        parts = [self._codes(codes, table) for codes, table in kept]
        self.kept = np.hstack(parts) if parts else np.empty((n, 0), dtype=np.intp)

    def _codes(self, codes: np.ndarray, table: np.ndarray) -> np.ndarray:
        """Each row's forms as codes of kept texts (-1: none equal)."""
        target = pd.Index(table.ravel(), dtype=object)
        return self.index.get_indexer(target).reshape(table.shape)[codes]

    def __call__(self, codes: np.ndarray, table: np.ndarray) -> np.ndarray:
        """Of a field's :func:`forms_table`: where each row's form is one of its kept."""
        mine = self._codes(codes, table)
        same = mine[:, :, None] == self.kept[:, None, :]
        return (same & (mine >= 0)[:, :, None]).any(axis=2)


def _joined_keys(own_keys: Sequence[frozenset[str]] | np.ndarray) -> list[str]:
    """Each row's own keys joined by ``KEY_SEPARATOR`` (sorted, none empty)."""
    from pipelines.quality.expectations import KEY_SEPARATOR

    if isinstance(own_keys, np.ndarray):
        rows: Iterable[Iterable[Any]] = own_keys.tolist()
    else:
        rows = own_keys
    return [KEY_SEPARATOR.join(sorted({k for k in keys if isinstance(k, str)})) for keys in rows]


def _per_column(
    screen: list[dict[str, Any]], detail: list[dict[str, Any]], checks: list[Check]
) -> list[dict[str, Any]]:
    """The screen's summary with each :data:`COMBINED` rule's one row replaced by a row per
    column: a passed rule passed on each of its columns (no count: none was taken per
    column); a failed rule by its columns' own results (stage two). A failed rule none of
    whose columns failed alone keeps its own row, so the failure is never lost."""
    out: list[dict[str, Any]] = []
    for item in screen:
        if item["name"] not in COMBINED or item["column"] is not None:
            out.append(item)
            continue
        mine = [e for e in detail if e["name"] == item["name"]]
        if item["success"]:
            out += [
                {**item, "column": column, "unexpected_count": None, "unexpected_percent": None}
                for rule, column, _ in checks
                if rule == item["name"]
            ]
        elif any(not e["success"] for e in mine):
            out += mine
        else:
            out += [item, *mine]
    return out


def validate_output(
    frame: pd.DataFrame,
    *,
    expected_columns: Sequence[str],
    pseudonym_columns: Iterable[str] = (),
    pseudonym_pattern: str | re.Pattern[str] | None = None,
    aggregate_count_column: str | None = None,
    min_cell_size: int = 10,
    numeric_id_columns: Iterable[str] = (),
    columns: Columns | None = None,
    rows: RowValues | None = None,
) -> OutputResult:
    """Run the output privacy suite on one outgoing frame; any failure makes ``ok`` False.

    ``columns`` says which columns the row-wise rules read and ``rows`` names each row's own
    child. ``ValueError`` for pseudonym columns without a pattern, or row-wise rules without
    ``rows`` (or with another number of rows): caller errors, not data ones.
    """
    columns = columns or Columns()
    expected = [str(c) for c in expected_columns]
    pseudonyms = list(dict.fromkeys(pseudonym_columns))
    pattern = pseudonym_pattern.pattern if isinstance(pseudonym_pattern, re.Pattern) else None
    pattern = pattern or (pseudonym_pattern if isinstance(pseudonym_pattern, str) else None)
    if pseudonyms and not pattern:
        raise ValueError("pseudonym_columns need a pseudonym_pattern")
    if columns.row_wise and (rows is None or len(rows.values) != len(frame)):
        raise ValueError("row-wise rules need one RowValues row per outgoing row")
    if rows is not None and len(rows.own_keys) != len(frame):
        raise ValueError("row-wise rules need one set of own keys per outgoing row")
    n = len(frame)
    clash = [c for c in frame.columns if str(c).startswith(HELPER_PREFIX)]
    if frame.columns.duplicated().any() or clash:
        failure = (
            "columns_match: duplicate column names"
            if not clash
            else ("columns_match: a column name is reserved for the gate")
        )
        report = {"suite": "output", "rows": n, "ok": False, "expectations": []}
        return OutputResult(ok=False, report={**report, "failures": [failure]}, failures=[failure])

    spec = _Spec(
        expected=expected,
        pseudonyms=pseudonyms,
        pattern=pattern,
        numeric_ids=frozenset(numeric_id_columns),
        count_column=aggregate_count_column,
        min_cell_size=min_cell_size,
        columns=columns,
    )
    data = pd.DataFrame(
        {
            column: frame[column] if column in pseudonyms else _strip(frame[column])
            for column in frame.columns
        }
    ).reset_index(drop=True)
    if rows is not None and columns.row_wise:
        helpers, spec = _helpers(data, spec, rows)
        if helpers:
            data = pd.concat([data, pd.DataFrame(helpers, index=data.index)], axis=1)
    failures: list[str] = []
    count = aggregate_count_column
    if count in data.columns and not pd.api.types.is_numeric_dtype(data[count].dtype):
        failures.append(f"count_numeric on column {count}: not a numeric column")
        spec = replace(spec, count_column=None)  # checked as any other column instead
    checks = _checks(data, spec)
    with Loaded(data) as loaded:
        screen = summarize(
            loaded.screened(_screen_suite(data, spec, checks), result_format=RESULT_FORMAT)
        )
        combined = {e["name"] for e in screen if e["column"] is None and not e["success"]}
        combined &= set(COMBINED)
        detail: list[dict[str, Any]] = []
        if combined:
            suite = _detail_suite(combined, checks)
            detail = summarize(loaded.screened(suite, result_format=RESULT_FORMAT))
        expectations = _per_column(screen, detail, checks)
        flagged = [
            e["column"]
            for e in expectations
            if e["name"] == "pii_like" and e["column"] is not None and not e["success"]
        ]
        if flagged:
            suite = _pattern_suite(flagged, spec)
            expectations += summarize(loaded.screened(suite, result_format=RESULT_FORMAT))
    explained = {
        e["column"] for e in expectations if e["name"] in PATTERN_RULES and not e["success"]
    }
    by_column = {e["name"] for e in expectations if e["column"] is not None and not e["success"]}
    for item in expectations:
        if item["success"] or (item["name"] == "pii_like" and item["column"] in explained):
            continue
        if item["column"] is None and item["name"] in by_column:
            continue  # a combined rule: its columns' own results say where
        if item["name"] == "columns_match":
            failures.append(_column_failure(frame, expected))
        else:
            failures.append(
                f"{item['name']} on column {item['column']}: {item['unexpected_count']} of {n} rows"
            )
    ok = not failures
    report = {
        "suite": "output",
        "rows": n,
        "ok": ok,
        "min_cell_size": min_cell_size if aggregate_count_column else None,
        "expectations": expectations,
        "failures": failures,
    }
    return OutputResult(ok=ok, report=report, failures=failures)
