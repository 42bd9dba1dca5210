"""Data-sharing agreements as code: the pydantic model of ``config/agreements/*.yaml``.

An agreement names one recipient, one legal basis of 45 CFR 1303.22 and the exact fields that
may leave, each with one transform. A field it does not name never leaves (default deny).

Files are read with PyYAML's compose API so every problem names the file and line: a typo'd
key, an unknown catalog field or transform, a transform that does not fit its field, bad
parameters, a key written twice (plain YAML silently keeps the last one), and the rules of the
legal basis (destruction terms, record categories, the school-enrollment limit). ``load_*``
collects every problem of every file into one ``AgreementError``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from privacy.errors import AgreementError, AgreementProblem, TransformError
from privacy.fields import CATALOG, Kind
from privacy.transforms.registry import get_transform
from schemas.codes import Purpose, RecordCategory

__all__ = [
    "Agreement",
    "AgreementError",
    "AgreementProblem",
    "LegalBasis",
    "OutputLevel",
    "StatementHandling",
    "Suspension",
    "TransformSpec",
    "check_agreements",
    "load_agreement",
    "load_agreements",
]


class LegalBasis(StrEnum):
    """The ways PII may leave (45 CFR 1303.22)."""

    CONSENT = "consent"
    SCHOOL_ENROLLMENT_NOTICE = "school_enrollment_notice"
    AUDIT_EVALUATION = "audit_evaluation"
    STUDY = "study"

    @property
    def citation(self) -> str:
        """The paragraph of the regulation, e.g. ``45 CFR 1303.22(c)(2)``."""
        return _CITATIONS[self]

    @property
    def plain(self) -> str:
        """The basis in plain words."""
        return _PLAIN[self]


_CITATIONS = {
    LegalBasis.CONSENT: "45 CFR 1303.22(a)",
    LegalBasis.SCHOOL_ENROLLMENT_NOTICE: "45 CFR 1303.22(b)",
    LegalBasis.AUDIT_EVALUATION: "45 CFR 1303.22(c)(2)",
    LegalBasis.STUDY: "45 CFR 1303.22(c)(3)",
}
_PLAIN = {
    LegalBasis.CONSENT: "written parental consent",
    LegalBasis.SCHOOL_ENROLLMENT_NOTICE: (
        "notice to parents, with a chance to refuse, for enrollment in a school or school system"
    ),
    LegalBasis.AUDIT_EVALUATION: "audit or evaluation of education or child development programs",
    LegalBasis.STUDY: "a study to improve child and family outcomes, for the program",
}
NEEDS_DESTRUCTION = frozenset({LegalBasis.AUDIT_EVALUATION, LegalBasis.STUDY})
"""Bases of 1303.22(c) that need a written agreement with destruction terms."""
NOTICE_CATEGORIES = frozenset({RecordCategory.IDENTITY, RecordCategory.ENROLLMENT})
"""What may go to a school or LEA on notice alone (1303.22(b): enrollment or transfer)."""
AGGREGATE_IDENTIFIERS = frozenset({"program_code", "site_code"})
"""The only identifiers an aggregate table may be grouped by."""
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
Loc = tuple[str | int, ...]
_PROBLEMS = "problems"  # validation context key: collect (loc, message) instead of raising


class OutputLevel(StrEnum):
    """Whether the recipient gets child records or only suppressed program-level counts."""

    RECORD = "record"
    AGGREGATE = "aggregate"


class StatementHandling(StrEnum):
    """What happens to a field with a parent statement on file (45 CFR 1303.24(c))."""

    CARRY = "carry"
    WITHHOLD = "withhold"


class Suspension(BaseModel):
    """A window in which the recipient is barred after a violation (1303.22(d))."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: dt.date
    end: dt.date | None = None
    reason: str

    @model_validator(mode="after")
    def _end_after_start(self) -> Suspension:
        if self.end is not None and self.end < self.start:
            raise ValueError("a suspension cannot end before it starts")
        return self

    def covers(self, on: dt.date) -> bool:
        """Whether ``on`` falls in the suspension (both ends included)."""
        return self.start <= on and (self.end is None or on <= self.end)


class TransformSpec(BaseModel):
    """One field's transform and its parameters, e.g. ``bucket`` with ``bins``.

    In YAML a bare name (``keep``) or a one-key mapping (``{bucket: {bins: [0, 12, 24]}}``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"name": data}
        if isinstance(data, Mapping) and "name" not in data:
            if len(data) != 1:
                raise ValueError(
                    "write a transform as a name (keep) or as one name with its parameters "
                    "({bucket: {bins: [0, 12, 24]}})"
                )
            ((name, params),) = data.items()
            return {"name": name, "params": {} if params is None else params}
        return data

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}({args})" if args else self.name


class Agreement(BaseModel):
    """A data-sharing agreement with one recipient.

    ``purpose`` explains the purpose to people; ``purpose_code`` is the same purpose in the
    controlled vocabulary (``schemas.codes.Purpose``) that a consent must name (required under
    the consent basis, 1303.22(a)). ``statements_on_transformed_fields``: a parent's statement
    may quote the exact value of a field the agreement sends generalized or pseudonymized
    (a birth date sent as a month), so by default (``withhold``) such a field is held back for
    a child with a statement on it; ``carry`` lets statement and transformed field travel
    together, for agreements whose statements are known not to quote values.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    recipient: str
    legal_basis: LegalBasis
    purpose: str
    purpose_code: Purpose | None = None
    effective: dt.date
    expires: dt.date | None = None
    last_reviewed: dt.date
    suspensions: tuple[Suspension, ...] = ()
    destruction: str | None = None
    idea_exception: str | None = None
    notice_days: Annotated[int, Field(ge=0, le=365)] = 10
    record_categories: Annotated[tuple[RecordCategory, ...], Field(min_length=1)]
    output: OutputLevel = OutputLevel.RECORD
    parent_statements: StatementHandling = StatementHandling.WITHHOLD
    statements_on_transformed_fields: StatementHandling = StatementHandling.WITHHOLD
    delete_on_revocation: bool = False
    delete_out_of_scope: bool = False
    """Ask the recipient to delete a child it holds who no longer qualifies for a reason of
    the child's own other than revocation (no valid consent any more, notice refused, ...)."""
    min_cell_size: Annotated[int, Field(ge=1)] = 10
    fields: dict[str, TransformSpec]

    @field_validator("fields")
    @classmethod
    def _fields_fit(cls, fields: dict[str, TransformSpec], info: ValidationInfo) -> Any:
        return _settle(info, _field_problems(fields), fields)

    @model_validator(mode="after")
    def _rules_of_the_basis(self, info: ValidationInfo) -> Agreement:
        return _settle(info, _agreement_problems(dict(self)), self)

    @property
    def review_due(self) -> dt.date:
        """A year after the last review (written agreements are reviewed annually, 1303.22(d))."""
        try:
            return self.last_reviewed.replace(year=self.last_reviewed.year + 1)
        except ValueError:  # reviewed on 29 February: due one day early, not one day late
            return self.last_reviewed.replace(year=self.last_reviewed.year + 1, day=28)

    def in_force(self, on: dt.date) -> bool:
        """Whether ``on`` lies between ``effective`` and ``expires`` (both included)."""
        return self.effective <= on and (self.expires is None or on <= self.expires)

    def suspension_on(self, on: dt.date) -> Suspension | None:
        """The suspension covering ``on``, if any."""
        return next((s for s in self.suspensions if s.covers(on)), None)

    def leaving(self) -> dict[str, TransformSpec]:
        """The named fields whose transform lets them leave (all but ``drop``)."""
        return {name: spec for name, spec in self.fields.items() if spec.name != "drop"}


def _settle(info: ValidationInfo, problems: list[tuple[Loc, str]], value: Any) -> Any:
    """Collect ``problems`` into the loader's context, or raise them all as one ValueError."""
    sink = info.context.get(_PROBLEMS) if isinstance(info.context, dict) else None
    if sink is not None:
        sink.extend(problems)
    elif problems:
        raise ValueError("; ".join(f"{_dotted(loc)}: {message}" for loc, message in problems))
    return value


def _field_problems(fields: Mapping[str, TransformSpec]) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    columns: dict[str, str] = {}
    for name, spec in fields.items():
        loc: Loc = ("fields", name)
        if name not in CATALOG:
            problems.append((loc, f"unknown field {name!r}{_suggest(name, CATALOG)}"))
            continue
        try:
            transform = get_transform(spec.name)
        except TransformError as exc:
            problems.append((loc, f"{name}: {exc}"))
            continue
        try:
            transform.validate(spec.params, CATALOG[name])
        except TransformError as exc:
            problems.append((loc, str(exc)))
            continue
        if transform.leaves:
            column = transform.output_column(CATALOG[name], spec.params)
            if column in columns:
                problems.append((loc, f"{name} and {columns[column]} would both leave as {column}"))
            columns.setdefault(column, name)
    if not columns and not problems:
        problems.append((("fields",), "no field leaves: name at least one field with a transform"))
    return problems


def _agreement_problems(a: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """The rules across keys, on validated values; a key missing from ``a`` is skipped."""
    problems: list[tuple[Loc, str]] = []
    basis, categories = a.get("legal_basis"), a.get("record_categories")
    if "id" in a and (not a["id"] or not set(a["id"]) <= _ID_CHARS):
        problems.append((("id",), "an id is lower-case letters, digits and dashes"))
    expires, effective = a.get("expires"), a.get("effective")
    if expires is not None and effective is not None and expires < effective:
        problems.append((("expires",), "the agreement expires before it takes effect"))
    if basis in NEEDS_DESTRUCTION and "destruction" in a and not (a["destruction"] or "").strip():
        problems.append(
            (
                ("legal_basis",),
                f"the {basis} basis needs destruction terms ({basis.citation}):"
                " add destruction: saying when and how the recipient destroys the data",
            )
        )
    if basis is LegalBasis.CONSENT and "purpose_code" in a and a["purpose_code"] is None:
        problems.append(
            (
                ("purpose_code",),
                "a consent agreement needs purpose_code, the purpose a consent must name"
                f" (45 CFR 1303.22(a)); one of: {', '.join(p.value for p in Purpose)}",
            )
        )
    if categories is not None and len(set(categories)) != len(categories):
        problems.append((("record_categories",), "a record category is listed twice"))
    notice = basis is LegalBasis.SCHOOL_ENROLLMENT_NOTICE
    if notice and categories is not None and not set(categories) <= NOTICE_CATEGORIES:
        problems.append(
            (
                ("record_categories",),
                "a school_enrollment_notice agreement covers identity and enrollment records only"
                " (45 CFR 1303.22(b))",
            )
        )
    for name, spec in (a.get("fields") or {}).items():
        if name in CATALOG and spec.name != "drop":
            problems.extend(_field_rule_problems(a, name, spec))
    return problems


def _field_rule_problems(
    a: Mapping[str, Any], name: str, spec: TransformSpec
) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    basis, categories = a.get("legal_basis"), a.get("record_categories")
    loc: Loc = ("fields", name)
    category = CATALOG[name].category
    if basis is LegalBasis.SCHOOL_ENROLLMENT_NOTICE and category not in NOTICE_CATEGORIES:
        problems.append(
            (
                loc,
                f"{name} belongs to the {category} records: a school_enrollment_notice agreement"
                " may send identity and enrollment fields only (45 CFR 1303.22(b))",
            )
        )
    elif categories is not None and category not in categories:
        problems.append(
            (
                loc,
                f"{name} belongs to the {category} records, but record_categories does not list"
                f" {category}",
            )
        )
    if (
        category is RecordCategory.DISABILITY
        and basis is not None
        and basis is not LegalBasis.CONSENT
        and "idea_exception" in a
        and not (a["idea_exception"] or "").strip()
    ):
        problems.append(
            (
                loc,
                f"{name} is covered by IDEA: without consent it needs idea_exception citing"
                " the IDEA provision that allows it",
            )
        )
    if a.get("output") is OutputLevel.AGGREGATE and _identifies_a_child(name, spec):
        problems.append(
            (loc, f"an aggregate agreement cannot group by {name}: it identifies a child")
        )
    return problems


def _identifies_a_child(name: str, spec: TransformSpec) -> bool:
    kind = CATALOG[name].kind
    if kind is Kind.TEXT or spec.name == "pseudonymize":
        return True
    return kind is Kind.IDENTIFIER and name not in AGGREGATE_IDENTIFIERS


# --- loading -------------------------------------------------------------------------------


def load_agreement(path: Path | str, *, recipients: Collection[str] | None = None) -> Agreement:
    """Read and validate one agreement file; ``AgreementError`` lists all its problems.

    ``recipients``, when given, is the registry of recipient codes the agreement must name.
    """
    agreement, problems = _load_file(Path(path), recipients)
    if problems or agreement is None:
        raise AgreementError(problems or [AgreementProblem(Path(path), None, "not loaded")])
    return agreement


def check_agreements(
    folder: Path | str, *, recipients: Collection[str] | None = None
) -> tuple[dict[str, Agreement], list[AgreementProblem]]:
    """Every valid agreement of ``folder`` by id, and every problem of every file."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}, [AgreementProblem(folder, None, "no such folder of agreements")]
    agreements: dict[str, Agreement] = {}
    problems: list[AgreementProblem] = []
    seen: dict[str, Path] = {}
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        if path.stem in seen:
            problems.append(
                AgreementProblem(path, None, f"a second file for agreement {path.stem}")
            )
            continue
        seen[path.stem] = path
        agreement, file_problems = _load_file(path, recipients)
        problems.extend(file_problems)
        if agreement is not None and not file_problems:
            agreements[agreement.id] = agreement
    return agreements, problems


def load_agreements(
    folder: Path | str, *, recipients: Collection[str] | None = None
) -> dict[str, Agreement]:
    """Every agreement of ``folder`` by id; ``AgreementError`` with all problems of all files."""
    agreements, problems = check_agreements(folder, recipients=recipients)
    if problems:
        raise AgreementError(problems)
    return agreements


def _load_file(
    path: Path, recipients: Collection[str] | None
) -> tuple[Agreement | None, list[AgreementProblem]]:
    document = read_yaml(path)
    problems = [AgreementProblem(path, line, message) for line, message in document.problems]
    if document.data is None:
        return None, problems
    if not isinstance(document.data, dict):
        problems.append(AgreementProblem(path, document.line(()), "an agreement is a mapping"))
        return None, problems

    def at(loc: Loc, message: str) -> None:
        problems.append(AgreementProblem(path, document.line(loc), message))

    data = document.data
    if isinstance(data.get("id"), str) and data["id"] != path.stem:
        at(("id",), f"the id must be the file name without .yaml ({path.stem})")
    code = data.get("recipient")
    if recipients is not None and isinstance(code, str) and code not in recipients:
        at(("recipient",), f"unknown recipient {code!r}: not in the recipients registry")
    found: list[tuple[Loc, str]] = []
    agreement = None
    try:
        agreement = Agreement.model_validate(data, context={_PROBLEMS: found})
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        for error in errors:
            loc = tuple(error["loc"])
            at(loc if error["type"] != "missing" else loc[:-1], _describe(error, loc))
        # The cross-key rules did not run: run them on the keys that are valid on their own.
        found.extend(
            _agreement_problems(_valid_parts(data, {e["loc"][0] for e in errors if e["loc"]}))
        )
    for loc, message in found:
        at(loc, message)
    problems.sort(key=lambda p: p.line or 0)
    return agreement, problems


def _valid_parts(data: Mapping[str, Any], broken: Collection[Any]) -> dict[str, Any]:
    """The agreement keys that validate on their own (defaults for absent ones)."""
    values: dict[str, Any] = {}
    for name, info in Agreement.model_fields.items():
        if name in broken:
            continue
        if name not in data:
            if not info.is_required():
                values[name] = info.get_default(call_default_factory=True)
            continue
        try:
            values[name] = _adapter(name).validate_python(data[name])
        except ValidationError:
            continue
    return values


@functools.cache
def _adapter(name: str) -> TypeAdapter[Any]:
    info = Agreement.model_fields[name]
    annotation: Any = info.annotation
    if info.metadata:
        annotation = Annotated[annotation, *info.metadata]
    return TypeAdapter(annotation)


def _describe(error: Mapping[str, Any], loc: Loc) -> str:
    """A pydantic error in plain words, without the offending value."""
    kind, key = error["type"], loc[-1] if loc else ""
    if kind == "extra_forbidden":
        return f"unknown key {key!r}{_suggest(str(key), _known_keys(loc))}"
    if kind == "missing":
        return f"missing required key {key!r}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{_dotted(loc)}: {message}" if loc else message


def _known_keys(loc: Loc) -> Collection[str]:
    if loc[:1] == ("suspensions",):
        return Suspension.model_fields.keys()
    if loc[:1] == ("fields",):
        return TransformSpec.model_fields.keys()
    return Agreement.model_fields.keys()


def _suggest(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _dotted(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


# --- YAML with line numbers ----------------------------------------------------------------


@dataclass
class _Document:
    """A YAML file as plain data, the line of every key and item, and its structural problems."""

    data: Any = None
    lines: dict[Loc, int] = field(default_factory=dict)
    problems: list[tuple[int | None, str]] = field(default_factory=list)

    def line(self, loc: Sequence[Any]) -> int | None:
        """The line of ``loc``, or of its nearest enclosing key that has one."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return None


_MAX_DEPTH = 20


def read_yaml(path: Path) -> _Document:
    """Compose ``path`` node by node: keep lines, refuse duplicate keys, tags and merges."""
    document = _Document()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        document.problems.append((None, f"cannot read the file ({type(exc).__name__})"))
        return document
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        document.problems.append((line, f"not valid YAML: {exc.problem or exc.context}"))
        return document
    except yaml.YAMLError as exc:
        document.problems.append((None, f"not valid YAML ({type(exc).__name__})"))
        return document
    if root is None:
        document.problems.append((1, "the file is empty"))
        return document
    document.data = _Reader(document).read(root, (), 0)
    return document


class _Reader:
    def __init__(self, document: _Document) -> None:
        self.document = document
        self.constructor = yaml.constructor.SafeConstructor()
        self.seen: set[int] = set()

    def problem(self, node: yaml.Node, message: str) -> None:
        self.document.problems.append((node.start_mark.line + 1, message))

    def read(self, node: yaml.Node, path: Loc, depth: int) -> Any:
        self.document.lines.setdefault(path, node.start_mark.line + 1)
        if depth > _MAX_DEPTH:
            self.problem(node, "nested too deeply")
            return None
        if isinstance(node, yaml.CollectionNode):
            if id(node) in self.seen:  # an alias: could recurse or expand exponentially
                line = self.document.lines.get(path, node.start_mark.line + 1)
                message = "anchors and aliases (& and *) are not allowed: write it out"
                self.document.problems.append((line, message))
                return None
            self.seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.read(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self.scalar(node)

    def mapping(self, node: yaml.MappingNode, path: Loc, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problem(key_node, "merge keys (<<) are not allowed: write each key out")
                continue
            key = self.scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self.problem(key_node, "a key must be a word")
                continue
            if key in first:
                self.problem(key_node, f"duplicate key {key!r} (first at line {first[key]})")
                continue
            first[key] = line
            self.document.lines[(*path, key)] = line
            out[key] = self.read(value_node, (*path, key), depth + 1)
        return out

    def scalar(self, node: yaml.Node) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError):
            self.problem(node, "a value this file may not hold (a bad date or an unsafe tag)")
            return None
