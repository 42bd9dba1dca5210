"""The input gate: Great Expectations checks on each extract before any decision is made.

Rules (:class:`InputRule`), one GE expectation each per column:

- ``missing_required``: program_code, child_local_id, first/last name, birth_date, sex,
  entry_date present (blank text counts as missing);
- ``duplicate_id``: child_local_id unique within program_code (every copy is quarantined);
- ``birth_date_future`` / ``birth_date_over_age`` (6 or older on the run date) /
  ``birth_date_before_1900``;
- ``birth_after_entry`` (birth_date <= entry_date), ``exit_before_entry`` (exit_date >=
  entry_date): GE column-pair expectations, skipped when either date is missing;
- ``unknown_code``: values outside the code sets of ``schemas.codes`` (missing is allowed
  except for sex); ``bad_format``: home_language not 3 letters; ``too_long``: text longer
  than its database column.

Rows that break a rule are quarantined (one row per child and rule, naming the field and the
rule, never the value); if the share of failing children exceeds ``max_failure_share`` the
whole batch stops and nothing passes. GE runs a screen first, success only, where each
family of :data:`COMBINED` is one expectation (:mod:`pipelines.quality.input_rules`; GE's cost
is mostly per expectation): missing required, unknown codes, too long, and the five date rules;
a failed family is checked column by column (rule by rule), and every
expectation that failed runs again with result format COMPLETE and
``unexpected_index_column_names=["child_id"]``; only the child ids are read from that result,
which is then dropped. The frame is loaded into GE once for all of it. The suites are built
once per process; run-date bounds are suite parameters. ``unexpected_percent`` in the report
is GE's (a share of the non-missing values), given only where GE counted (a failed rule).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from pipelines.quality.context import (
    SCREEN_FORMAT,
    Loaded,
    QualityError,
    get_context,
    meta_of,
    summary_row,
    unexpected_ids,
)
from privacy.fields import CATALOG
from schemas import codes

ID = "child_id"
REQUIRED = (
    "program_code",
    "child_local_id",
    "first_name",
    "last_name",
    "birth_date",
    "sex",
    "entry_date",
)
CODE_SETS: dict[str, type[StrEnum]] = {
    "sex": codes.Sex,
    "race": codes.Race,
    "ethnicity": codes.Ethnicity,
    "program_option": codes.ProgramOption,
    "eligibility_category": codes.EligibilityCategory,
    "exit_reason": codes.ExitReason,
    "income_band": codes.IncomeBand,
    "program_type": codes.ProgramType,
    "guardian_relationship": codes.Relationship,
}
MAX_LENGTHS: dict[str, int] = {
    # The column sizes of schemas/records.py (pinned by a test).
    "program_code": 40,
    "child_local_id": 40,
    "state_student_id": 32,
    "first_name": 75,
    "middle_name": 75,
    "last_name": 75,
    "address_street": 150,
    "address_city": 60,
    "address_state": 2,
    "address_zip": 10,
    "guardian_first_name": 75,
    "guardian_last_name": 75,
    "guardian_phone": 20,
    "guardian_email": 120,
    "site_code": 40,
}
DATE_FIELDS = ("birth_date", "entry_date", "exit_date")
CHECKED = [
    name
    for name in CATALOG
    if name in {*REQUIRED, *CODE_SETS, *DATE_FIELDS, *MAX_LENGTHS, "home_language"}
]
LANGUAGE_PATTERN = r"^[A-Za-z]{3}$"
MAX_AGE_YEARS = 6
EARLIEST_BIRTH = pd.Timestamp(1900, 1, 1)
RESULT_FORMAT = {
    "result_format": "COMPLETE",
    "unexpected_index_column_names": [ID],
    "partial_unexpected_count": 0,
    "return_unexpected_index_query": False,
}


class InputRule(StrEnum):
    """What an input row can be quarantined for."""

    MISSING_REQUIRED = "missing_required"
    DUPLICATE_ID = "duplicate_id"
    BIRTH_DATE_FUTURE = "birth_date_future"
    BIRTH_DATE_OVER_AGE = "birth_date_over_age"
    BIRTH_DATE_BEFORE_1900 = "birth_date_before_1900"
    BIRTH_AFTER_ENTRY = "birth_after_entry"
    EXIT_BEFORE_ENTRY = "exit_before_entry"
    UNKNOWN_CODE = "unknown_code"
    BAD_FORMAT = "bad_format"
    TOO_LONG = "too_long"


QUARANTINE_COLUMNS = ("child_id", "program_code", "child_local_id", "field", "rule", "message")


@dataclass(frozen=True)
class InputResult:
    """The outcome of the input gate.

    ``passed``: the rows that broke no rule (empty when ``stopped``); ``quarantined``: one row
    per failing child and rule (:data:`QUARANTINE_COLUMNS`); ``report``: PII-free summary.
    """

    passed: pd.DataFrame
    quarantined: pd.DataFrame
    stopped: bool
    report: dict[str, Any]


def _expectations() -> list[Any]:
    """Every input expectation, its rule, field and quarantine message in ``meta``."""
    import great_expectations.expectations as gxe

    rows: list[tuple[Any, InputRule, str, str]] = []
    for name in REQUIRED:
        rows.append(
            (
                gxe.ExpectColumnValuesToNotBeNull(column=name),
                InputRule.MISSING_REQUIRED,
                name,
                f"{name} is required",
            )
        )
    rows.append(
        (
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["program_code", "child_local_id"]),
            InputRule.DUPLICATE_ID,
            "child_local_id",
            "child_local_id is not unique within program_code",
        )
    )
    born = "birth_date"
    rows += [
        (
            gxe.ExpectColumnValuesToBeBetween(column=born, max_value={"$PARAMETER": "run_date"}),
            InputRule.BIRTH_DATE_FUTURE,
            born,
            "birth_date is after the run date",
        ),
        (
            gxe.ExpectColumnValuesToBeBetween(
                column=born, min_value={"$PARAMETER": "sixth_birthday_cutoff"}, strict_min=True
            ),
            InputRule.BIRTH_DATE_OVER_AGE,
            born,
            f"child is {MAX_AGE_YEARS} or older at the run date",
        ),
        (
            gxe.ExpectColumnValuesToBeBetween(column=born, min_value=EARLIEST_BIRTH),
            InputRule.BIRTH_DATE_BEFORE_1900,
            born,
            "birth_date is before 1900-01-01",
        ),
        (
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="entry_date",
                column_B=born,
                or_equal=True,
                ignore_row_if="either_value_is_missing",
            ),
            InputRule.BIRTH_AFTER_ENTRY,
            born,
            "birth_date is after entry_date",
        ),
        (
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="exit_date",
                column_B="entry_date",
                or_equal=True,
                ignore_row_if="either_value_is_missing",
            ),
            InputRule.EXIT_BEFORE_ENTRY,
            "exit_date",
            "exit_date is before entry_date",
        ),
    ]
    for name, code_set in CODE_SETS.items():
        rows.append(
            (
                gxe.ExpectColumnValuesToBeInSet(column=name, value_set=[c.value for c in code_set]),
                InputRule.UNKNOWN_CODE,
                name,
                f"{name} is not in the {code_set.__name__} code set",
            )
        )
    rows.append(
        (
            gxe.ExpectColumnValuesToMatchRegex(column="home_language", regex=LANGUAGE_PATTERN),
            InputRule.BAD_FORMAT,
            "home_language",
            "home_language is not a 3-letter ISO 639-2 code",
        )
    )
    for name, length in MAX_LENGTHS.items():
        rows.append(
            (
                gxe.ExpectColumnValueLengthsToBeBetween(column=name, max_value=length),
                InputRule.TOO_LONG,
                name,
                f"{name} is longer than {length} characters",
            )
        )
    for order, (expectation, rule, field, message) in enumerate(rows):
        expectation.meta = {"rule": rule.value, "field": field, "message": message, "order": order}
    return [expectation for expectation, *_ in rows]


DATE_RULES = (
    InputRule.BIRTH_DATE_FUTURE,
    InputRule.BIRTH_DATE_OVER_AGE,
    InputRule.BIRTH_DATE_BEFORE_1900,
    InputRule.BIRTH_AFTER_ENTRY,
    InputRule.EXIT_BEFORE_ENTRY,
)
COMBINED: tuple[tuple[InputRule, ...], ...] = (
    (InputRule.MISSING_REQUIRED,),
    (InputRule.UNKNOWN_CODE,),
    (InputRule.TOO_LONG,),
    DATE_RULES,
)
"""Rule families the screen checks as one expectation each (:mod:`.input_rules`): three
families of one rule over many columns, and the five date rules over the three dates."""


@cache
def input_suite() -> Any:
    """The input suite (one expectation per rule and column), built once per process."""
    import great_expectations as gx

    get_context()
    suite = gx.ExpectationSuite(name="datashare_input")
    for expectation in _expectations():
        suite.add_expectation(expectation)
    return suite


def _combined(family: tuple[InputRule, ...]) -> Any:
    """The one expectation checking every column and rule of a :data:`COMBINED` family."""
    from pipelines.quality import input_rules as ir

    if family == DATE_RULES:
        return ir.ExpectDatesInOrder(
            column_list=list(DATE_FIELDS),
            latest_birth={"$PARAMETER": "run_date"},
            over_age_cutoff={"$PARAMETER": "sixth_birthday_cutoff"},
            earliest_birth=EARLIEST_BIRTH,
            ignore_row_if="never",
        )
    (rule,) = family
    if rule is InputRule.MISSING_REQUIRED:
        return ir.ExpectValuesAllPresent(column_list=list(REQUIRED), ignore_row_if="never")
    if rule is InputRule.UNKNOWN_CODE:
        return ir.ExpectValuesInSets(
            column_list=list(CODE_SETS),
            value_sets=[[c.value for c in code_set] for code_set in CODE_SETS.values()],
            ignore_row_if="never",
        )
    return ir.ExpectValueLengthsAtMost(
        column_list=list(MAX_LENGTHS), lengths=list(MAX_LENGTHS.values()), ignore_row_if="never"
    )


@cache
def screen_suite() -> Any:
    """The screen: each :data:`COMBINED` family as one expectation (``meta["combined"]``, its
    rules in ``meta["rules"]``), every other expectation of :func:`input_suite` as it is.
    Built once per process."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name="datashare_input")
    families = {rule.value for family in COMBINED for rule in family}
    order = len(input_suite().expectations)
    for family in COMBINED:
        expectation = _combined(family)
        rules = [rule.value for rule in family]
        expectation.meta = {
            "rule": rules[0] if len(rules) == 1 else "dates",
            "rules": rules,
            "field": None,
            "order": order,
            "combined": True,
        }
        suite.add_expectation(expectation)
        order += 1
    for expectation in input_suite().expectations:
        if expectation.meta["rule"] not in families:
            copy = expectation.copy(deep=True)
            copy.id = None
            suite.add_expectation(copy)
    return suite


def _again(rules: set[str], orders: set[int]) -> Any:
    """The expectations of :func:`input_suite` of failed families or failed themselves."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name="datashare_input")
    for expectation in input_suite().expectations:
        if expectation.meta["rule"] in rules or expectation.meta["order"] in orders:
            copy = expectation.copy(deep=True)
            copy.id = None
            suite.add_expectation(copy)
    return suite


def _run(prepared: pd.DataFrame, parameters: dict[str, Any]) -> tuple[list[Any], list[dict]]:
    """GE's results of the expectations that failed (each with its rows), and the summary of
    every expectation of :func:`input_suite`, in its order.

    The screen runs success only; a failed family is checked column by column, success only
    first, then with :data:`RESULT_FORMAT` for those that failed (:meth:`Loaded.screened`),
    as is a failed single expectation. A passed expectation's summary has no count."""
    with Loaded(prepared) as loaded:
        screen = loaded.run(screen_suite(), result_format=SCREEN_FORMAT, parameters=parameters)
        rules: set[str] = set()
        orders: set[int] = set()
        passed: dict[str, Any] = {}
        for item in screen:
            meta = meta_of(item)
            if meta.get("combined") and not item.success:
                rules.update(meta["rules"])
            elif meta.get("combined"):
                passed |= dict.fromkeys(meta["rules"], item)
            elif not item.success:
                orders.add(meta["order"])
        detail: list[Any] = []
        if rules or orders:
            again = _again(rules, orders)
            screened = loaded.screened(again, result_format=RESULT_FORMAT, parameters=parameters)
            detail = screened.results
    by_order = {meta_of(item)["order"]: item for item in [*screen, *detail]}
    summary = []
    for expectation in input_suite().expectations:
        meta = expectation.meta
        if meta["rule"] in passed:
            row = summary_row(passed[meta["rule"]])
            summary.append({**row, "name": meta["rule"], "column": meta["field"]})
        else:
            summary.append(summary_row(by_order[meta["order"]]))
    return [item for item in detail if not item.success], summary


def _sixth_birthday_cutoff(run_date: dt.date) -> pd.Timestamp:
    """The birth date of a child turning six on ``run_date`` (Feb 29 -> Feb 28)."""
    year = run_date.year - MAX_AGE_YEARS
    day = min(run_date.day, 28) if run_date.month == 2 and run_date.day == 29 else run_date.day
    return pd.Timestamp(year, run_date.month, day)


def _blank_to_missing(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip() or None
    return value


def _required_text(series: pd.Series) -> pd.Series:
    """Strings stripped and blank strings missing, so a blank required field counts as absent.

    A column of strings (missing values aside) is stripped once per distinct string; any
    other column value by value (distinct values of mixed types may compare equal)."""
    values = series.astype(object)
    if pd.api.types.infer_dtype(values, skipna=True) != "string":
        return values.map(_blank_to_missing, na_action="ignore")
    array = values.to_numpy()
    codes, uniques = pd.factorize(array, use_na_sentinel=True)
    table = np.array([*(text.strip() or None for text in uniques), None], dtype=object)
    out = table[codes]
    missing = codes < 0
    out[missing] = array[missing]  # None, NaN as they were
    return pd.Series(out, index=series.index, dtype=object)


def _dates(series: pd.Series, name: str) -> pd.Series:
    """Dates as ``datetime64[ns]`` (GE's vectorized path), clipped into its range.

    Only date, datetime and missing values are accepted (no parsing of text). Clipping keeps
    every rule's outcome for out-of-range typos (year 0201 stays before 1900 and before any
    entry date; year 9999 stays in the future).
    """
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        values = series.astype(object)
        kind = pd.api.types.infer_dtype(values, skipna=True)
        if kind in ("date", "datetime", "empty"):  # every value a date (datetime is one)
            is_date = pd.Series(True, index=values.index)
        else:
            is_date = values.map(lambda v: isinstance(v, dt.date), na_action="ignore")
        if not is_date.fillna(True).astype(bool).all():
            raise QualityError(
                f"suite datashare_input: column {name} holds values that are not dates"
            )
        series = pd.to_datetime(values)
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_localize(None)
    low, high = pd.Timestamp(1678, 1, 1), pd.Timestamp(2262, 1, 1)
    return series.clip(lower=low, upper=high).astype("datetime64[ns]")


def _prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame GE sees: ``child_id`` and the checked columns, required text stripped, dates
    typed (narrow, because GE copies the whole frame)."""
    missing = [name for name in (ID, *CATALOG) if name not in frame.columns]
    if missing:
        raise QualityError(f"suite datashare_input: extract lacks columns {missing}")
    if frame[ID].isna().any() or frame[ID].duplicated().any():
        raise QualityError("suite datashare_input: child_id is missing or not unique")
    data = {ID: frame[ID].reset_index(drop=True)}
    for name in CHECKED:
        column = frame[name].reset_index(drop=True)
        if name in DATE_FIELDS:
            column = _dates(column, name)
        elif name in REQUIRED:
            column = _required_text(column)
        data[name] = column
    return pd.DataFrame(data)


def validate_input(
    frame: pd.DataFrame, run_date: dt.date, *, max_failure_share: float = 0.05
) -> InputResult:
    """Run the input suite on an extract frame (``child_id`` + every catalog field).

    :class:`QualityError` if the frame cannot be validated at all (a catalog column missing,
    ``child_id`` missing or repeated, a date column holding non-dates).
    """
    prepared = _prepare(frame)
    parameters = {
        "run_date": pd.Timestamp(run_date),
        "sixth_birthday_cutoff": _sixth_birthday_cutoff(run_date),
    }
    failed, expectations = _run(prepared, parameters)
    keys = frame.set_index(ID)[["program_code", "child_local_id"]]
    failures: list[tuple[Any, str, str, str]] = []
    for item in failed:
        meta = meta_of(item)
        for child_id in unexpected_ids(item, ID):
            failures.append((child_id, meta["field"], meta["rule"], meta["message"]))
    del failed  # GE's results hold the failing values; only ids and counts are kept
    quarantined = pd.DataFrame(failures, columns=["child_id", "field", "rule", "message"])
    quarantined["child_id"] = quarantined["child_id"].astype(frame[ID].dtype)
    quarantined = quarantined.join(keys, on="child_id")[list(QUARANTINE_COLUMNS)]
    quarantined = quarantined.sort_values(["child_id", "rule", "field"], kind="stable")
    quarantined = quarantined.reset_index(drop=True)

    bad = frame[ID].isin(quarantined["child_id"])
    failing = int(bad.sum())
    share = failing / len(frame) if len(frame) else 0.0
    stopped = share > max_failure_share
    passed = frame.iloc[0:0] if stopped else frame[~bad]
    report = {
        "suite": "input",
        "run_date": run_date.isoformat(),
        "rows": len(frame),
        "passed_rows": len(passed),
        "quarantined_rows": failing,
        "failure_share": round(share, 6),
        "max_failure_share": max_failure_share,
        "stopped": stopped,
        "success": failing == 0,
        "expectations": expectations,
    }
    return InputResult(
        passed=passed.copy(), quarantined=quarantined, stopped=stopped, report=report
    )
