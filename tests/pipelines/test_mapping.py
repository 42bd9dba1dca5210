"""Rendering permitted rows into state file specs: only permitted columns, never a placeholder."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Boolean, Date, Integer, MetaData, String

from pipelines.mapping import RenderError, RenderReason, render, staging_table, typed_rows
from schemas.filespec import FileSpec, load_spec
from tests.pipelines.batches import ENROLLMENT_FIELDS, IDENTITY_FIELDS, permitted_frame

IDENTITY = load_spec("hs_child_identity")
ENROLLMENT = load_spec("hs_enrollment")
AGGREGATE = load_spec("hs_program_aggregate")
ALL_FIELDS = sorted(set(IDENTITY_FIELDS) | set(ENROLLMENT_FIELDS))


def without(*fields: str) -> list[str]:
    return [f for f in ALL_FIELDS if f not in fields]


def test_when_everything_permitted_then_identity_rows_are_written_as_the_state_wants() -> None:
    frame = permitted_frame(3)
    result = render(IDENTITY, frame, ALL_FIELDS)
    assert result.unrenderable.empty
    assert list(result.frame.columns) == list(IDENTITY.column_names)
    assert result.frame.to_dict("records") == [
        {
            "ProgramID": "VT-HS-01",
            "LocalChildID": "C0001",
            "SASID": None,
            "LegalFirstName": "Kid0",
            "LegalMiddleName": "M",
            "LegalLastName": "Family0",
            "BirthDate": "01/01/2021",
            "Sex": "F",
        },
        {
            "ProgramID": "VT-HS-01",
            "LocalChildID": "C0002",
            "SASID": "1000001",
            "LegalFirstName": "Kid1",
            "LegalMiddleName": None,
            "LegalLastName": "Family1",
            "BirthDate": "02/02/2021",
            "Sex": "M",
        },
        {
            "ProgramID": "VT-HS-01",
            "LocalChildID": "C0003",
            "SASID": "1000002",
            "LegalFirstName": "Kid2",
            "LegalMiddleName": "M",
            "LegalLastName": "Family2",
            "BirthDate": "03/03/2021",
            "Sex": "X",
        },
    ]
    assert result.child_keys == (
        ("VT-HS-01", "C0001"),
        ("VT-HS-01", "C0002"),
        ("VT-HS-01", "C0003"),
    )
    artifact = result.artifact()
    assert artifact.name == "hs_child_identity.csv"
    assert artifact.key_columns == ("ProgramID", "LocalChildID")
    assert artifact.csv_bytes().decode().splitlines()[1] == (
        "VT-HS-01,C0001,,Kid0,M,Family0,01/01/2021,F"
    )


def test_enrollment_flags_codes_and_counts() -> None:
    result = render(ENROLLMENT, permitted_frame(2), ALL_FIELDS)
    row = result.frame.iloc[1].to_dict()
    assert row["ProgramType"] == "HS"
    assert row["ProgramOption"] == "CB"
    assert row["DLL"] == "Y" and row["IEP"] == "N"
    assert row["DaysScheduled"] == "120" and row["DaysPresent"] == "101"
    assert row["ExitDate"] is None and row["ExitReason"] is None


@pytest.mark.parametrize(
    ("field", "column"),
    [("state_student_id", "SASID"), ("middle_name", "LegalMiddleName")],
    ids=["state_id", "middle_name"],
)
def test_when_optional_field_not_permitted_then_column_empty_and_value_never_leaks(
    field: str, column: str
) -> None:
    frame = permitted_frame(4)
    frame[field] = [f"Distinct{field}{i}" for i in range(4)]
    result = render(IDENTITY, frame, without(field))
    assert result.unrenderable.empty
    assert result.frame[column].isna().all()
    text = result.artifact().csv_bytes().decode()
    assert f"Distinct{field}" not in text


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (IDENTITY, "first_name"),
        (IDENTITY, "birth_date"),
        (IDENTITY, "sex"),
        (ENROLLMENT, "entry_date"),
        (ENROLLMENT, "program_type"),
    ],
    ids=["first_name", "birth_date", "sex", "entry_date", "program_type"],
)
def test_when_required_field_not_permitted_then_every_child_unrenderable(
    spec: FileSpec, field: str
) -> None:
    frame = permitted_frame(3)
    result = render(spec, frame, without(field))
    assert result.frame.empty
    assert list(result.frame.columns) == list(spec.column_names)
    assert result.child_keys == ()
    problems = result.unrenderable
    assert set(problems["reason"]) == {RenderReason.REQUIRED_FIELD_NOT_PERMITTED.value}
    assert set(problems["field"]) == {field}
    assert sorted(problems["child_local_id"]) == ["C0001", "C0002", "C0003"]


def test_when_a_required_value_is_missing_then_only_that_child_is_unrenderable() -> None:
    frame = permitted_frame(3)
    frame.loc[1, "last_name"] = None
    frame.loc[2, "birth_date"] = pd.NaT
    result = render(IDENTITY, frame, ALL_FIELDS)
    assert list(result.frame["LocalChildID"]) == ["C0001"]
    assert result.child_keys == (("VT-HS-01", "C0001"),)
    problems = result.unrenderable.sort_values("child_local_id").to_dict("records")
    assert problems == [
        {
            "program_code": "VT-HS-01",
            "child_local_id": "C0002",
            "reason": "REQUIRED_VALUE_MISSING",
            "field": "last_name",
            "column": "LegalLastName",
        },
        {
            "program_code": "VT-HS-01",
            "child_local_id": "C0003",
            "reason": "REQUIRED_VALUE_MISSING",
            "field": "birth_date",
            "column": "BirthDate",
        },
    ]


def test_when_a_value_is_too_long_then_that_child_is_unrenderable_not_truncated() -> None:
    frame = permitted_frame(2)
    frame.loc[0, "first_name"] = "A" * 76
    result = render(IDENTITY, frame, ALL_FIELDS)
    assert list(result.frame["LocalChildID"]) == ["C0002"]
    assert list(result.unrenderable["reason"]) == ["VALUE_TOO_LONG"]
    assert "A" * 76 not in result.artifact().csv_bytes().decode()


@pytest.mark.parametrize(
    ("field", "value", "column", "rule"),
    [
        ("sex", "femme", "Sex", "codes"),
        ("birth_date", "1st of May", "BirthDate", "date"),
        ("days_present", "many", "DaysPresent", "integer"),
        ("homeless", "maybe", "Homeless", "boolean"),
    ],
    ids=["unknown_code", "not_a_date", "not_a_number", "not_a_flag"],
)
def test_when_value_breaks_a_rule_then_error_names_column_and_rule_not_value(
    field: str, value: str, column: str, rule: str
) -> None:
    frame = permitted_frame(2)
    frame[field] = frame[field].astype(object)
    frame.loc[1, field] = value
    spec = IDENTITY if column in IDENTITY.column_names else ENROLLMENT
    with pytest.raises(RenderError) as caught:
        render(spec, frame, ALL_FIELDS)
    message = str(caught.value)
    assert f"column {column}" in message and f"(rule {rule})" in message
    assert value not in message


def test_a_date_cut_to_the_month_is_written_as_month_and_year_only() -> None:
    """The ``month`` transform's ``YYYY-MM`` in a date column (uvm-crc-study's entry and exit
    dates in hs_enrollment): the column's pattern without the day, no made-up day."""
    frame = permitted_frame(2)
    frame["entry_date"] = ["2025-09", "2024-12"]
    frame["exit_date"] = [None, "2026-06"]
    result = render(ENROLLMENT, frame, ALL_FIELDS)
    assert list(result.frame["EntryDate"]) == ["09/2025", "12/2024"]
    assert list(result.frame["ExitDate"]) == [None, "06/2026"]
    assert result.unrenderable.empty


@pytest.mark.parametrize("value", ["2025-13", "2025-00", "25-09", "2025-9"])
def test_a_month_that_is_no_month_is_still_not_a_date(value: str) -> None:
    frame = permitted_frame(2)
    frame["entry_date"] = frame["entry_date"].astype(object)
    frame.loc[1, "entry_date"] = value
    with pytest.raises(RenderError, match=r"column EntryDate.*rule date") as caught:
        render(ENROLLMENT, frame, ALL_FIELDS)
    assert value not in str(caught.value)


def test_when_no_child_keys_given_or_in_frame_then_refused() -> None:
    frame = permitted_frame(2).drop(columns=["child_local_id"])
    with pytest.raises(RenderError, match="child keys"):
        render(IDENTITY, frame, without("child_local_id"))


def test_when_a_child_key_is_null_then_refused() -> None:
    frame = permitted_frame(2)
    frame.loc[1, "child_local_id"] = None
    with pytest.raises(RenderError, match="rule child_keys"):
        render(IDENTITY, frame, ALL_FIELDS)


def test_child_keys_may_be_given_when_the_id_is_pseudonymized() -> None:
    frame = permitted_frame(2)
    frame["child_local_id"] = ["k1-AAAA", "k1-BBBB"]
    keys = [("VT-HS-01", "C0001"), ("VT-HS-01", "C0002")]
    result = render(IDENTITY, frame, ALL_FIELDS, child_keys=keys)
    assert list(result.frame["LocalChildID"]) == ["k1-AAAA", "k1-BBBB"]
    assert result.child_keys == tuple(keys)


def aggregate_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "program_code": ["NM-AIAN-07"] * 3,
            "dimension": ["sex"] * 3,
            "category": ["female", "male", "Total"],
            "count": [14, None, 25],
        }
    )


@pytest.mark.parametrize("marker", ["", "*"], ids=["empty", "star"])
def test_when_aggregate_cell_suppressed_then_marker_written(tmp_path: Path, marker: str) -> None:
    spec = AGGREGATE.model_copy(update={"suppressed_marker": marker})
    frame = aggregate_frame()
    result = render(spec, frame, list(frame.columns))
    assert result.unrenderable.empty and result.child_keys == ()
    assert list(result.frame["ChildCount"]) == ["14", marker, "25"]
    lines = result.artifact().csv_bytes().decode().splitlines()
    assert lines[0] == "ProgramID,Dimension,Category,ChildCount"
    assert lines[2] == f"NM-AIAN-07,sex,male,{marker}"
    assert [row["ChildCount"] for row in typed_rows(spec, result.frame)] == [14, None, 25]


def test_typed_rows_read_back_what_was_rendered() -> None:
    frame = permitted_frame(3)
    rows = typed_rows(ENROLLMENT, render(ENROLLMENT, frame, ALL_FIELDS).frame)
    assert [r["EntryDate"] for r in rows] == [dt.date(2025, 9, 2)] * 3
    assert [r["ExitDate"] for r in rows] == [dt.date(2026, 6, 12), None, None]
    assert [r["DLL"] for r in rows] == [False, True, False]
    assert [r["DaysPresent"] for r in rows] == [100, 101, 102]
    assert [r["Race"] for r in rows] == ["WH", "BL", "AS"]


def test_staging_table_is_typed_from_the_spec() -> None:
    table = staging_table(ENROLLMENT, MetaData())
    assert table.name == "hs_enrollment"
    assert [c.name for c in table.primary_key.columns] == ["ProgramID", "LocalChildID"]
    assert isinstance(table.c.EntryDate.type, Date)
    assert isinstance(table.c.DaysPresent.type, Integer)
    assert isinstance(table.c.DLL.type, Boolean)
    assert isinstance(table.c.Race.type, String) and table.c.Race.type.length == 2
    assert table.c.ExitDate.nullable and not table.c.EntryDate.nullable


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    permitted=st.sets(st.sampled_from(ALL_FIELDS)),
    missing=st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from(IDENTITY_FIELDS[2:])), max_size=4
    ),
)
def test_property_no_value_of_an_unpermitted_field_leaves_and_no_child_is_lost(
    permitted: set[str], missing: list[tuple[int, str]]
) -> None:
    frame = permitted_frame(6).astype(object)
    frame["first_name"] = [f"Secret{i}" for i in range(6)]
    for row, field in missing:
        frame.loc[row, field] = None
    result = render(IDENTITY, frame, sorted(permitted))
    if "first_name" not in permitted:
        assert "Secret" not in result.artifact().csv_bytes().decode()
    for column in IDENTITY.columns:
        if column.source not in permitted:
            assert result.frame[column.name].isna().all()
    rendered = set(result.child_keys)
    problems = result.unrenderable
    withheld = set(zip(problems["program_code"], problems["child_local_id"], strict=True))
    assert rendered.isdisjoint(withheld)
    assert rendered | withheld == {("VT-HS-01", f"C{i + 1:04d}") for i in range(6)}
