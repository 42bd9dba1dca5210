"""State file specs: a target layout declared as data (``schemas/formats/*.yaml``).

A spec names the file, its key columns and its columns in order. Each column says where its
values come from (``source``: a catalog field of ``privacy/fields.py`` or a transformed output
column such as ``age_months``), its type and how it is written:

- ``string``: text, at most ``max_length`` characters;
- ``date``: written with ``format`` (a ``strftime`` pattern, default ``%Y-%m-%d``); a date an
  agreement cuts to the month (the ``month`` transform's ``YYYY-MM``) is written with the same
  pattern without its day (``%m/%d/%Y`` -> ``%m/%Y``, :attr:`ColumnSpec.month_format`), never
  as a made-up full date;
- ``integer``: whole numbers; ``suppressible`` ones (aggregate counts) may be null, written as
  the spec's ``suppressed_marker``;
- ``boolean``: written as ``format`` ``"Y/N"`` (default), ``"1/0"``, ``"TRUE/FALSE"``...;
- ``code``: a canonical code (``schemas/codes.py``) mapped to the state's code by ``codes``;
  with ``code_set`` (a code set of ``schemas/codes.py``) every canonical code must be mapped.

An aggregate spec declares its ``breakdowns``: each dimension's full domain of categories
(every category is published, zeros included, so a reader cannot tell from the listing which
categories occur).

**Spreadsheet formulas.** State staff open CSV files in spreadsheets, which run a cell that
begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a formula
(``=HYPERLINK(...)``). ``formula_guard`` says what a spec does with a text (``string``) value
that begins so: ``quote`` (the default, OWASP's rule) writes it with a single quote in front,
which a spreadsheet shows as text; ``none`` writes it as it is (a state that loads the file
only into a database and wants raw values). Dates, numbers, flags and codes never begin so.

A state's own layout is a new YAML file, not new code. :func:`load_spec` raises
:class:`FileSpecError` naming the file, the line and the key.
"""

from __future__ import annotations

import functools
import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from schemas import codes as code_sets

FORMATS_DIR = Path(__file__).parent / "formats"
"""Where the specs shipped with the project live."""

_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
"""Leading characters a spreadsheet reads as the start of a formula (OWASP CSV injection)."""


class FormulaGuard(StrEnum):
    """What a spec does with a text value that a spreadsheet would run as a formula."""

    QUOTE = "quote"
    NONE = "none"


def looks_like_formula(text: str) -> bool:
    """Whether a spreadsheet would read ``text`` as a formula (its first character)."""
    return text.startswith(FORMULA_TRIGGERS)


def neutralise_formula(text: str) -> str:
    """``text`` with a single quote in front when it looks like a formula (OWASP's rule)."""
    return "'" + text if looks_like_formula(text) else text


class FileSpecError(ValueError):
    """A spec file that cannot be read or does not validate; names file, line and key."""


class ColumnType(StrEnum):
    """How a column's values are written."""

    STRING = "string"
    DATE = "date"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    CODE = "code"


class ColumnSpec(BaseModel):
    """One output column of a state file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_IDENTIFIER.pattern)
    source: str = Field(min_length=1)
    type: ColumnType
    required: bool = False
    max_length: PositiveInt | None = None
    format: str | None = None
    codes: dict[str, str] | None = None
    code_set: str | None = None
    suppressible: bool = False
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> ColumnSpec:
        kind = self.type
        if self.format is not None and kind not in (ColumnType.DATE, ColumnType.BOOLEAN):
            raise ValueError("format applies to date and boolean columns only")
        if kind is ColumnType.DATE and self.format is not None and "%" not in self.format:
            raise ValueError("a date format is a strftime pattern such as %m/%d/%Y")
        if kind is ColumnType.DATE and len(_DAY.findall(self.date_format)) > 1:
            raise ValueError("a date format names the day once (%d)")
        if kind is ColumnType.BOOLEAN and self.format is not None:
            tokens = self.format.split("/")
            if len(tokens) != 2 or not all(tokens) or tokens[0] == tokens[1]:
                raise ValueError("a boolean format is two different words, true/false: Y/N")
        if kind is ColumnType.CODE and not self.codes:
            raise ValueError("a code column needs codes (canonical code: state code)")
        if kind is not ColumnType.CODE and (self.codes is not None or self.code_set):
            raise ValueError("codes and code_set apply to code columns only")
        if self.suppressible and kind is not ColumnType.INTEGER:
            raise ValueError("only integer columns may be suppressible")
        if self.code_set is not None:
            _check_code_set(self.code_set, self.codes or {})
        if self.max_length is not None:
            too_long = [k for k, v in (self.codes or {}).items() if len(v) > self.max_length]
            if too_long:
                raise ValueError(f"state codes longer than max_length for {', '.join(too_long)}")
        return self

    @property
    def date_format(self) -> str:
        """The ``strftime`` pattern of a date column."""
        return self.format or "%Y-%m-%d"

    @property
    def month_format(self) -> str:
        """The pattern of a date cut to the month: :attr:`date_format` without its day and
        the separator beside it (``%Y-%m-%d`` -> ``%Y-%m``, ``%m/%d/%Y`` -> ``%m/%Y``)."""
        return month_pattern(self.date_format)

    @property
    def boolean_tokens(self) -> tuple[str, str]:
        """How true and false are written."""
        true, false = (self.format or "Y/N").split("/")
        return true, false


_DAY = re.compile(r"%-?d")


def month_pattern(date_format: str) -> str:
    """``date_format`` without its day directive (``%d``) and one separator next to it: the
    separator after the day when the day comes first or in the middle, else the one before."""
    match = _DAY.search(date_format)
    if match is None:
        return date_format
    before, after = date_format[: match.start()], date_format[match.end() :]
    if after and not after.startswith("%"):
        after = after[1:]
    elif not after and before and re.search(r"%-?\w$", before) is None:
        before = before[:-1]
    return before + after


def _check_code_set(name: str, mapping: dict[str, str]) -> None:
    enum = getattr(code_sets, name, None)
    if not (isinstance(enum, type) and issubclass(enum, StrEnum)):
        raise ValueError(f"code_set {name} is not a code set of schemas/codes.py")
    known = {member.value for member in enum}
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise ValueError(f"codes not in code set {name}: {', '.join(unknown)}")
    missing = sorted(known - set(mapping))
    if missing:
        raise ValueError(f"codes of code set {name} left unmapped: {', '.join(missing)}")


class Breakdown(BaseModel):
    """A dimension of an aggregate file and its declared domain: the codes of a code set, a
    list of categories, or the bands of the agreement's ``bucket`` transform; plus
    ``unknown`` (a missing value) unless ``unknown: false``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code_set: str | None = None
    categories: tuple[str, ...] = ()
    bands: Literal["agreement"] | None = None
    unknown: bool = True

    @model_validator(mode="after")
    def _check(self) -> Breakdown:
        given = [self.code_set is not None, bool(self.categories), self.bands is not None]
        if sum(given) != 1:
            raise ValueError("a breakdown has exactly one of code_set, categories or bands")
        if self.code_set is not None:
            enum = getattr(code_sets, self.code_set, None)
            if not (isinstance(enum, type) and issubclass(enum, StrEnum)):
                raise ValueError(f"code_set {self.code_set} is not a code set of schemas/codes.py")
        if len(set(self.categories)) != len(self.categories):
            raise ValueError("a breakdown lists a category twice")
        return self

    def domain(self, bands: list[str] | None = None) -> tuple[str, ...]:
        """Every category, in order; ``bands`` are the agreement's band labels."""
        if self.code_set is not None:
            values = [member.value for member in getattr(code_sets, self.code_set)]
        elif self.bands is not None:
            if bands is None:
                raise ValueError("this breakdown takes its bands from the agreement")
            values = list(bands)
        else:
            values = list(self.categories)
        return tuple(dict.fromkeys([*values, *(["unknown"] if self.unknown else [])]))


class FileSpec(BaseModel):
    """One state file layout: name, key columns and columns in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_IDENTIFIER.pattern)
    description: str = ""
    file_name: str = Field(pattern=_FILE_NAME.pattern)
    table: str | None = Field(default=None, pattern=_IDENTIFIER.pattern)
    level: Literal["record", "aggregate", "withdrawals"] = "record"
    key: tuple[str, ...] = Field(min_length=1)
    suppressed_marker: str = ""
    formula_guard: FormulaGuard = FormulaGuard.QUOTE
    columns: tuple[ColumnSpec, ...] = Field(min_length=1)
    breakdowns: dict[str, Breakdown] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> FileSpec:
        names = [column.name for column in self.columns]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"column names used twice: {', '.join(twice)}")
        by_name = {column.name: column for column in self.columns}
        unknown = [k for k in self.key if k not in by_name]
        if unknown:
            raise ValueError(f"key columns not among the columns: {', '.join(unknown)}")
        optional = [k for k in self.key if not by_name[k].required or by_name[k].suppressible]
        if optional:
            raise ValueError(f"key columns must be required: {', '.join(optional)}")
        if len(set(self.key)) != len(self.key):
            raise ValueError("a key column is named twice")
        if self.breakdowns and self.level != "aggregate":
            raise ValueError("breakdowns belong to aggregate specs")
        return self

    @property
    def table_name(self) -> str:
        """The staging-database table of this spec."""
        return self.table or self.name

    @property
    def column_names(self) -> tuple[str, ...]:
        """The output columns, in order."""
        return tuple(column.name for column in self.columns)

    def column(self, name: str) -> ColumnSpec:
        """The column called ``name``; ``KeyError`` for another."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)


def spec_path(name_or_path: str | Path, folder: Path = FORMATS_DIR) -> Path:
    """The file of a spec: a path as given, or ``<folder>/<name>.yaml`` for a bare name."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text or text.endswith((".yaml", ".yml")):
        return Path(name_or_path)
    return folder / f"{text}.yaml"


_FAST_LOADER = getattr(yaml, "CSafeLoader", None)  # PyYAML built with libyaml


def parse_yaml(text: str, path: Path, error: type[ValueError]) -> tuple[Any, yaml.Node | None]:
    """``text`` (read from ``path``) as data and as a node tree (for :func:`key_line`); a
    syntax error raises ``error`` naming the file and line, never the text."""
    if _FAST_LOADER is not None:
        try:  # libyaml: about a tenth of the CPU; the same data and nodes for a valid file
            return yaml.load(text, Loader=_FAST_LOADER), yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            pass  # the pure-Python parser's verdict and error line, as always
    try:
        return yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise error(f"{path}{line}: not valid YAML") from None


def load_spec(name_or_path: str | Path, folder: Path = FORMATS_DIR) -> FileSpec:
    """Read and validate a spec by name (``hs_enrollment``) or path.

    The spec's ``name`` defaults to the file stem and, when given, must equal it.
    """
    path = spec_path(name_or_path, folder)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
        raise FileSpecError(f"{path}: cannot read the spec file (known specs: {known})") from exc
    return _parsed_spec(path, text)


@functools.lru_cache(maxsize=256)
def _parsed_spec(path: Path, text: str) -> FileSpec:
    """The spec ``text`` (read from ``path``) validated; cached by path and text, since a night
    reads the same few layouts for every program (specs are frozen, a changed file is new
    text)."""
    data, root = parse_yaml(text, path, FileSpecError)
    if not isinstance(data, dict):
        raise FileSpecError(f"{path}:1: a spec is a mapping of keys (name, file_name, columns)")
    name = data.setdefault("name", path.stem)
    if name != path.stem:
        raise FileSpecError(f"{path}:{key_line(root, ('name',))}: name: must equal the file stem")
    try:
        return FileSpec.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{path}:{key_line(root, loc)}: {dotted_key(loc) or '(spec)'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
            for loc in [tuple(err["loc"])]
        ]
        raise FileSpecError("\n".join(problems)) from None


def load_specs(names: list[str] | tuple[str, ...], folder: Path = FORMATS_DIR) -> list[FileSpec]:
    """Several specs by name, in order."""
    return [load_spec(name, folder) for name in names]


def dotted_key(loc: tuple[Any, ...]) -> str:
    """A validation location as a key path: ``columns[3].type``."""
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts)


def key_line(node: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """The 1-based line of the deepest node of ``loc`` found in the YAML tree."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    child, line = value, key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line
