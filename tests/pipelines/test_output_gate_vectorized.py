"""Property: the output gate's column-wise checks (combined expectations, values normalized per
distinct text, keys built by array concatenation) say exactly what a per-row oracle says.

The oracle below is written from the rules in the gate's documentation, row by row and cell by
cell, and imports nothing of the gate:

- a cell is compared *normalized*: missing is nothing; a date is ISO ``YYYY-MM-DD``; text has
  its white-space runs made one space, its ends stripped, and is case folded;
- a date of the child can be written ISO, ``MM/DD/YYYY`` or ``M/D/YYYY``;
- ``child_value``: a free-text cell equals one of the row child's values the agreement does
  not send as recorded (a value equal to one it does send, in that row, is not protected;
  the birth date, cut to the month, stays protected);
- ``full_value``: the month column holds a full date, any child's (here: one of ``DATES``
  written ISO, ``MM/DD/YYYY`` or ``M/D/YYYY``; its random text has no digits);
- ``value_mismatch``: the kept first-name column is neither empty nor the row child's own
  first name (as written, or with the formula guard's quote in front);
- ``not_permitted``: the column of a field the agreement does not send is not empty;
- ``ssn_like``, ``phone_like``, ``email_like``: the shapes of an SSN, a NANP phone number and
  an e-mail address, searched in every cell's stripped text.

Each failure is ``<rule> on column <column>: <rows> of <n> rows``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.quality.mentions import KeyIndex
from pipelines.quality.output_suite import Columns, RowValues, validate_output
from pipelines.submission.gate import IDENTITY_COLUMNS, Identities

FIELDS = ["first_name", "middle_name", "last_name", "birth_date", "child_local_id",
          "state_student_id", "guardian_first_name", "guardian_last_name"]  # fmt: skip
KEPT = frozenset({"first_name"})
COLUMNS = ["FirstName", "Note", "Other", "BirthMonth", "Middle", "Code"]
RULES = Columns(
    text=("FirstName", "Note", "Other"),
    generalized={"BirthMonth": "birth_date"},
    kept_text={"FirstName": "first_name"},
    empty=("Middle",),
)
NAMES = ["Liam", "LIAM", "Zoë", "ZOË", "Straße", "strasse", "Ａｎａ", "Lee", "=Lee", "O'Neil",
         "Mary Ann", "mary  ann", "İlker", "Ⅻ"]  # fmt: skip
SPACES = [" ", "  ", "\t", "\u00a0", "\x1c", "\u2003", "\n"]
PII = ["802-555-0142", "(802) 555-0142", "+1 802 555 0142", "8025550142", "123-45-6789",
       "123 45 6789", "123456789", "pat@example.org", "x123456789", "05401-1234",
       "2022-03-14", "1234567890123"]  # fmt: skip
DATES = [dt.date(2022, 3, 14), dt.date(2021, 11, 2), dt.date(2022, 3, 1)]
SSN = r"(?<![\w-])(?:\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4}|\d{9})(?![\w-])"
PHONE = (r"(?<![\w-])(?:(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}"
         r"|(?:\+?1)?\d{10})(?![\w-])")  # fmt: skip
EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
SHAPES = {"ssn_like": SSN, "phone_like": PHONE, "email_like": EMAIL}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _norm(value: Any) -> str | None:
    if _missing(value):
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    return " ".join(str(value).split()).casefold() or None


def _forms(value: Any) -> set[str]:
    if isinstance(value, dt.date):
        d = value
        return {d.isoformat(), f"{d.month:02d}/{d.day:02d}/{d.year}", f"{d.month}/{d.day}/{d.year}"}
    text = _norm(value)
    return {text} if text else set()


ANY_DATE = set().union(*(_forms(d) for d in DATES))


def oracle(frame: pd.DataFrame, values: pd.DataFrame) -> set[str]:
    n = len(frame)
    hits: dict[tuple[str, str], int] = {}

    def hit(rule: str, column: str) -> None:
        hits[(rule, column)] = hits.get((rule, column), 0) + 1

    for i in range(n):
        me = values.iloc[i]
        sent: set[str] = set().union(*(_forms(me[f]) for f in KEPT))
        protected: set[str] = set()
        for f in FIELDS:
            if f in KEPT:
                continue
            forms = _forms(me[f])
            protected |= forms if f == "birth_date" else forms - sent
        for column in ("FirstName", "Note", "Other"):
            if _norm(frame.at[i, column]) in protected:
                hit("child_value", column)
        if _norm(frame.at[i, "BirthMonth"]) in ANY_DATE:
            hit("full_value", "BirthMonth")
        cell, own = _norm(frame.at[i, "FirstName"]), me["first_name"]
        if cell is not None:
            mine = {_norm(own)}
            if isinstance(own, str) and own.startswith(("=", "+", "-", "@", "\t", "\r")):
                mine.add(_norm("'" + own))
            if own is None or cell not in mine:
                hit("value_mismatch", "FirstName")
        if not _missing(frame.at[i, "Middle"]):
            hit("not_permitted", "Middle")
        for column in COLUMNS:
            value = frame.at[i, column]
            if _missing(value):
                continue
            text = value.strip() if isinstance(value, str) else str(value)
            for rule, shape in SHAPES.items():
                if re.search(shape, text):
                    hit(rule, column)
    return {
        f"{rule} on column {column}: {count} of {n} rows" for (rule, column), count in hits.items()
    }


@st.composite
def batches(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = draw(st.integers(1, 6))
    spaced = st.builds(lambda a, s, b: f"{a}{s}{b}", st.sampled_from(NAMES),
                       st.sampled_from(SPACES), st.sampled_from(NAMES))  # fmt: skip
    text = st.sampled_from(NAMES) | spaced
    ids = st.sampled_from(["L0001", "l0001", "9000004", "L0002", " L0001 "])
    rows = []
    for _ in range(n):
        rows.append({
            "first_name": draw(st.none() | text), "middle_name": draw(st.none() | text),
            "last_name": draw(text), "birth_date": draw(st.sampled_from(DATES)),
            "child_local_id": draw(ids), "state_student_id": draw(st.none() | ids),
            "guardian_first_name": draw(text), "guardian_last_name": draw(text),
        })  # fmt: skip
    values = pd.DataFrame(rows, columns=FIELDS)

    def cell(i: int, column: str) -> Any:
        who = values.iloc[draw(st.sampled_from([i, draw(st.integers(0, n - 1))]))]
        field = draw(st.sampled_from(FIELDS))
        value = who[field]
        kind = draw(st.sampled_from(["none", "value", "upper", "spaced", "us_date", "pii", "text"]))
        if kind == "none" or _missing(value):
            return None
        if isinstance(value, dt.date):
            if kind == "us_date":
                return draw(st.sampled_from([f"{value.month}/{value.day}/{value.year}",
                                             value.strftime("%m/%d/%Y")]))  # fmt: skip
            return value.isoformat() if kind != "text" else value.strftime("%Y-%m")
        if kind == "upper":
            return str(value).upper()
        if kind == "spaced":
            return draw(st.sampled_from(SPACES)) + str(value) + draw(st.sampled_from(SPACES))
        if kind == "pii":
            return draw(st.sampled_from(PII))
        if kind == "text":
            letters = "aZ9 -@.()+ß\u00a0\x1cİ" if column != "BirthMonth" else "aZ -@.()+ß"
            return draw(st.text(st.sampled_from(letters), max_size=12)) or None
        return value

    frame = pd.DataFrame(
        {column: [cell(i, column) for i in range(n)] for column in COLUMNS}, dtype=object
    )
    return frame, values


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches())
def test_gate_failures_equal_the_per_row_oracle(batch: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    frame, values = batch
    n = len(frame)
    rows = RowValues(values, KEPT, [frozenset()] * n, KeyIndex.of([]))
    result = validate_output(frame, expected_columns=COLUMNS, columns=RULES, rows=rows)
    assert set(result.failures) == oracle(frame, values)
    assert len(result.failures) == len(set(result.failures))


def _words(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and value != value):
        return []
    return [w for w in re.split(r"[\W_]+", str(value).casefold()) if w]


def _oracle_keys(row: pd.Series, guardian: bool = True) -> set[str]:
    keys: set[str] = set()
    people = [(row["first_name"], row["middle_name"], row["last_name"])]
    if guardian:
        people.append((row["guardian_first_name"], None, row["guardian_last_name"]))
    for first, middle, last in people:
        f, m, s = _words(first), _words(middle), _words(last)
        if f and s:
            keys |= {"n:" + " ".join(f + s), "n:" + " ".join(s + f)}
            if m:
                keys.add("n:" + " ".join(f + m + s))
    for value in (row["child_local_id"], row["state_student_id"]):
        if isinstance(value, str) and len(value.strip()) >= 4:
            keys.add("i:" + value.strip().casefold())
    return keys


@settings(max_examples=60, deadline=None)
@given(batch=batches(), local=st.sampled_from(["C{}", "c-00{}", "{}"]))
def test_identity_keys_equal_the_per_row_oracle(
    batch: tuple[pd.DataFrame, pd.DataFrame], local: str
) -> None:
    _, values = batch
    extract = values.assign(
        program_code="P1", child_local_id=[local.format(i) for i in range(len(values))]
    )
    for column in IDENTITY_COLUMNS:
        if column not in extract.columns:
            extract[column] = None
    identities = Identities([extract])
    keys = [("P1", local.format(i)) for i in range(len(values))]
    rows, unknown = identities.rows([*keys, ("P1", "nobody")], frozenset())
    assert unknown == 1
    for i in range(len(values)):
        assert {k for k in rows.own_keys[i] if isinstance(k, str)} == _oracle_keys(extract.iloc[i])
    assert not any(isinstance(k, str) for k in rows.own_keys[len(values)])
    children = set().union(*(_oracle_keys(extract.iloc[i], False) for i in range(len(values))))
    for key in children:
        assert key in rows.batch.find(f"see {key[2:]}.")
    assert not rows.batch.find("see nobody here, id zz99999.")
