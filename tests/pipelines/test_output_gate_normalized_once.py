"""The output gate computes each text once and decides exactly as when it computed it again.

- The row rules read the gate's helper columns (the row child's forms, months and exact
  texts, normalized when made) as they are: the same verdicts and counts as normalizing them
  again in the expectation, on hostile data (a value that is also a name, unicode
  look-alikes, case and white-space variants, empty and missing values, dates at month and
  year boundaries). That rests on :func:`normalize` changing nothing it wrote, checked for
  every code point.
- The PII screen takes missing values from the distinct-text encoding, not from a separate
  ``notna`` pass: the same rows as skipping ``notna`` rows first, for every kind of missing.
- :func:`normalize_strings` rewrites only the white-space runs that change: the same as
  :func:`normalize` on every short string over white space, letters and look-alikes.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import sys
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.quality import expectations as rx
from pipelines.quality.context import Loaded
from pipelines.quality.mentions import KeyIndex, normalize, normalize_strings
from pipelines.quality.output_suite import Columns, RowValues, validate_output

FIELDS = ["first_name", "last_name", "guardian_last_name", "birth_date", "entry_date",
          "address_zip", "child_local_id"]  # fmt: skip
KEPT = frozenset({"first_name", "entry_date", "child_local_id"})
COLUMNS = ["First", "Note", "BirthMonth", "EntryMonth", "BirthYear", "Zip3"]


def _year(recorded: pd.Series) -> list[Any]:
    return [None if pd.isna(v) else str(v.year) for v in recorded]


def _zip3(recorded: pd.Series) -> list[Any]:
    return [None if pd.isna(v) else str(v)[:3] for v in recorded]


RULES = Columns(
    text=("First", "Note"),
    generalized={
        "BirthMonth": "birth_date",
        "EntryMonth": "entry_date",
        "BirthYear": "birth_date",
        "Zip3": "address_zip",
    },
    kept_text={"First": "first_name"},
    date_formats={"BirthMonth": ("%m/%d/%Y", "%m/%Y")},
    month_cut={"EntryMonth": "%Y-%m"},
    exact={"BirthYear": _year, "Zip3": _zip3},
    serial_dates=frozenset({"BirthYear", "Zip3"}),
)
NAMES = ["Liam", "LIAM", "liam ", "Lïam", "Lіam", "Ｌｉａｍ", "Straße", "STRASSE", "Zoë",
         "Zoe\u0308", "İlker", "ﬁona", "Mary  Ann", "mary\tann", "Mary\u00a0Ann", "=Lee",
         "'=Lee", "ǅemal", "ΣΊΣΥΦΟΣ", "Ⅻ", "05401", "054", "2021", "", " "]  # fmt: skip
DATES = [dt.date(2021, 1, 1), dt.date(2020, 12, 31), dt.date(2020, 2, 29), dt.date(2021, 11, 30),
         dt.date(1999, 12, 31), dt.date(2000, 1, 1)]  # fmt: skip


@st.composite
def batches(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of children whose values are each other's names, and cells written from them."""
    n = draw(st.integers(1, 6))
    text = st.sampled_from(NAMES)
    rows = [
        {
            "first_name": draw(st.none() | text),
            "last_name": draw(text),
            "guardian_last_name": draw(text),
            "birth_date": draw(st.none() | st.sampled_from(DATES)),
            "entry_date": draw(st.sampled_from(DATES)),
            "address_zip": draw(st.none() | st.sampled_from(["05401", "05401-1234", "054"])),
            "child_local_id": draw(st.sampled_from(["L0001", "liam", "2021"])),
        }
        for _ in range(n)
    ]
    values = pd.DataFrame(rows, columns=FIELDS)

    def cell(i: int) -> Any:
        who = rows[draw(st.sampled_from([i, draw(st.integers(0, n - 1))]))]
        value = who[draw(st.sampled_from(FIELDS))]
        kind = draw(st.sampled_from(["none", "nan", "value", "upper", "spaced", "text", "date"]))
        if kind == "none" or value is None or (isinstance(value, float) and value != value):
            return draw(st.sampled_from([None, np.nan, pd.NA, "", "  "]))
        if isinstance(value, dt.date) or kind == "date":
            d = value if isinstance(value, dt.date) else draw(st.sampled_from(DATES))
            forms = [d.isoformat(), d.strftime("%m/%d/%Y"), d.strftime("%m/%Y"),
                     d.strftime("%Y-%m"), str(d.year), f"{d.month}/{d.day}/{d.year}"]  # fmt: skip
            return draw(st.sampled_from(forms))
        if kind == "upper":
            return str(value).upper()
        if kind == "spaced":
            return draw(st.sampled_from([" ", "\t", "\u2003", "\x1c"])) + str(value) + "  "
        if kind == "text":
            return draw(st.sampled_from(NAMES))
        return value

    frame = pd.DataFrame({c: [cell(i) for i in range(n)] for c in COLUMNS}, dtype=object)
    return frame, values


class _NormalizedAgain(rx._Texts):
    """The old way: every column normalized in the expectation, helpers included."""

    def __init__(self, column_list: pd.DataFrame, kwargs: dict[str, Any]) -> None:
        super().__init__(column_list, kwargs)
        self.ready = set()


def _gate(frame: pd.DataFrame, values: pd.DataFrame) -> Any:
    rows = RowValues(values, KEPT, [frozenset()] * len(frame), KeyIndex.of([]))
    result = validate_output(frame, expected_columns=COLUMNS, columns=RULES, rows=rows)
    return result.ok, result.failures, result.report


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches())
def test_helpers_read_as_made_decide_as_normalizing_them_again(
    batch: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    frame, values = batch
    new = _gate(frame, values)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rx, "_Texts", _NormalizedAgain)
        old = _gate(frame, values)
    assert new == old


def test_the_helper_columns_are_named_as_normalized() -> None:
    """The forms, month and exact helpers are read as they are; a kept text's own values (as
    recorded, read by the formula guard) are not."""
    values = pd.DataFrame([{f: None for f in FIELDS} | {"first_name": " Liam ",
                            "entry_date": DATES[0], "birth_date": DATES[1]}])  # fmt: skip
    frame = pd.DataFrame({c: ["x"] for c in COLUMNS}, dtype=object)
    seen: list[tuple[str, list[str]]] = []
    real = rx._Texts.__init__

    def spy(self: rx._Texts, column_list: pd.DataFrame, kwargs: dict[str, Any]) -> None:
        real(self, column_list, kwargs)
        names = [str(column_list.columns[at]) for at in sorted(self.ready)]
        seen.append((str(list(column_list.columns)), names))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rx._Texts, "__init__", spy)
        _gate(frame, values)
    ready = {name for _, names in seen for name in names}
    assert ready and all(not name.endswith(":own") for name in ready)
    assert any(":month:" in name for name in ready) and any(":exact:" in name for name in ready)
    assert any(name.endswith("birth_date:0") for name in ready)


def test_normalize_changes_nothing_it_wrote_for_any_code_point() -> None:
    """Case folding maps no character into white space and folds what it folded to itself,
    so white space runs, ends and case of a normalized text are final."""
    every = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    text = "".join(every)
    folded = text.casefold()
    assert folded.casefold() == folded
    for c in every:
        if not c.isspace():
            assert not any(f.isspace() for f in c.casefold()), hex(ord(c))
    for sample in ("a" + text[i : i + 64] + "b" for i in range(0, len(text), 64)):
        once = normalize(sample)
        assert normalize(once) == once


@given(st.text())
def test_normalize_is_idempotent(text: str) -> None:
    assert normalize(normalize(text)) == normalize(text)


MISSING = [None, np.nan, float("nan"), np.float32("nan"), pd.NA, pd.NaT, np.datetime64("NaT"),
           np.timedelta64("NaT"), Decimal("NaN")]  # fmt: skip
TEXTS = ["nan", "None", "NaT", "<NA>", "NaN", "1", "x", "2021-01-01"]


def _old_hits(column: pd.Series, regex: str) -> list[bool]:
    """The PII screen as it was: missing rows (``notna``) skipped, then each text searched."""
    present = column.notna().to_numpy()
    return [bool(p and re.search(regex, str(v))) for p, v in zip(present, column, strict=True)]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(MISSING) | st.sampled_from(TEXTS), min_size=1, max_size=8),
    st.sampled_from(["object", "str", "mixed"]),
)
def test_pii_screen_skips_exactly_the_missing_values(values: list[Any], kind: str) -> None:
    regex = r"nan|None|NaT|NA|1|x|01"
    if kind == "str":
        values = [v if isinstance(v, str) else None for v in values]
        column = pd.Series(values, dtype="str")
    elif kind == "mixed":
        column = pd.Series([*values, 1, dt.date(2021, 1, 1)], dtype=object)
    else:
        column = pd.Series(values, dtype=object)
    frame = pd.DataFrame({"a": column, "b": pd.Series(["y"] * len(column), dtype=object)})
    suite = rx.ExpectColumnsNotMatchingRegexes(column_list=["a", "b"], regexes=[regex, regex])
    suite.ignore_row_if = "never"
    import great_expectations as gx

    wrapped = gx.ExpectationSuite(name="t")
    suite.meta = {"rule": "pii_like", "field": None, "order": 0}
    wrapped.add_expectation(suite)
    with Loaded(frame) as loaded:
        result = loaded.run(
            wrapped, result_format={"result_format": "COMPLETE", "include_unexpected_rows": False}
        )
    got = sorted(result[0].result.get("unexpected_index_list") or [])
    expected = [i for i, hit in enumerate(_old_hits(column, regex)) if hit]
    assert got == expected
    assert result[0].success is (not expected)


SPACE = ["a", "B", " ", "\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1f", "\u00a0", "\u2003", "ß"]


def test_normalize_strings_is_normalize_on_every_short_string() -> None:
    texts = ["".join(p) for k in range(1, 5) for p in itertools.product(SPACE, repeat=k)]
    got = normalize_strings(texts)
    assert list(got) == [normalize(t) for t in texts]
