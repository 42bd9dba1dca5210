"""The declared column mapping from a tool's CSV export to the canonical model.

A mapping file (``config/mappings/<tool>.yaml``) says where the header is and, for each
canonical field of ``program``, ``site``, ``child`` and ``enrollment``, which source column
feeds it and how to parse it (``text``, ``date``, ``code`` with a value map, ``flag``). The
field names, their code sets, lengths and which are required come from the SQLAlchemy models
in ``schemas.records``, so a mapping cannot name a field the model lacks, map a value to a code
outside the code set, or leave out a field the model requires. Adding a tool is a new file.

The program code is a template over source columns and the resolved ``{state}`` and
``{program_type}``; state and program type may come from a column, a default, or the command
line (which wins).
"""

from __future__ import annotations

import codecs
import datetime as dt
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, cast

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PositiveInt,
    Tag,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from sqlalchemy import Boolean, Date, Enum, FromClause, String, Table

from pipelines.imports.errors import MappingError
from schemas.records import Child, Enrollment, Program, Site

MAPPINGS_DIR_ENV = "DATASHARE_MAPPINGS_DIR"
TEMPLATE_VARIABLES = frozenset({"state", "program_type"})
OVERRIDABLE = frozenset({("program", "state"), ("program", "program_type")})
PLACEHOLDER = re.compile(r"\{([^{}]+)\}")

Kind = Literal["text", "date", "code", "flag"]


@dataclass(frozen=True, slots=True)
class Target:
    """A canonical field a mapping may feed, read from the model's column."""

    entity: str
    name: str
    kind: Kind
    length: int | None
    codes: type[StrEnum] | None
    required: bool
    nullable: bool

    @property
    def key(self) -> str:
        """``entity.name``, as errors and reports name the field."""
        return f"{self.entity}.{self.name}"


def _targets(entity: str, table: FromClause, skip: set[str]) -> dict[str, Target]:
    targets = {}
    # a declarative model's ``__table__`` is typed ``FromClause``; the records' are ``Table``s
    for column in cast(Table, table).columns:
        if column.name in skip:
            continue
        kind: Kind
        codes: type[StrEnum] | None = None
        if isinstance(column.type, Enum):
            kind, enum_class = "code", column.type.enum_class
            if enum_class is None or not issubclass(enum_class, StrEnum):  # pragma: no cover
                # every code column of the records model is a StrEnum (schemas.codes)
                raise TypeError(f"{entity}.{column.name}: a code column needs a StrEnum class")
            codes = enum_class
        elif isinstance(column.type, Date):
            kind = "date"
        elif isinstance(column.type, Boolean):
            kind = "flag"
        elif isinstance(column.type, String):
            kind = "text"
        else:  # pragma: no cover - the records model has no other column types to import
            continue
        length = getattr(column.type, "length", None) if kind == "text" else None
        required = not column.nullable and column.default is None
        targets[column.name] = Target(
            entity, column.name, kind, length, codes, required, bool(column.nullable)
        )
    return targets


TARGETS: dict[str, dict[str, Target]] = {
    "program": _targets("program", Program.__table__, {"id", "code"}),
    "site": _targets("site", Site.__table__, {"id", "program_id"}),
    "child": _targets("child", Child.__table__, {"id", "program_id", "source"}),
    "enrollment": _targets("enrollment", Enrollment.__table__, {"id", "child_id", "site_id"}),
}
ALLOWED_TYPES: dict[Kind, set[str]] = {
    "text": {"text", "code"},
    "date": {"date"},
    "code": {"code"},
    "flag": {"flag"},
}


def _no_yaml_booleans(value: Any) -> Any:
    """Tell the author when YAML turned an unquoted yes/no/on/off into a boolean."""
    items = value.items() if isinstance(value, dict) else value if isinstance(value, list) else []
    for item in items:
        for part in item if isinstance(item, tuple) else (item,):
            if isinstance(part, bool):
                raise ValueError(
                    "YAML read an unquoted yes/no/on/off/true/false as a boolean: quote it"
                )
    return value


StrList = Annotated[list[str], BeforeValidator(_no_yaml_booleans)]


class _Spec(BaseModel):
    """What every field spec has: the source column(s) and whether a value is required."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str | StrList | None = None
    required: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        """The source columns, in order (empty for a constant)."""
        if self.column is None:
            return ()
        return (self.column,) if isinstance(self.column, str) else tuple(self.column)


class TextSpec(_Spec):
    """Free text, stripped; checked for length, control characters and an optional pattern."""

    type: Literal["text"] = "text"
    max_length: PositiveInt | None = None
    pattern: str | None = None
    default: str | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"not a regular expression: {error}") from None
        return value


class DateSpec(_Spec):
    """A date in one of ``formats`` (``strptime`` codes, tried in order)."""

    type: Literal["date"]
    formats: Annotated[list[str], Field(min_length=1)] = ["%m/%d/%Y"]
    default: dt.date | None = None


class CodeSpec(_Spec):
    """A value of the tool's vocabulary mapped to our code (``null`` maps to no value).

    Matching ignores case and surrounding or repeated spaces. With several columns, distinct
    codes give ``multiple`` (e.g. ``two_or_more`` for race), or a ``conflicting_codes`` error.
    """

    type: Literal["code"]
    values: Annotated[dict[str, str | None], BeforeValidator(_no_yaml_booleans)] = {}
    multiple: str | None = None
    default: str | None = None


class FlagSpec(_Spec):
    """A yes/no value; with several columns, true when any is true."""

    type: Literal["flag"]
    true_values: StrList = ["Y", "Yes", "1", "True"]
    false_values: StrList = ["N", "No", "0", "False"]
    default: bool | None = False


def _spec_type(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("type", "text"))
    return str(getattr(value, "type", "text"))


FieldSpec = Annotated[
    Annotated[TextSpec, Tag("text")]
    | Annotated[DateSpec, Tag("date")]
    | Annotated[CodeSpec, Tag("code")]
    | Annotated[FlagSpec, Tag("flag")],
    Discriminator(_spec_type),
]


def normalize(value: str) -> str:
    """The form tool vocabulary is matched in: case-folded, spaces collapsed."""
    return " ".join(value.split()).casefold()


def _check_code(target: Target, value: str, where: str) -> None:
    if target.codes is not None and value not in {c.value for c in target.codes}:
        allowed = ", ".join(c.value for c in target.codes)
        raise ValueError(f"{where}: {value!r} is not a {target.codes.__name__} code ({allowed})")
    if target.length is not None and len(value) > target.length:
        raise ValueError(f"{where}: longer than the field's {target.length} characters")


def _checker(target: Target):  # type: ignore[no-untyped-def]
    def check(spec: _Spec | None) -> _Spec | None:
        if spec is None:
            return None
        kind = getattr(spec, "type", "text")
        if kind not in ALLOWED_TYPES[target.kind]:
            allowed = " or ".join(sorted(ALLOWED_TYPES[target.kind]))
            raise ValueError(f"type {kind!r} does not fit this {target.kind} field: use {allowed}")
        if not spec.columns and getattr(spec, "default", None) is None:
            raise ValueError("give a column or a default")
        if not target.nullable and not spec.required and getattr(spec, "default", None) is None:
            raise ValueError("this field cannot be empty: set required: true or a default")
        if isinstance(spec, TextSpec):
            if target.length and spec.max_length and spec.max_length > target.length:
                raise ValueError(f"max_length exceeds the field's {target.length} characters")
            if spec.default is not None and target.length and len(spec.default) > target.length:
                raise ValueError(f"default: longer than the field's {target.length} characters")
        if isinstance(spec, CodeSpec):
            for source, code in spec.values.items():
                if code is not None:
                    _check_code(target, code, f"values.{source}")
            for name in ("multiple", "default"):
                if (code := getattr(spec, name)) is not None:
                    _check_code(target, code, name)
            if len({normalize(v) for v in spec.values}) != len(spec.values):
                raise ValueError("values: two entries differ only in case or spacing")
        return spec

    return check


class _Section(BaseModel):
    """Base of the per-entity sections: unknown keys are errors; required fields are checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    entity: ClassVar[str]

    @model_validator(mode="after")
    def _required_present(self) -> _Section:
        missing = [
            name
            for name, target in TARGETS[self.entity].items()
            if target.required
            and getattr(self, name) is None
            and (self.entity, name) not in OVERRIDABLE
        ]
        if missing:
            raise ValueError(
                f"the canonical model requires {', '.join(missing)}: map a column or give a default"
            )
        return self

    def specs(self) -> Iterator[tuple[Target, _Spec]]:
        """The mapped fields with their canonical targets."""
        for name, target in TARGETS[self.entity].items():
            spec = getattr(self, name)
            if spec is not None:
                yield target, spec


def _template(value: str) -> str:
    rest = PLACEHOLDER.sub("", value)
    if "{" in rest or "}" in rest:
        raise ValueError("unbalanced braces: write placeholders as {Column Name}")
    return value


def _section(entity: str, extra: dict[str, Any] | None = None) -> type[_Section]:
    fields: dict[str, Any] = {
        name: (Annotated[FieldSpec | None, AfterValidator(_checker(target))], None)
        for name, target in TARGETS[entity].items()
    }
    fields.update(extra or {})
    model = create_model(f"{entity.title()}Section", __base__=_Section, **fields)
    model.entity = entity
    return model


if TYPE_CHECKING:  # the models are built at import; type checkers see the field read by name

    class ProgramSection(_Section):
        code: str

else:
    ProgramSection = _section(
        "program", {"code": (Annotated[str, Field(min_length=1), AfterValidator(_template)], ...)}
    )
SiteSection = _section("site")
ChildSection = _section("child")
EnrollmentSection = _section("enrollment")


class Mapping(BaseModel):
    """One tool's export layout, mapped to the canonical model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,40}$")]
    description: str = ""
    encoding: str = "utf-8-sig"
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","
    header_line: PositiveInt = 1
    program: ProgramSection
    site: SiteSection  # type: ignore[valid-type]
    child: ChildSection  # type: ignore[valid-type]
    enrollment: EnrollmentSection  # type: ignore[valid-type]

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value

    def sections(self) -> Iterator[_Section]:
        """The four entity sections, in load order."""
        yield from (self.program, self.site, self.child, self.enrollment)

    def template_names(self) -> list[str]:
        """The placeholders of the program code template, in order."""
        return PLACEHOLDER.findall(self.program.code)

    def columns(self) -> set[str]:
        """Every source column the mapping reads (the header must have them all)."""
        names = {n for n in self.template_names() if n not in TEMPLATE_VARIABLES}
        for section in self.sections():
            for _target, spec in section.specs():
                names.update(spec.columns)
        return names


def mappings_dir() -> Path:
    """Where named mappings live: ``$DATASHARE_MAPPINGS_DIR``, else ``./config/mappings``,
    else the ``config/mappings`` folder of this source tree."""
    if env := os.environ.get(MAPPINGS_DIR_ENV):
        return Path(env)
    local = Path("config/mappings")
    if local.is_dir():
        return local
    return Path(__file__).resolve().parents[2] / "config" / "mappings"


def find_mapping(name_or_path: str | Path, folder: Path | None = None) -> Path:
    """A mapping file: ``name_or_path`` itself if it is a path, else ``<folder>/<name>.yaml``."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text or "/" in text:
        return Path(text)
    return (folder or mappings_dir()) / f"{text}.yaml"


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping file; :class:`MappingError` names file, line and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise MappingError(str(path), [(None, "file", error.strerror or str(error))]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise MappingError(
            str(path), [(line, "yaml", str(getattr(error, "problem", error)))]
        ) from None
    if not isinstance(data, dict):
        raise MappingError(str(path), [(1, "file", "a mapping file is a YAML mapping of keys")])
    try:
        return Mapping.model_validate(data)
    except ValidationError as error:
        root = yaml.compose(text)
        problems = [_problem(root, item) for item in error.errors(include_url=False)]
        raise MappingError(str(path), problems) from None


_TAGS = {"text", "date", "code", "flag"}


def _problem(root: yaml.Node | None, item: Any) -> tuple[int | None, str, str]:
    """(line, dotted key, message) of one pydantic error, found in the YAML node tree."""
    node, keys = root, []
    for step in item["loc"]:
        child = _child(node, step)
        if (child is None and step in _TAGS) or str(step).startswith("function-"):
            continue
        keys.append(str(step))
        node = child if child is not None else node
    line = node.start_mark.line + 1 if node is not None else None
    message = item["msg"].removeprefix("Value error, ")
    return line, ".".join(keys) or "(top)", message


def _child(node: yaml.Node | None, step: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(step):
                return value
    if isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
        return node.value[step]
    return None
