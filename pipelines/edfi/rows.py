"""One child's permitted values, read the way Ed-Fi needs them, and why something is left out.

:class:`Row` answers "the value of this field" with ``None`` when the field is not permitted
(its column is absent) or has no value, raises for a required field that cannot be had, and
notes an optional one that cannot be carried (a generalized date, a code with no Ed-Fi
equivalent). Notes and reasons name fields, never values.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from pipelines.destinations.base import ChildKey
from pipelines.edfi.settings import EducationOrganization
from schemas.codes import ProgramType

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Reason(StrEnum):
    """Why a resource (or one field of it) was not sent."""

    REQUIRED_FIELD_NOT_PERMITTED = "EDFI_REQUIRED_FIELD_NOT_PERMITTED"
    REQUIRED_VALUE_MISSING = "EDFI_REQUIRED_VALUE_MISSING"
    VALUE_NOT_EXACT = "EDFI_VALUE_NOT_EXACT"
    VALUE_NOT_MAPPABLE = "EDFI_VALUE_NOT_MAPPABLE"
    DEPENDS_ON_NOT_SENT = "EDFI_DEPENDS_ON_NOT_SENT"
    LOCAL_VALIDATION_FAILED = "EDFI_LOCAL_VALIDATION_FAILED"


@dataclass(frozen=True)
class NotSent:
    """A resource (or, with ``resource_withheld`` false, one field of it) left out for a child;
    ``field`` is a catalog field, a resource name or a JSON path with its rule — never a value."""

    child_key: ChildKey
    resource: str
    reason: Reason
    field: str
    resource_withheld: bool = True

    @property
    def code(self) -> str:
        """``REASON:field``, the form the redaction audit records."""
        return f"{self.reason}:{self.field}"


class Withheld(Exception):
    """A required field cannot be had: the resource is not built (mapping catches it)."""

    def __init__(self, reason: Reason, field_name: str) -> None:
        super().__init__(reason, field_name)
        self.reason, self.field = reason, field_name


@dataclass
class Row:
    """One child's permitted values, with helpers that raise :class:`Withheld` for required
    fields and note optional ones that cannot be carried."""

    values: Mapping[str, Any]
    columns: frozenset[str]
    key: ChildKey
    program_code: str
    organization: EducationOrganization
    notes: list[NotSent] = field(default_factory=list)
    student_id: str = ""
    used: set[str] = field(default_factory=set)
    """The fields the resource being built carries: whose values its body holds or is made
    of (a descriptor chosen by them). A value read and then left out (a code with no Ed-Fi
    equivalent, a generalized date, an incomplete address) is not carried."""
    id_fields: frozenset[str] = frozenset()
    """The fields the student's ``studentUniqueId`` came from (every reference carries it)."""

    def peek(self, name: str) -> Any:
        """The value, or ``None`` when not permitted or null, without counting it as carried
        (for a value the resource may yet leave out)."""
        if name not in self.columns:
            return None
        value = self.values.get(name)
        if value is None or (not isinstance(value, list | tuple | dict) and pd.isna(value)):
            return None
        if isinstance(value, str) and not value.strip():
            return None
        return value

    def value(self, name: str) -> Any:
        """The value, or ``None`` when not permitted or null; a value returned is carried by
        the resource being built (:attr:`used`)."""
        value = self.peek(name)
        if value is not None:
            self.used.add(name)
        return value

    def carry(self, *names: str) -> None:
        """Count ``names`` as carried by the resource being built (values :meth:`peek` read
        and the body now holds, or holds something made of)."""
        self.used.update(names)

    def need(self, name: str) -> Any:
        value = self.value(name)
        if value is None:
            reason = (
                Reason.REQUIRED_VALUE_MISSING
                if name in self.columns
                else Reason.REQUIRED_FIELD_NOT_PERMITTED
            )
            raise Withheld(reason, name)
        return value

    def note(self, resource: str, reason: Reason, name: str) -> None:
        self.notes.append(NotSent(self.key, resource, reason, name, resource_withheld=False))

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.need(name) if required else self.value(name)
        return None if value is None else str(value).strip()

    def date(
        self,
        name: str,
        *,
        required: bool = False,
        field_only: str | None = None,
        quiet: bool = False,
        carry: bool = True,
    ) -> str | None:
        """An exact ISO date; a generalized one (``2022-03``, a year) is not a date (and is
        not carried). ``carry`` false: the caller decides whether the date is carried."""
        value = self.need(name) if required else self.peek(name)
        if value is None:
            return None
        exact = iso_date(value)
        if exact is None:
            if required:
                raise Withheld(Reason.VALUE_NOT_EXACT, name)
            if field_only and not quiet:
                self.note(field_only, Reason.VALUE_NOT_EXACT, name)
        elif carry:
            self.carry(name)
        return exact

    def code(self, name: str, table: Mapping[str, Any], resource: str) -> Any:
        """The Ed-Fi value of a canonical code, or ``None`` (noted when it has none: then
        not carried)."""
        value = self.peek(name)
        if value is None:
            return None
        mapped = table.get(str(value))
        if mapped is None:
            self.note(resource, Reason.VALUE_NOT_MAPPABLE, name)
        else:
            self.carry(name)
        return mapped

    def flag(self, name: str, resource: str | None, *, carry: bool = True) -> bool | None:
        """A boolean flag; ``None`` when not permitted, null or not a boolean (noted, not
        carried). True or false, a flag is carried (``carry`` false: the caller decides): the
        body is built from it, and a false one is told by what the body then lacks (no
        disability, no characteristic) to a recipient that receives the field."""
        value = self.peek(name)
        if value is None:
            return None
        if isinstance(value, bool | np.bool_):
            if carry:
                self.carry(name)
            return bool(value)
        if resource is not None:
            self.note(resource, Reason.VALUE_NOT_MAPPABLE, name)
        return None

    def program_type(self, *, required: bool) -> ProgramType:
        value = self.peek("program_type")
        if value is None and required:
            self.need("program_type")  # raises why it is missing
        try:
            program_type = ProgramType(str(value))
        except ValueError:
            raise Withheld(Reason.VALUE_NOT_MAPPABLE, "program_type") from None
        self.carry("program_type")
        return program_type


def iso_date(value: Any) -> str | None:
    if isinstance(value, pd.Timestamp | dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str) and _ISO_DATE.match(value):
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            return None
    return None


def age(birth: str, on: str) -> int:
    b, o = dt.date.fromisoformat(birth), dt.date.fromisoformat(on)
    return o.year - b.year - ((o.month, o.day) < (b.month, b.day))
