"""Import of Teaching Strategies GOLD exports: the real sample, malformed rows, reruns, CLI."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.db import make_engine, session_scope
from pipelines.imports import ImportReport, SourceError, StoreError, import_file
from schemas import Base, Child, Enrollment, Program, QuarantinedRow, Site
from schemas.codes import Ethnicity, ProgramType, Race, Sex
from tests.fixtures import GOLD_SAMPLE

MALFORMED = Path(__file__).resolve().parents[1] / "data" / "gold_malformed.csv"
TODAY = dt.date(2026, 11, 27)

# id: (physical line, canonical field, source column, rule, the bad value that must not leak)
MALFORMED_CASES = {
    "missing_child_id": (3, "child.local_id", "ChildID", "required", None),
    "impossible_date": (4, "child.birth_date", "BirthDate", "invalid_date", "2/30/2019"),
    "unknown_code": (7, "child.sex", "Gender", "unknown_code", "Robot"),
    "huge_field": (8, "child.last_name", "Child L Name", "max_length", "X" * 10_000),
    "sql_looking_id": (10, "child.local_id", "ChildID", "pattern", "DROP TABLE"),
    "birth_after_entry": (
        11,
        "child.birth_date",
        "BirthDate, First Day In Program",
        "birth_after_entry",
        "10/1/2022",
    ),
    "future_birth": (12, "child.birth_date", "BirthDate", "future_date", "1/1/2099"),
}
GOOD_IN_MALFORMED = {"700001", "700002", "700003"}
SQL_NAME = "Robert'); DROP TABLE children;--"


def count(engine: Engine, model: type[Base]) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def children(engine: Engine) -> dict[str, Child]:
    with session_scope(engine) as session:
        return {c.local_id: c for c in session.scalars(select(Child))}


def sample_rows() -> list[dict[str, str]]:
    with GOLD_SAMPLE.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.DictReader(file))


def write_gold(path: Path, changes: list[dict[str, str]], *, drop: str | None = None) -> Path:
    """A GOLD export with the sample's header and one row per ``changes`` (edits of row 1)."""
    with GOLD_SAMPLE.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        header, template = next(reader), next(reader)
    rows = []
    for change in changes:
        row = dict(zip(header, template, strict=True)) | change
        rows.append([row[name] for name in header])
    if drop:
        index = header.index(drop)
        header = header[:index] + header[index + 1 :]
        rows = [row[:index] + row[index + 1 :] for row in rows]
    with path.open("w", encoding="utf-8-sig", newline="") as file:
        csv.writer(file, lineterminator="\r\n").writerows([header, *rows])
    return path


def run(engine: Engine, path: Path, **options: object) -> ImportReport:
    return import_file(engine, "gold", path, today=TODAY, **options)  # type: ignore[arg-type]


def test_sample_loads_every_child_program_and_site_the_file_holds(engine: Engine) -> None:
    rows = sample_rows()
    report = run(engine, GOLD_SAMPLE)
    assert (report.rows_read, report.rows_new, report.rows_quarantined) == (len(rows), len(rows), 0)
    assert count(engine, Child) == len({r["ChildID"] for r in rows})
    assert count(engine, Program) == len({r["ProgramID"] for r in rows})
    assert count(engine, Site) == len({r["SiteID"] for r in rows})
    assert count(engine, Enrollment) == len(rows)
    with session_scope(engine) as session:
        program = session.scalars(select(Program)).one()
    assert (program.code, program.name, program.state) == ("EA-GOLD-10000", "District Name", "EA")
    assert program.program_type is ProgramType.HEAD_START


# local id: (sex, race, ethnicity, birth date, home language), as the sample file has them
SAMPLE_VALUES = {
    "605000": (Sex.MALE, Race.WHITE, Ethnicity.HISPANIC, dt.date(2015, 1, 1), None),
    "605001": (Sex.FEMALE, Race.WHITE, Ethnicity.NOT_HISPANIC, dt.date(2015, 2, 2), None),
    "605002": (Sex.FEMALE, Race.WHITE, Ethnicity.HISPANIC, dt.date(2015, 3, 3), "spa"),
    "605003": (Sex.FEMALE, Race.BLACK, Ethnicity.NOT_HISPANIC, dt.date(2015, 4, 4), None),
}


def test_sample_values_are_mapped_to_our_codes(engine: Engine, subtests: pytest.Subtests) -> None:
    run(engine, GOLD_SAMPLE)
    loaded = children(engine)
    for local_id, expected in SAMPLE_VALUES.items():
        with subtests.test(local_id):
            child = loaded[local_id]
            got = (child.sex, child.race, child.ethnicity, child.birth_date, child.home_language)
            assert got == expected
            assert (child.iep, child.ifsp, child.disability) == (False, False, False)
            assert child.source == "import:gold"


def test_rerun_of_the_sample_adds_nothing(engine: Engine) -> None:
    run(engine, GOLD_SAMPLE)
    again = run(engine, GOLD_SAMPLE)
    assert (again.rows_unchanged, again.rows_new, again.rows_updated) == (5, 0, 0)
    assert (again.children_created, again.enrollments_created, again.programs_created) == (0, 0, 0)
    assert [count(engine, m) for m in (Program, Site, Child, Enrollment)] == [1, 1, 5, 5]


def test_changed_row_on_rerun_updates_the_child_in_place(engine: Engine, tmp_path: Path) -> None:
    run(engine, write_gold(tmp_path / "a.csv", [{"ChildID": "42"}]))
    report = run(engine, write_gold(tmp_path / "b.csv", [{"ChildID": "42", "Child L Name": "New"}]))
    assert (report.rows_updated, report.children_updated, report.children_created) == (1, 1, 0)
    assert children(engine)["42"].last_name == "New"
    assert count(engine, Enrollment) == 1


def test_each_malformed_row_is_quarantined_with_its_rule_and_no_value(
    engine: Engine, subtests: pytest.Subtests
) -> None:
    report = run(engine, MALFORMED)
    with session_scope(engine) as session:
        stored = {row.line: row for row in session.scalars(select(QuarantinedRow))}
    assert sorted(stored) == sorted(case[0] for case in MALFORMED_CASES.values())
    for case, (line, field, column, rule, bad_value) in MALFORMED_CASES.items():
        with subtests.test(case):
            [error] = [e for e in report.errors if e.line == line]
            assert (error.field, error.column, str(error.rule)) == (field, column, rule)
            assert str(error).startswith(f"gold_malformed.csv:{line}: {field} ({column}): {rule}")
            row = stored[line]
            assert (row.rule, row.field, row.source) == (rule, field, "gold_malformed.csv")
            assert len(row.raw) == 349 and len(row.row_digest) == 64
            if bad_value is not None:
                assert bad_value not in str(error) and bad_value not in row.message
                assert any(bad_value in value for value in row.raw.values())


def test_good_rows_of_a_malformed_file_load_and_sql_text_is_kept_as_text(engine: Engine) -> None:
    report = run(engine, MALFORMED)
    assert (report.rows_read, report.rows_loaded, report.rows_quarantined) == (10, 3, 7)
    assert set(children(engine)) == GOOD_IN_MALFORMED
    assert children(engine)["700003"].last_name == SQL_NAME
    assert count(engine, QuarantinedRow) == 7


def test_rerun_of_a_malformed_file_quarantines_nothing_twice(engine: Engine) -> None:
    run(engine, MALFORMED)
    again = run(engine, MALFORMED)
    assert (again.quarantine_added, again.quarantine_known, again.rows_unchanged) == (0, 7, 3)
    assert count(engine, QuarantinedRow) == 7
    with session_scope(engine) as session:
        session.execute(update(QuarantinedRow).values(resolved_at=dt.datetime.now(dt.UTC)))
    assert run(engine, MALFORMED).quarantine_added == 7


@pytest.mark.parametrize("batch_size", [1, 3])
def test_batch_size_does_not_change_the_outcome(engine: Engine, batch_size: int) -> None:
    report = run(engine, MALFORMED, batch_size=batch_size)
    assert (report.rows_new, report.rows_quarantined, report.sites_created) == (3, 7, 1)
    assert count(engine, Child) == 3


# id: (edit of a good row, canonical field, rule, the bad value that must not leak)
GENERATED_CASES = {
    "nul": ({"Child F Name": "Ann\x00e"}, "child.first_name", "control_character", "Ann"),
    "flag": ({"IFSP": "maybe"}, "child.ifsp", "invalid_flag", "maybe"),
    "no_program_id": ({"ProgramID": ""}, "program.code", "required", None),
    "lowercase_state": ({"State": "vt"}, "program.state", "pattern", None),
    "long_state": ({"State": "Vermont"}, "program.state", "max_length", "Vermont"),
    "long_site": ({"SiteID": "x" * 41}, "site.code", "max_length", "x" * 41),
    "two_sexes": ({"Gender": "Male Female"}, "child.sex", "unknown_code", "Male Female"),
    # last: its quoted line break makes it two physical lines
    "newline": ({"Child F Name": "Ann\nMarie"}, "child.first_name", "control_character", "Marie"),
}


def test_each_generated_bad_row_is_quarantined(
    engine: Engine, tmp_path: Path, subtests: pytest.Subtests
) -> None:
    changes = [
        {"ChildID": str(i), **change} for i, (change, *_) in enumerate(GENERATED_CASES.values())
    ]
    path = write_gold(tmp_path / "gen.csv", [{"ChildID": "good"}, *changes])
    report = run(engine, path)
    assert (report.rows_loaded, report.rows_quarantined) == (1, len(GENERATED_CASES))
    assert count(engine, QuarantinedRow) == len(GENERATED_CASES)
    for line, (case, (_change, field, rule, bad_value)) in enumerate(GENERATED_CASES.items(), 3):
        with subtests.test(case):
            errors = [e for e in report.errors if e.line == line]
            assert field in {e.field for e in errors}
            assert {str(e.rule) for e in errors} == {rule}
            assert bad_value is None or all(bad_value not in str(e) for e in errors)


def test_undecodable_byte_quarantines_only_its_row(engine: Engine, tmp_path: Path) -> None:
    path = write_gold(
        tmp_path / "gen.csv", [{"ChildID": "1"}, {"ChildID": "2", "Child L Name": "Zo@"}]
    )
    path.write_bytes(path.read_bytes().replace(b"Zo@", b"Zo\xff"))
    report = run(engine, path)
    assert report.rows_loaded == 1 and [str(e.rule) for e in report.errors] == ["encoding"]
    with session_scope(engine) as session:
        raw = session.scalars(select(QuarantinedRow.raw)).one()
    assert raw["Child L Name"] == "Zo\\xff"


def test_several_races_become_two_or_more(engine: Engine, tmp_path: Path) -> None:
    run(engine, write_gold(tmp_path / "gen.csv", [{"ChildID": "1", "Race 2": "Asian"}]))
    assert children(engine)["1"].race is Race.TWO_OR_MORE


def test_command_line_state_and_type_make_the_program(engine: Engine) -> None:
    run(engine, GOLD_SAMPLE, state="VT", program_type="aian")
    with session_scope(engine) as session:
        program = session.scalars(select(Program)).one()
    assert (program.code, program.state, program.program_type, program.is_aian) == (
        "VT-GOLD-10000",
        "VT",
        ProgramType.AIAN,
        True,
    )


def test_row_with_wrong_field_count_is_quarantined(engine: Engine, tmp_path: Path) -> None:
    path = write_gold(tmp_path / "gen.csv", [{"ChildID": "1"}])
    with path.open("a", encoding="utf-8", newline="") as file:
        file.write("\r\n1,2,3\r\n")
    report = run(engine, path)
    assert [(e.line, str(e.rule)) for e in report.errors] == [(4, "field_count")]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda p: write_gold(p, [{}], drop="BirthDate"),
            "lacks 1 column(s)",
            id="missing_column",
        ),
        pytest.param(lambda p: p, "cannot read the file", id="no_file"),
        pytest.param(lambda p: (p.write_bytes(b""), p)[1], "no header on line 1", id="empty_file"),
    ],
)
def test_whole_file_failure_is_a_clear_error(tmp_path: Path, make, message: str) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'any.db'}")  # fails before any write
    Base.metadata.create_all(engine)
    path = make(tmp_path / "export.csv")
    with pytest.raises(SourceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(engine, path)
    assert count(engine, Child) == 0
    engine.dispose()


@pytest.fixture
def empty_url(db_url: str) -> str:
    """``db_url`` with no tables, so the command's own migration creates them."""
    engine = make_engine(db_url)
    Base.metadata.drop_all(engine)
    engine.dispose()
    return db_url


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["import", *args], catch_exceptions=False)


def test_cli_imports_the_sample_and_a_rerun_adds_nothing(empty_url: str) -> None:
    first = invoke("gold", str(GOLD_SAMPLE), "--database-url", empty_url)
    assert first.exit_code == 0, first.output
    assert "loaded" in first.output and "children" in first.output
    second = invoke("run", "gold", str(GOLD_SAMPLE), "--database-url", empty_url)
    assert second.exit_code == 0
    engine = make_engine(empty_url)
    assert count(engine, Child) == 5
    engine.dispose()


def test_cli_reports_bad_rows_by_line_field_and_rule_without_values(
    empty_url: str, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    result = invoke(
        "gold",
        str(MALFORMED),
        "--state",
        "vt",
        "--report",
        str(report),
        "--database-url",
        empty_url,
    )
    assert result.exit_code == 0
    written = json.loads(report.read_text(encoding="utf-8"))
    assert (written["rows_loaded"], written["rows_quarantined"]) == (3, 7)
    assert written["quarantined_by_rule"]["invalid_date"] == 1
    assert "gold_malformed.csv:4: child.birth_date (BirthDate): invalid_date" in result.output
    assert "gold_malformed.csv:7: child.sex (Gender): unknown_code" in result.output
    for value in ("2/30/2019", "Robot", "DROP TABLE", "XXXXXXXXXX"):
        assert value not in result.output and value not in report.read_text(encoding="utf-8")


def test_cli_lists_the_shipped_mappings() -> None:
    result = invoke("mappings")
    assert result.exit_code == 0 and "gold" in result.output and "circle" in result.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        pytest.param(["gold", "missing.csv"], 1, "cannot read the file", id="no_file"),
        pytest.param(["run", "nosuchtool", "x.csv"], 2, "nosuchtool.yaml", id="no_mapping"),
        pytest.param(["gold", "SAMPLE", "--state", "Vermont"], 2, "two-letter", id="bad_state"),
    ],
)
def test_cli_whole_file_failures_exit_non_zero(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    args = [str(GOLD_SAMPLE) if a == "SAMPLE" else a for a in args]
    result = invoke(*args, "--database-url", f"sqlite:///{tmp_path / 'any.db'}")
    assert result.exit_code == code and message in result.output


def test_cli_exits_non_zero_when_every_row_is_quarantined(empty_url: str, tmp_path: Path) -> None:
    path = write_gold(tmp_path / "bad.csv", [{"ChildID": ""}, {"BirthDate": "2/30/2019"}])
    result = invoke("gold", str(path), "--database-url", empty_url)
    assert result.exit_code == 1 and "Nothing was loaded" in result.output


def test_database_refusal_names_lines_but_no_values(tmp_path: Path) -> None:
    database = tmp_path / "ro.db"
    writable = make_engine(f"sqlite:///{database}")
    Base.metadata.create_all(writable)
    writable.dispose()
    read_only = make_engine(f"sqlite:///file:{database}?mode=ro&uri=true")
    with pytest.raises(StoreError, match=r"lines 2-6 \(OperationalError\)") as caught:
        run(read_only, GOLD_SAMPLE)
    read_only.dispose()
    assert "Student" not in str(caught.value) and "2015" not in str(caught.value)
