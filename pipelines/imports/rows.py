"""Parse one export row into canonical program, site, child and enrollment values.

Besides each field's own rules (see ``parsers``), every mapping gets the canonical model's
cross-field rules: a birth date is not in the future and not after the entry date, and an
exit date is not before the entry date. A row that breaks any rule comes back as a
:class:`BadRow` carrying every error and the raw row, to be quarantined whole.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from pipelines.imports.errors import ImportsError, RowError, Rule, RuleViolation
from pipelines.imports.mapping import (
    OVERRIDABLE,
    PLACEHOLDER,
    TARGETS,
    TEMPLATE_VARIABLES,
    Mapping,
    Target,
)
from pipelines.imports.parsers import FieldParser, compile_field
from pipelines.imports.reader import SourceRow
from schemas.codes import ProgramType
from schemas.filespec import looks_like_formula

PROGRAM_CODE_LENGTH = 40
PROGRAM_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
STATE = re.compile(r"[A-Z]{2}")
FORMULA_DETAIL = (
    "begins with a character a spreadsheet runs as a formula (= + - @); loaded, and written "
    "with a single quote in front in CSV files"
)
_SURROGATE = re.compile("[\udc80-\udcff]")


@dataclass(slots=True)
class ParsedRow:
    """A good row: canonical values per entity (``program`` includes the rendered ``code``)."""

    line: int
    program: dict[str, Any]
    site: dict[str, Any]
    child: dict[str, Any]
    enrollment: dict[str, Any]
    warnings: list[RowError] = field(default_factory=list)

    @property
    def child_key(self) -> tuple[str, str]:
        """(program code, child local id): who the row is about."""
        return str(self.program["code"]), str(self.child["local_id"])


@dataclass(frozen=True, slots=True)
class RowIdentity:
    """A row's raw (stripped) values that name its child, give the child's fields and name
    its enrollment: what finding duplicates compares, without parsing the row."""

    child_key: tuple[str, ...]
    child_values: tuple[str, ...]
    enrollment: tuple[str, ...]


@dataclass(slots=True)
class BadRow:
    """A row that broke at least one rule, with the raw row to keep in quarantine."""

    line: int
    errors: list[RowError]
    raw: dict[str, Any]
    program_code: str | None = None
    child_local_id: str | None = None
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        text = json.dumps(self.raw, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        self.digest = hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class _Field:
    target: Target
    indices: tuple[int, ...]
    column: str | None
    parse: FieldParser | None
    constant: Any = None


class RowParser:
    """Parses the rows of one export with one mapping; build once, call :meth:`parse` per row.

    ``state`` and ``program_type`` (the command line's) replace the program's mapped ones.
    """

    def __init__(
        self,
        mapping: Mapping,
        header: list[str],
        source: str,
        *,
        today: dt.date,
        state: str | None = None,
        program_type: ProgramType | None = None,
    ) -> None:
        self.mapping = mapping
        self.header = header
        self.source = source
        self.today = today
        index = {name: i for i, name in reversed(list(enumerate(header)))}
        self._keys = _unique_keys(header)
        overrides: dict[tuple[str, str], Any] = {}
        if state is not None:
            if not STATE.fullmatch(state):
                raise ImportsError("--state must be a two-letter state code such as VT")
            overrides["program", "state"] = state
        if program_type is not None:
            overrides["program", "program_type"] = ProgramType(program_type)
        self._fields: list[_Field] = []
        for section in mapping.sections():
            for target, spec in section.specs():
                key = (target.entity, target.name)
                if key in overrides:
                    continue
                indices = tuple(index[c] for c in spec.columns)
                column = ", ".join(spec.columns) or None
                self._fields.append(_Field(target, indices, column, compile_field(target, spec)))
        for (entity, name), value in overrides.items():
            target = TARGETS[entity][name]
            self._fields.append(_Field(target, (), None, None, value))
        given = {(f.target.entity, f.target.name) for f in self._fields}
        for _entity, name in sorted(OVERRIDABLE - given):
            option = "--" + name.replace("_", "-")
            raise ImportsError(
                f"mapping {mapping.name!r} gives no program {name}: map it or pass {option}"
            )
        self._template = [(name, index.get(name, -1)) for name in mapping.template_names()]
        self._columns = defaultdict(
            lambda: None, {(f.target.entity, f.target.name): f.column for f in self._fields}
        )
        self._identity = _identity_indices(self._fields, self._template)

    def parse(self, row: SourceRow) -> ParsedRow | BadRow:
        """The canonical values of ``row``, or every rule it breaks."""
        errors: list[RowError] = []
        if len(row.values) != len(self.header):
            detail = f"{len(row.values)} fields where the header has {len(self.header)}"
            errors.append(RowError(self.source, row.line, None, None, Rule.FIELD_COUNT, detail))
            return BadRow(row.line, errors, self._raw(row))
        values: dict[str, dict[str, Any]] = {
            "program": {},
            "site": {},
            "child": {},
            "enrollment": {},
        }
        warnings: list[RowError] = []
        for item in self._fields:
            if item.parse is None:
                values[item.target.entity][item.target.name] = item.constant
                continue
            try:
                value = item.parse([row.values[i] for i in item.indices])
            except RuleViolation as violation:
                errors.append(self._error(row, item.target.key, item.column, violation))
                continue
            values[item.target.entity][item.target.name] = value
            if isinstance(value, str) and looks_like_formula(value):
                warning = RuleViolation(Rule.FORMULA_PREFIX, FORMULA_DETAIL)
                warnings.append(self._error(row, item.target.key, item.column, warning))
        code = self._program_code(row, values["program"], errors)
        self._cross_rules(row, values, errors)
        if errors:
            local_id = values["child"].get("local_id")
            return BadRow(row.line, errors, self._raw(row), code, local_id)
        values["program"]["code"] = code
        return ParsedRow(row.line, **values, warnings=warnings)

    def identity(self, row: SourceRow) -> RowIdentity | None:
        """The row's :class:`RowIdentity`, or None when it has no child id (or the wrong
        number of fields): such a row breaks a rule of its own."""
        if len(row.values) != len(self.header):
            return None
        key_at, child_at, enrollment_at = self._identity
        key = tuple(row.values[i].strip() for i in key_at)
        if not all(key):
            return None
        return RowIdentity(
            key,
            tuple(row.values[i].strip() for i in child_at),
            tuple(row.values[i].strip() for i in enrollment_at),
        )

    def duplicate(self, row: SourceRow, parsed: ParsedRow, copies: int) -> BadRow:
        """``row`` (parsed as ``parsed``) quarantined because its child id is in ``copies``
        rows of the file that disagree: which one is right cannot be known."""
        detail = (
            f"the child id is in {copies} rows of this file that disagree (child values, or "
            "the same enrollment twice); every copy is quarantined"
        )
        column = self._columns["child", "local_id"]
        violation = RuleViolation(Rule.DUPLICATE_IN_FILE, detail)
        error = self._error(row, "child.local_id", column, violation)
        program, local_id = parsed.child_key
        return BadRow(row.line, [error], self._raw(row), program, local_id)

    def _error(self, row: SourceRow, key: str, column: str | None, v: RuleViolation) -> RowError:
        return RowError(self.source, row.line, key, column, v.rule, v.detail)

    def _program_code(
        self, row: SourceRow, program: dict[str, Any], errors: list[RowError]
    ) -> str | None:
        variables = [name for name, _ in self._template if name in TEMPLATE_VARIABLES]
        if any(program.get(name) is None for name in variables):
            return None  # that field's own error is already recorded
        columns = [(name, i) for name, i in self._template if name not in TEMPLATE_VARIABLES]
        column = ", ".join(name for name, _ in columns) or None

        def fail(rule: Rule, detail: str) -> None:
            errors.append(self._error(row, "program.code", column, RuleViolation(rule, detail)))

        if any(not row.values[i].strip() for _, i in columns):
            fail(Rule.REQUIRED, "a column of the code template is empty")
            return None
        parts = iter(
            str(program[name]) if name in TEMPLATE_VARIABLES else row.values[i].strip()
            for name, i in self._template
        )
        code = PLACEHOLDER.sub(lambda _match: next(parts), self.mapping.program.code)
        if len(code) > PROGRAM_CODE_LENGTH:
            fail(Rule.MAX_LENGTH, f"longer than {PROGRAM_CODE_LENGTH} characters")
        elif not PROGRAM_CODE.fullmatch(code):
            fail(Rule.PATTERN, "only letters, digits, '.', '_' and '-' make a program code")
        else:
            return code
        return None

    def _cross_rules(
        self, row: SourceRow, values: dict[str, dict[str, Any]], errors: list[RowError]
    ) -> None:
        birth = values["child"].get("birth_date")
        entry = values["enrollment"].get("entry_date")
        exit_ = values["enrollment"].get("exit_date")

        def fail(key: str, columns: list[str | None], rule: Rule, detail: str) -> None:
            column = ", ".join(filter(None, columns)) or None
            errors.append(self._error(row, key, column, RuleViolation(rule, detail)))

        birth_column = self._columns["child", "birth_date"]
        entry_column = self._columns["enrollment", "entry_date"]
        if birth is not None and birth > self.today:
            fail("child.birth_date", [birth_column], Rule.FUTURE_DATE, "a birth date in the future")
        elif birth is not None and entry is not None and birth > entry:
            detail = "the birth date is after the entry date"
            fail("child.birth_date", [birth_column, entry_column], Rule.BIRTH_AFTER_ENTRY, detail)
        if entry is not None and exit_ is not None and exit_ < entry:
            detail = "the exit date is before the entry date"
            fail(
                "enrollment.exit_date",
                [self._columns["enrollment", "exit_date"]],
                Rule.EXIT_BEFORE_ENTRY,
                detail,
            )

    def _raw(self, row: SourceRow) -> dict[str, Any]:
        raw: dict[str, Any] = {
            key: _escaped(value) for key, value in zip(self._keys, row.values, strict=False)
        }
        if len(row.values) > len(self._keys):
            raw["_extra"] = [_escaped(value) for value in row.values[len(self._keys) :]]
        return raw


def _identity_indices(
    fields: list[_Field], template: list[tuple[str, int]]
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Source column indices naming the child (the program code's template columns and
    variables, the child id), giving the child's fields, and naming the enrollment (site code,
    entry date)."""
    variables = {name for name, _ in template if name in TEMPLATE_VARIABLES}

    def at(pick: Any) -> tuple[int, ...]:
        return tuple(sorted({i for f in fields if pick(f.target) for i in f.indices}))

    template_columns = tuple(i for name, i in template if name not in TEMPLATE_VARIABLES)
    key = template_columns + at(
        lambda t: (
            (t.entity, t.name) == ("child", "local_id")
            or (t.entity == "program" and t.name in variables)
        )
    )
    child = at(lambda t: t.entity == "child")
    enrollment = at(
        lambda t: (t.entity, t.name) in {("site", "code"), ("enrollment", "entry_date")}
    )
    return key, child, enrollment


def _escaped(value: str) -> str:
    """``value`` with each undecodable byte written as ``\\xNN`` (storable, nothing lost)."""
    return _SURROGATE.sub(lambda match: f"\\x{ord(match.group()) - 0xDC00:02x}", value)


def _unique_keys(header: list[str]) -> list[str]:
    """Header names made unique (``name#2`` for a repeat) so a raw row loses no value."""
    seen: dict[str, int] = {}
    keys = []
    for name in header:
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return keys
