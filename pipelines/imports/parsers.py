"""Turn the raw text of one field (one or more source columns) into a canonical value.

``compile_field(target, spec)`` builds, once per import, a function from the raw strings of
the spec's columns to the canonical value (``None`` for "no value"); it raises
:class:`RuleViolation`, whose detail never repeats the value.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import Any

from pipelines.imports.errors import Rule, RuleViolation
from pipelines.imports.mapping import CodeSpec, DateSpec, FlagSpec, Target, TextSpec, normalize

FieldParser = Callable[[Sequence[str]], Any]


_UNDECODED = re.compile("[\ud800-\udfff]")  # bytes the reader could not decode
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc


def _present(raws: Sequence[str]) -> list[str]:
    present = [value for raw in raws if (value := raw.strip())]
    for value in present:
        if _UNDECODED.search(value):
            raise RuleViolation(Rule.ENCODING, "bytes that are not valid in the file's encoding")
        if _CONTROL.search(value):
            raise RuleViolation(Rule.CONTROL_CHARACTER, "a control character or line break")
    return present


def _text(target: Target, spec: TextSpec) -> FieldParser:
    limit = spec.max_length or target.length
    pattern = re.compile(spec.pattern) if spec.pattern else None

    def parse(raws: Sequence[str]) -> str | None:
        values = _present(raws)
        if not values:
            return None
        value = " ".join(values)
        if limit and len(value) > limit:
            raise RuleViolation(Rule.MAX_LENGTH, f"longer than {limit} characters")
        if pattern and not pattern.fullmatch(value):
            raise RuleViolation(Rule.PATTERN, f"does not match the pattern {pattern.pattern}")
        return value

    return parse


def _date(target: Target, spec: DateSpec) -> FieldParser:
    formats = tuple(spec.formats)
    detail = f"not a real date in the format {' or '.join(formats)}"

    def parse(raws: Sequence[str]) -> dt.date | None:
        values = _present(raws)
        if not values:
            return None
        for fmt in formats:
            try:
                return dt.datetime.strptime(values[0], fmt).date()
            except ValueError:
                continue
        raise RuleViolation(Rule.INVALID_DATE, detail)

    return parse


def _code(target: Target, spec: CodeSpec) -> FieldParser:
    lookup = {normalize(source): code for source, code in spec.values.items()}

    def parse(raws: Sequence[str]) -> Any:
        codes: list[str] = []
        for value in _present(raws):
            key = normalize(value)
            if key not in lookup:
                raise RuleViolation(Rule.UNKNOWN_CODE, "a value missing from the mapping's values")
            code = lookup[key]
            if code is not None and code not in codes:
                codes.append(code)
        if not codes:
            return None
        if len(codes) > 1:
            if spec.multiple is None:
                raise RuleViolation(Rule.CONFLICTING_CODES, "the columns give different codes")
            codes = [spec.multiple]
        return target.codes(codes[0]) if target.codes else codes[0]

    return parse


def _flag(target: Target, spec: FlagSpec) -> FieldParser:
    true = {normalize(v) for v in spec.true_values}
    false = {normalize(v) for v in spec.false_values}

    def parse(raws: Sequence[str]) -> bool | None:
        result: bool | None = None
        for value in _present(raws):
            key = normalize(value)
            if key in true:
                result = True
            elif key in false:
                result = bool(result)
            else:
                raise RuleViolation(Rule.INVALID_FLAG, "neither a yes nor a no of the mapping")
        return result

    return parse


_BUILDERS: dict[str, Callable[[Target, Any], FieldParser]] = {
    "text": _text,
    "date": _date,
    "code": _code,
    "flag": _flag,
}


def compile_field(target: Target, spec: Any) -> FieldParser:
    """A parser for ``target`` that also applies the spec's default and required rule."""
    parse_raw = _BUILDERS[spec.type](target, spec)
    default = spec.default
    if default is not None and target.codes is not None:
        default = target.codes(default)
    required = spec.required

    def parse(raws: Sequence[str]) -> Any:
        value = parse_raw(raws)
        if value is None:
            value = default
        if value is None and required:
            raise RuleViolation(Rule.REQUIRED, "no value")
        return value

    return parse
