"""State file specs: the shipped ones load; broken ones fail naming file, line and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from privacy.fields import CATALOG
from schemas.filespec import FORMATS_DIR, ColumnType, FileSpecError, load_spec

SHIPPED = sorted(p.stem for p in FORMATS_DIR.glob("*.yaml"))
TRANSFORMED_SOURCES = {
    "age_months",
    "age_band",
    "dimension",
    "category",
    "count",
    "statement_field",
    "statement",
    "statement_filed_date",
    "withdrawal_reason",
    "run_date",
}

GOOD = """\
file_name: tiny.csv
key: [ProgramID]
columns:
  - name: ProgramID
    source: program_code
    type: string
    required: true
  - name: Sex
    source: sex
    type: code
    code_set: Sex
    codes: {female: F, male: M, not_selected: X}
"""


def write_spec(folder: Path, text: str, name: str = "tiny") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_the_three_state_specs_ship() -> None:
    assert {"hs_child_identity", "hs_enrollment", "hs_program_aggregate"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_when_shipped_spec_loaded_then_sources_are_catalog_fields(name: str) -> None:
    spec = load_spec(name)
    assert spec.name == name
    for column in spec.columns:
        assert column.source in CATALOG or column.source in TRANSFORMED_SOURCES, column.name


def test_when_loaded_by_path_then_same_as_by_name(tmp_path: Path) -> None:
    path = write_spec(tmp_path, GOOD)
    assert load_spec(path) == load_spec("tiny", tmp_path)
    spec = load_spec(str(path))
    assert spec.column("Sex").type is ColumnType.CODE
    assert spec.column("Sex").codes == {"female": "F", "male": "M", "not_selected": "X"}


def test_identity_spec_writes_dates_and_sex_as_the_state_wants() -> None:
    spec = load_spec("hs_child_identity")
    assert spec.key == ("ProgramID", "LocalChildID")
    assert spec.column("BirthDate").date_format == "%m/%d/%Y"
    assert spec.column("Sex").codes == {"female": "F", "male": "M", "not_selected": "X"}
    assert not spec.column("SASID").required


BROKEN = [
    pytest.param(
        GOOD.replace("file_name: tiny.csv\n", ""),
        ":1: file_name: Field required",
        id="missing_file_name",
    ),
    pytest.param(
        GOOD.replace("type: string", "type: text"),
        ":6: columns[0].type: Input should be",
        id="unknown_type",
    ),
    pytest.param(
        GOOD.replace("    required: true\n", "    requird: true\n"),
        ":7: columns[0].requird: Extra inputs are not permitted",
        id="typo_in_key",
    ),
    pytest.param(
        GOOD.replace("    codes: {female: F, male: M, not_selected: X}\n", ""),
        ":8: columns[1]: Value error, a code column needs codes",
        id="code_without_codes",
    ),
    pytest.param(
        GOOD.replace(", not_selected: X", ""),
        ":8: columns[1]: Value error, codes of code set Sex left unmapped: not_selected",
        id="incomplete_code_set",
    ),
    pytest.param(
        GOOD.replace("female: F", "femle: F"),
        "codes not in code set Sex: femle",
        id="code_not_in_code_set",
    ),
    pytest.param(
        GOOD.replace("code_set: Sex", "code_set: Gender"),
        "code_set Gender is not a code set",
        id="unknown_code_set",
    ),
    pytest.param(
        GOOD.replace("key: [ProgramID]", "key: [ChildID]"),
        ":1: (spec): Value error, key columns not among the columns: ChildID",
        id="key_not_a_column",
    ),
    pytest.param(
        GOOD.replace("    required: true\n", ""),
        "key columns must be required: ProgramID",
        id="optional_key_column",
    ),
    pytest.param(
        GOOD.replace("name: Sex", "name: ProgramID"),
        "column names used twice: ProgramID",
        id="duplicate_column",
    ),
    pytest.param(
        GOOD.replace("type: string", "type: string\n    format: Y/N"),
        ":4: columns[0]: Value error, format applies to date and boolean",
        id="format_on_string",
    ),
    pytest.param(
        GOOD.replace("columns:", "name: other\ncolumns:"),
        ":3: name: must equal the file stem",
        id="name_not_stem",
    ),
    pytest.param(GOOD + "  - {name: [x\n", ":14: not valid YAML", id="bad_yaml"),
    pytest.param("- just\n- a list\n", ":1: a spec is a mapping", id="not_a_mapping"),
]


@pytest.mark.parametrize(("text", "expected"), BROKEN)
def test_when_spec_broken_then_error_names_file_line_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write_spec(tmp_path, text)
    with pytest.raises(FileSpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert expected in message, message


def test_when_spec_missing_then_error_names_file_and_known_specs(tmp_path: Path) -> None:
    write_spec(tmp_path, GOOD)
    with pytest.raises(FileSpecError, match=r"nope\.yaml: cannot read the spec file.*tiny"):
        load_spec("nope", tmp_path)


@pytest.mark.parametrize(
    ("column", "problem"),
    [
        ("{name: B, source: homeless, type: boolean, format: Y}", "two different words"),
        ("{name: B, source: homeless, type: boolean, format: Y/Y}", "two different words"),
        ("{name: D, source: birth_date, type: date, format: mm/dd/yyyy}", "strftime pattern"),
        ("{name: N, source: days_present, type: string, suppressible: true}", "suppressible"),
        ("{name: S, source: sex, type: code, max_length: 1, codes: {female: FEM}}", "max_length"),
    ],
    ids=[
        "boolean_one_word",
        "boolean_same_words",
        "date_not_strftime",
        "suppressible_string",
        "code_longer_than_max",
    ],
)
def test_when_column_rule_broken_then_refused(tmp_path: Path, column: str, problem: str) -> None:
    path = write_spec(tmp_path, GOOD + f"  - {column}\n")
    with pytest.raises(FileSpecError, match=problem):
        load_spec(path)


@pytest.mark.parametrize(
    ("date_format", "month_format"),
    [
        ("%Y-%m-%d", "%Y-%m"),
        ("%m/%d/%Y", "%m/%Y"),
        ("%d.%m.%Y", "%m.%Y"),
        ("%Y%m%d", "%Y%m"),
        ("%m%d%Y", "%m%Y"),
        ("%-m/%-d/%Y", "%-m/%Y"),
        ("%Y/%m/%-d", "%Y/%m"),
        ("%b %Y", "%b %Y"),
    ],
)
def test_a_month_cut_date_is_written_with_the_date_pattern_without_its_day(
    tmp_path: Path, date_format: str, month_format: str
) -> None:
    column = f"{{name: D, source: birth_date, type: date, format: '{date_format}'}}"
    spec = load_spec(write_spec(tmp_path, GOOD + f"  - {column}\n"))
    assert spec.columns[-1].month_format == month_format


def test_a_date_pattern_naming_the_day_twice_is_refused(tmp_path: Path) -> None:
    column = "{name: D, source: birth_date, type: date, format: '%d/%m/%Y (%d)'}"
    with pytest.raises(FileSpecError, match="names the day once"):
        load_spec(write_spec(tmp_path, GOOD + f"  - {column}\n"))


def _tree(node: object) -> object:
    """A node tree as plain data: kind, tag, value and start line of every node."""
    import yaml

    if node is None:
        return None
    assert isinstance(node, yaml.Node)
    if isinstance(node, yaml.MappingNode):
        value: object = [(_tree(k), _tree(v)) for k, v in node.value]
    elif isinstance(node, yaml.SequenceNode):
        value = [_tree(item) for item in node.value]
    else:
        value = node.value
    return (type(node).__name__, node.tag, value, node.start_mark.line, node.start_mark.column)


SHIPPED_YAML = sorted(
    path
    for folder in (FORMATS_DIR, FORMATS_DIR.parents[1] / "config")
    for path in folder.rglob("*.yaml")
)


@pytest.mark.parametrize("path", SHIPPED_YAML, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_parse_yaml_gives_pure_python_data_and_lines_without_the_pure_python_parser(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every shipped YAML file parses to the data and node tree (lines included) PyYAML's
    pure-Python safe loader gives, without running that loader for a valid file."""
    import yaml

    from schemas.filespec import parse_yaml

    text = path.read_text(encoding="utf-8")
    expected_data, expected_root = yaml.safe_load(text), yaml.compose(text)

    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("the pure-Python parser ran for a valid file")

    monkeypatch.setattr(yaml, "safe_load", refuse)
    data, root = parse_yaml(text, path, FileSpecError)
    assert data == expected_data
    assert _tree(root) == _tree(expected_root)


@pytest.mark.parametrize(
    ("text", "line"),
    [("type: [local\n", 2), ("a: 1\n b: 2\n", 2), ("a: 1\na: [\n", 3), ("\tx: 1\n", 1)],
)
def test_parse_yaml_error_names_the_pure_python_parsers_line(text: str, line: int) -> None:
    from schemas.filespec import parse_yaml

    with pytest.raises(FileSpecError) as caught:
        parse_yaml(text, Path("spec.yaml"), FileSpecError)
    assert str(caught.value) == f"spec.yaml:{line}: not valid YAML"
