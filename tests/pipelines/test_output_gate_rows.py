"""The output gate is precise: a parent's own words and codes that look like names travel;
another child's data, a name or full date the agreement does not send, a stray column stop.

Each case builds the real frames (real agreement, plan and layout) of six children, changes
what the case says, and runs the gate as the submission does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pandas as pd
import pytest

from tests.pipelines.gate_world import (
    ENROLLMENT,
    IDENTITY,
    RECORDS,
    STATEMENTS,
    StubPreparation,
    children,
    gate,
    preparation,
    record_frames,
    statement_frame,
)


def person(first: str, middle: str | None, last: str, born: dt.date, guardian: str) -> dict:
    g_first, g_last = guardian.split(" ")
    return {
        "first_name": first,
        "middle_name": middle,
        "last_name": last,
        "birth_date": born,
        "guardian_first_name": g_first,
        "guardian_last_name": g_last,
    }


PEOPLE = [
    person("Liam", "James", "Smith", dt.date(2022, 3, 14), "Maria Smith"),
    person("Emma", None, "Hill", dt.date(2021, 11, 2), "Pat Hill"),
    person("Noah", None, "Hill", dt.date(2022, 6, 30), "Pat Hill"),
    person("Olivia", "Grace", "Garcia", dt.date(2021, 12, 24), "Ana Garcia"),
    person("Ava", None, "Brooks", dt.date(2022, 1, 5), "Lee Brooks"),
    person("Mason", None, "Lee", dt.date(2021, 9, 9), "Kim Lee"),
]
VT = ["hs_child_identity", "hs_enrollment", "hs_parent_statements"]
Frames = dict[str, tuple[pd.DataFrame, list[tuple[str, str]]]]
Change = Callable[[StubPreparation, Frames], None]


def statement(child: int, text: str, field: str = "race") -> Change:
    def change(p: StubPreparation, frames: Frames) -> None:
        frames[STATEMENTS] = statement_frame(p, [(child, field, text)])

    return change


def cell(name: str, row: int, column: str, value: object) -> Change:
    def change(p: StubPreparation, frames: Frames) -> None:
        frame = frames[name][0]
        frame[column] = frame[column].astype(object)
        frame.at[row, column] = value

    return change


def source(column: str, value: object) -> Change:
    """Change the extract (every child) before the frames are made."""

    def change(p: StubPreparation, frames: Frames) -> None:
        p.extract[column] = value
        frames.update(record_frames(p))

    return change


def stray(name: str, column: str) -> Change:
    def change(p: StubPreparation, frames: Frames) -> None:
        frame = frames[name][0]
        frame[column] = "x"

    return change


CASES: dict[str, tuple[str, list[str], Change, set[str]]] = {
    # What travels.
    "statement_with_the_parents_phone_and_email_travels": (
        "vt-aoe-ecids", VT,
        statement(0, "Please call me at (802) 555-0142 or write maria.smith@example.org: "
                     "the race on file is wrong."),
        set(),
    ),
    "statement_naming_the_child_and_the_parent_travels": (
        "vt-aoe-ecids", VT,
        statement(0, "Liam James Smith was born 03/15/2022, not as recorded. SMITH, Liam's "
                     "mother, Maria Smith, ssn 123-45-6789 on request", "birth_date"),
        set(),
    ),
    "statement_with_a_first_name_shared_with_another_child_travels": (
        "vt-aoe-ecids", VT,
        statement(1, "Ask Olivia at the front desk; call 8025550100."),
        set(),
    ),
    "site_code_equal_to_the_childs_own_last_name_passes": (
        "vt-aoe-ecids", VT, source("site_code", "Hill"), set(),
    ),
    "site_code_equal_to_another_childs_last_name_passes": (
        "vt-aoe-ecids", VT, source("site_code", "Garcia"), set(),
    ),
    "guardian_last_name_equal_to_the_childs_in_name_column_passes": (
        "vt-aoe-ecids", VT, cell(IDENTITY, 1, "LegalLastName", "HILL"), set(),
    ),
    # What stops.
    "statement_naming_another_child_stops": (
        "vt-aoe-ecids", VT,
        statement(0, "The incident report is about Olivia Garcia, not my son."),
        {"other_child"},
    ),
    "statement_naming_another_child_last_name_first_stops": (
        "vt-aoe-ecids", VT, statement(0, "See GARCIA, Olivia (same class)."), {"other_child"},
    ),
    "statement_naming_a_sibling_stops": (
        "vt-aoe-ecids", VT, statement(1, "Her brother Noah Hill has the IEP, not Emma."),
        {"other_child"},
    ),
    "statement_quoting_another_childs_id_stops": (
        "vt-aoe-ecids", VT, statement(0, "The record of child L00003 was merged into ours."),
        {"other_child"},
    ),
    "another_childs_first_name_in_the_name_column_stops": (
        "vt-aoe-ecids", VT, cell(IDENTITY, 0, "LegalFirstName", "Olivia"), {"value_mismatch"},
    ),
    "guardian_name_in_the_middle_name_column_stops": (
        "vt-aoe-ecids", VT, cell(IDENTITY, 0, "LegalMiddleName", "Maria"),
        {"value_mismatch", "child_value"},
    ),
    "phone_in_a_site_code_still_stops": (
        "vt-aoe-ecids", VT, cell(ENROLLMENT, 2, "SiteID", "802-555-0142"), {"phone_like"},
    ),
    "stray_column_stops": (
        "vt-aoe-ecids", VT, stray(IDENTITY, "GuardianPhone"), {"columns_match"},
    ),
    "middle_name_the_agreement_does_not_send_stops": (
        "mo-dese-consent", ["hs_child_identity"], cell(IDENTITY, 0, "LegalMiddleName", "James"),
        {"not_permitted"},
    ),
    "own_name_in_a_pseudonymized_column_stops": (
        "uvm-crc-study", [], cell(RECORDS, 0, "child_local_id", "Liam"),
        {"pseudonym_format", "child_value"},
    ),
    "own_real_id_in_a_pseudonymized_column_stops": (
        "uvm-crc-study", [], cell(RECORDS, 4, "state_student_id", "9000004"),
        {"pseudonym_format", "child_value"},
    ),
    "full_birth_date_where_the_month_is_sent_stops": (
        "uvm-crc-study", [], cell(RECORDS, 0, "birth_date", "2022-03-14"), {"full_value"},
    ),
    "month_cut_entry_and_exit_dates_in_the_enrollment_file_pass": (
        "uvm-crc-study", ["hs_enrollment"], lambda p, frames: None, set(),
    ),
    "full_birth_date_written_us_style_where_the_month_is_sent_stops": (
        "uvm-crc-study", [], cell(RECORDS, 3, "birth_date", "12/24/2021"), {"full_value"},
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("agreement", "formats", "change", "rules"), list(CASES.values()), ids=list(CASES)
)
def test_gate_stops_exactly_on_leaks(
    agreement: str, formats: list[str], change: Change, rules: set[str]
) -> None:
    p = preparation(agreement, children(PEOPLE), formats)
    frames = record_frames(p)
    if "hs_parent_statements" in formats:
        frames[STATEMENTS] = statement_frame(p, [])
    change(p, frames)
    failures = gate(p, frames)
    assert {f.split(" ")[0].rstrip(":") for f in failures} == rules, failures


def test_failures_name_rule_column_and_count_never_a_value() -> None:
    p = preparation("vt-aoe-ecids", children(PEOPLE), VT)
    frames = record_frames(p)
    frames[STATEMENTS] = statement_frame(
        p, [(0, "race", "About Olivia Garcia."), (1, "race", "Fine."), (2, "race", "Emma Hill")]
    )
    failures = gate(p, frames)
    assert failures == ["other_child on column Statement: 2 of 3 rows"]
    assert not any(name in " ".join(failures) for name in ("Olivia", "Garcia", "Emma", "Hill"))


def test_a_row_naming_no_extracted_child_stops() -> None:
    p = preparation("vt-aoe-ecids", children(PEOPLE), VT)
    frames = record_frames(p)
    frame, keys = frames[IDENTITY]
    frames[IDENTITY] = (frame, [*keys[:-1], ("VT-HS-01", "L99999")])
    failures = gate(p, frames)
    assert "row_child on frame hs_child_identity.csv: 1 of 6 rows name no child" in failures


STUDY_SPEC = """\
file_name: study.csv
key: [ProgramID, LocalChildID]
columns:
  - {name: ProgramID, source: program_code, type: string, required: true}
  - {name: LocalChildID, source: child_local_id, type: string, required: true}
  - {name: BirthMonth, source: birth_date, type: date, format: "%m/%d/%Y", required: true}
  - {name: EntryMonth, source: entry_date, type: date, format: "%m/%d/%Y", required: true}
"""


@pytest.mark.parametrize(
    ("column", "source", "rules"),
    [
        (None, None, set()),
        ("BirthMonth", "birth_date", {"full_value"}),
        ("EntryMonth", "entry_date", {"full_value"}),
    ],
    ids=["month_and_year_pass", "full_birth_date_stops", "full_entry_date_stops"],
)
def test_dates_cut_to_the_month_render_in_a_file_and_a_full_one_stops(
    tmp_path, column: str | None, source: str | None, rules: set[str]
) -> None:
    """Every date the agreement cuts to the month (the birth date, the entry date) stops the
    batch when a row carries its child's full date instead."""
    path = tmp_path / "study.yaml"
    path.write_text(STUDY_SPEC, encoding="utf-8")
    p = preparation("uvm-crc-study", children(PEOPLE), [str(path)])
    frames = record_frames(p)
    frame = frames["study.csv"][0]
    assert frame["BirthMonth"][0] == "03/2022"  # Liam, born 2022-03-14
    entry = pd.Timestamp(p.extract["entry_date"].iloc[0])
    assert frame["EntryMonth"][0] == entry.strftime("%m/%Y")
    if column is not None:
        full = pd.Timestamp(p.extract[source].iloc[0]).strftime("%m/%d/%Y")
        frame[column] = [full, *frame[column][1:]]
    failures = gate(p, frames)
    assert {f.split(" ")[0].rstrip(":") for f in failures} == rules, failures
