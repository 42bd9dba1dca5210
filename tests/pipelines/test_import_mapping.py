"""Mapping files are validated on load; parsers never echo a value; CIRCLE needs no code."""

from __future__ import annotations

import copy
import csv
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from pipelines.db import session_scope
from pipelines.imports import MappingError, import_file, load_mapping, mappings_dir
from pipelines.imports.errors import RuleViolation
from pipelines.imports.mapping import TARGETS, CodeSpec, DateSpec, TextSpec
from pipelines.imports.parsers import compile_field
from schemas import Child, Enrollment, Program, Site
from schemas.codes import Race
from tests.fixtures import CIRCLE_SAMPLE

ROOT = Path(__file__).resolve().parents[2]
GOLD = ROOT / "config" / "mappings" / "gold.yaml"


def test_every_shipped_mapping_loads() -> None:
    names = {load_mapping(path).name for path in sorted(mappings_dir().glob("*.yaml"))}
    assert {"gold", "circle"} <= names


def _edit(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        data = data[key]
    if value is _DELETE:
        del data[last]
    else:
        data[last] = value


_DELETE = object()

# id: (dotted key to edit, new value, key the error must name, words the message must have)
BROKEN = {
    "unknown_field": ("child.nickname", {"column": "Child F Name"}, "child.nickname", "Extra"),
    "code_outside_code_set": (
        "child.sex.values.Male",
        "mael",
        "child.sex",
        "'mael' is not a Sex code",
    ),
    "wrong_type": ("child.first_name.type", "date", "child.first_name", "does not fit"),
    "required_field_missing": ("child.birth_date", _DELETE, "child", "requires birth_date"),
    "too_long": ("child.first_name.max_length", 500, "child.first_name", "75 characters"),
    "bad_template": ("program.code", "{state}-{ProgramID", "program.code", "unbalanced"),
    "bad_pattern": ("site.code.pattern", "([", "site.code.pattern", "not a regular expression"),
    "unquoted_yes": ("child.iep.true_values", [True], "child.iep.true_values", "quote it"),
    "no_column_no_default": ("child.last_name", {"required": True}, "child.last_name", "column"),
    "unknown_encoding": ("encoding", "klingon-8", "encoding", "unknown encoding"),
}


@pytest.mark.parametrize(("key", "value", "named", "words"), BROKEN.values(), ids=BROKEN.keys())
def test_broken_mapping_is_refused_naming_file_line_and_key(
    tmp_path: Path, key: str, value: Any, named: str, words: str
) -> None:
    data = copy.deepcopy(yaml.safe_load(GOLD.read_text(encoding="utf-8")))
    _edit(data, key, value)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    [(line, problem_key, message)] = caught.value.problems
    assert problem_key == named and words in message
    assert line is not None and f"{path}:{line}: {named}: " in str(caught.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("name: [unclosed", "yaml", id="not_yaml"),
        pytest.param("- a list", "a YAML mapping", id="not_a_mapping"),
    ],
)
def test_unreadable_mapping_is_refused(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MappingError, match=words):
        load_mapping(path)


MARK = "Qz7"
TEXT = (TARGETS["child"]["first_name"], TextSpec(column="x", pattern="^[A-Z]+$"))
DATE = (TARGETS["child"]["birth_date"], DateSpec(type="date", column="x"))
CODE = (TARGETS["child"]["race"], CodeSpec(type="code", column="x", values={"White": "white"}))


@pytest.mark.parametrize(("target", "spec"), [TEXT, DATE, CODE], ids=["text", "date", "code"])
@given(text=st.text(max_size=120))
def test_a_rule_violation_never_repeats_the_value(target, spec, text: str) -> None:  # type: ignore[no-untyped-def]
    value = MARK + text
    try:
        compile_field(target, spec)([value])
    except RuleViolation as violation:
        assert MARK not in str(violation)


@pytest.mark.parametrize(
    ("raws", "expected"),
    [
        pytest.param(["White", ""], Race.WHITE, id="one"),
        pytest.param(["  white ", "WHITE"], Race.WHITE, id="same_twice_any_case"),
        pytest.param(["White", "Asian"], Race.TWO_OR_MORE, id="several"),
        pytest.param(["", " "], Race.UNKNOWN, id="none_gives_default"),
        pytest.param(["Unknown"], Race.UNKNOWN, id="null_code_gives_default"),
    ],
)
def test_race_over_two_columns(raws: list[str], expected: Race) -> None:
    spec = load_mapping(GOLD).child.race
    assert compile_field(TARGETS["child"]["race"], spec)(raws) is expected


def _count(engine: Engine, model: type) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_circle_export_with_header_on_line_3_needs_only_its_mapping(engine: Engine) -> None:
    with CIRCLE_SAMPLE.open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.DictReader(file.readlines()[2:]))
    report = import_file(engine, "circle", CIRCLE_SAMPLE, today=dt.date(2026, 11, 27))
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (7, 7, 0)
    assert _count(engine, Child) == len({r["Local_Student ID"] for r in rows})
    assert _count(engine, Program) == len({r["District_Number"] for r in rows})
    assert _count(engine, Site) == len({r["School_Number"] for r in rows})
    with session_scope(engine) as session:
        child = session.scalars(select(Child).where(Child.local_id == "5000000")).one()
        assert (child.race, child.disability, child.state_student_id) == (
            Race.AMERICAN_INDIAN_ALASKA_NATIVE,
            True,
            "605004",
        )
        exits = session.scalars(select(Enrollment.exit_date)).all()
        codes = set(session.scalars(select(Program.code)))
    assert sorted(d for d in exits if d) == [dt.date(2023, 12, 6)] + [dt.date(2024, 5, 24)] * 4
    assert "TX-CIRCLE-11111" in codes


def test_circle_bad_row_is_named_by_its_physical_line(engine: Engine, tmp_path: Path) -> None:
    text = CIRCLE_SAMPLE.read_text(encoding="utf-8")
    path = tmp_path / "circle.csv"
    path.write_text(text.replace("1/1/2018", "13/1/2018", 1), encoding="utf-8")
    report = import_file(engine, "circle", path, today=dt.date(2026, 11, 27))
    [error] = report.errors
    assert (error.line, error.field, error.column) == (4, "child.birth_date", "Student_DOB")
    assert report.rows_loaded == 6
