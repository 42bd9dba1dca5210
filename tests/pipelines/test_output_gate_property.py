"""Property: the output gate stops a batch exactly when an oracle, written from the rules and
not from the gate's code, finds a leak.

The oracle's rules, from 45 CFR 1303.24(c) and the agreement's field list:

- A parent's statement travels as written, except when it names another child of the batch:
  that child's full name (first and last name as consecutive words, either order, or with the
  middle name between; case and punctuation between words ignored) or id (local or state id
  of 4 or more characters, not glued to other letters, digits, ``_`` or ``-``). A name that is
  also the statement's own child's, or the child's primary guardian's, is the family's own.
- A name column the agreement keeps carries that row's child's own name (or nothing).
- A column the agreement pseudonymizes carries only pseudonyms.
- A birth date the agreement cuts to the month is carried only as the child's own month
  (``YYYY-MM``) or not at all: never a full date, nor another child's month.
- Codes (site codes) carry anything that is not a phone, SSN or e-mail.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.pipelines.gate_world import (
    IDENTITY,
    RECORDS,
    STATEMENTS,
    children,
    gate,
    preparation,
    record_frames,
    statement_frame,
)

FIRST = ["Liam", "Emma", "Lee", "Ava", "Noah"]
LAST = ["Smith", "Hill", "Lee", "Garcia-Ruiz"]
DATES = [dt.date(2022, 3, 14), dt.date(2021, 11, 2), dt.date(2022, 3, 1)]
VT = ["hs_child_identity", "hs_enrollment", "hs_parent_statements"]
SLOW = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _folded_words(text: str) -> list[str]:
    return [w for w in re.split(r"[\W_]+", text.casefold()) if w]


def _name_forms(first: Any, middle: Any, last: Any) -> list[list[str]]:
    if not first or not last:
        return []
    f, s = _folded_words(first), _folded_words(last)
    forms = [f + s, s + f]
    if middle:
        forms.append(f + _folded_words(middle) + s)
    return forms


def _says(text: str, words: list[str]) -> bool:
    pattern = r"(?<![^\W_])" + r"[\W_]+".join(map(re.escape, words)) + r"(?![^\W_])"
    return re.search(pattern, text.casefold()) is not None


def _ids(person: pd.Series) -> set[str]:
    return {
        str(v).strip().casefold()
        for v in (person["child_local_id"], person["state_student_id"])
        if isinstance(v, str) and len(v.strip()) >= 4
    }


def statement_leaks(text: str, child: int, extract: pd.DataFrame) -> bool:
    """Oracle: does ``text`` (a statement on ``child``'s record) name another child?"""
    me = extract.iloc[child]
    mine = _name_forms(me["first_name"], me["middle_name"], me["last_name"])
    mine += _name_forms(me["guardian_first_name"], None, me["guardian_last_name"])
    for other in range(len(extract)):
        if other == child:
            continue
        them = extract.iloc[other]
        for words in _name_forms(them["first_name"], them["middle_name"], them["last_name"]):
            if words not in mine and _says(text, words):
                return True
        for value in _ids(them) - _ids(me):
            if re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", text.casefold()):
                return True
    return False


def _same(a: Any, b: Any) -> bool:
    def norm(v: Any) -> str:
        return "" if v is None or v != v else " ".join(str(v).split()).casefold()

    return norm(a) == norm(b)


@st.composite
def people(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(3, 6))
    out = []
    for _ in range(n):
        last = draw(st.sampled_from(LAST))
        out.append(
            {
                "first_name": draw(st.sampled_from(FIRST)),
                "middle_name": draw(st.none() | st.sampled_from(FIRST)),
                "last_name": last,
                "birth_date": draw(st.sampled_from(DATES)),
                "guardian_first_name": draw(st.sampled_from([*FIRST, "Maria", "Pat"])),
                "guardian_last_name": draw(st.sampled_from([last, *LAST])),
            }
        )
    return out


def _name_text(draw: st.DrawFn, person: pd.Series) -> str:
    first, middle, last = person["first_name"], person["middle_name"], person["last_name"]
    forms = [f"{first} {last}", f"{str(last).upper()}, {first}", f"{str(first).lower()}-{last}"]
    if middle:
        forms.append(f"{first} {middle} {last}")
    return draw(st.sampled_from(forms))


def _fragment(draw: st.DrawFn, child: int, extract: pd.DataFrame) -> str:
    someone = extract.iloc[draw(st.integers(0, len(extract) - 1))]
    me = extract.iloc[child]
    kind = draw(
        st.sampled_from(
            ["filler", "phone", "email", "number", "name", "first", "id", "guardian", "mine"]
        )
    )
    if kind == "phone":
        return "Call me at (802) 555-0142 or 802.555.0199."
    if kind == "email":
        return "Write to pat.parent@example.org."
    if kind == "number":
        return "Filed 3 times since 2024-01-15, case 12."
    if kind == "name":
        return _name_text(draw, someone)
    if kind == "first":
        return f"Ask {someone['first_name']} at the desk."
    if kind == "id":
        return f"record {draw(st.sampled_from(['child_local_id', 'state_student_id']))}: " + str(
            someone[draw(st.sampled_from(["child_local_id", "state_student_id"]))]
        )
    if kind == "guardian":
        return f"Signed, {me['guardian_first_name']} {me['guardian_last_name']}"
    if kind == "mine":
        return _name_text(draw, me)
    return "The record on file is wrong."


@SLOW
@given(data=st.data(), who=people())
def test_record_files_stop_iff_oracle_finds_a_leak(data: st.DataObject, who: list) -> None:
    extract = children(who)
    extract["site_code"] = data.draw(st.sampled_from(["S01", *LAST, *FIRST]))
    p = preparation("vt-aoe-ecids", extract, VT)
    frames = record_frames(p)
    leak = False
    statements = []
    for _ in range(data.draw(st.integers(0, 3))):
        child = data.draw(st.integers(0, len(extract) - 1))
        parts = [_fragment(data.draw, child, extract) for _ in range(data.draw(st.integers(1, 3)))]
        text = " ".join(parts)
        statements.append((child, "race", text))
        leak |= statement_leaks(text, child, extract)
    frames[STATEMENTS] = statement_frame(p, statements)
    identity = frames[IDENTITY][0]
    columns = {"LegalFirstName": "first_name", "LegalMiddleName": "middle_name",
               "LegalLastName": "last_name"}  # fmt: skip
    for _ in range(data.draw(st.integers(0, 2))):
        row = data.draw(st.integers(0, len(extract) - 1))
        column = data.draw(st.sampled_from(sorted(columns)))
        value = data.draw(st.sampled_from([*FIRST, *LAST, "Maria"]))
        identity.at[row, column] = value
    for row in range(len(extract)):
        for column, source in columns.items():
            cell = identity.at[row, column]
            if cell is not None and not _same(cell, extract.iloc[row][source]):
                leak = True
    failures = gate(p, frames)
    event(f"leak: {leak}")
    assert bool(failures) is leak, (failures, statements)


@SLOW
@given(data=st.data(), who=people())
def test_study_records_stop_iff_oracle_finds_a_leak(data: st.DataObject, who: list) -> None:
    extract = children(who)
    p = preparation("uvm-crc-study", extract, [])
    frames = record_frames(p)
    records = frames[RECORDS][0]
    original = records.copy()
    leak = False
    for _ in range(data.draw(st.integers(0, 3))):
        row = data.draw(st.integers(0, len(extract) - 1))
        other = extract.iloc[data.draw(st.integers(0, len(extract) - 1))]
        me = extract.iloc[row]
        born: dt.date = me["birth_date"]
        column, value = data.draw(
            st.sampled_from(
                [
                    ("birth_date", born.isoformat()),
                    ("birth_date", born.strftime("%m/%d/%Y")),
                    ("birth_date", f"{born.month}/{born.day}/{born.year}"),
                    ("birth_date", other["birth_date"].strftime("%Y-%m")),
                    ("birth_date", other["birth_date"].strftime("%d.%m.%Y")),
                    ("birth_date", born.strftime("%Y-%m")),
                    ("child_local_id", me["child_local_id"]),
                    ("child_local_id", other["first_name"]),
                    ("child_local_id", original.at[(row + 1) % len(extract), "child_local_id"]),
                ]
            )
        )
        records[column] = records[column].astype(object)
        records.at[row, column] = value
    for row in range(len(extract)):
        born = extract.iloc[row]["birth_date"]
        if records.at[row, "birth_date"] not in (None, born.strftime("%Y-%m")):
            leak = True
        if not re.fullmatch(r"[A-Za-z0-9_]+-[A-Z2-7]{16}", str(records.at[row, "child_local_id"])):
            leak = True
    failures = gate(p, frames)
    event(f"leak: {leak}")
    assert bool(failures) is leak, failures
