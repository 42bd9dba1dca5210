"""Ledger entries given as columns, made into what :mod:`privacy.ledger` hashes and stores.

Each distinct value of a column is checked and made what the column stores once (a batch
repeats its run, agreement, recipient, date and time in every entry); each part of the entries
(:class:`Part`) is encoded once per distinct value as canonical JSON pieces (``"name":value``,
exactly as :func:`privacy.ledger.canonical` writes them), as PostgreSQL ``COPY`` text fields
(what psycopg would send) or as the values an ``INSERT`` stores. A value every entry of the
part shares stays one text (a :data:`Segment`), so each entry's text joins only what differs
(:func:`joined`). :func:`chain` joins every entry's canonical text around its ``prev_hash``
and hashes the entries in one tight loop.

Used by :mod:`privacy.ledger` only; messages name columns, never values.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from json.encoder import encode_basestring
from typing import Any

from sqlalchemy import JSON, Column, Date, DateTime

from privacy.errors import LedgerError

Columns = Mapping[str, Sequence[Any]]
"""The entries of one append: every content column (all but ``id``, ``seq``, ``prev_hash`` and
``entry_hash``) -> one value per entry, in entry order. Text columns take ``str`` (``None``
only where the column is nullable; anything else is made ``str``, as the object API does),
date columns ``datetime.date``, time columns timezone-aware datetimes (stored and hashed in
UTC), the ``fields`` column tuples of ``str`` (other sequences are made one)."""

_COPY_ESCAPES = re.compile(r"[\b\t\n\v\f\r\\]")
_COPY_ESCAPED = {
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\v",
    "\f": "\\f",
    "\r": "\\r",
    "\\": "\\\\",
}


def aware_utc(value: dt.datetime, name: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise LedgerError(f"{name} must be a timezone-aware datetime")
    return value.astimezone(dt.UTC)


def _normal(column: Column[Any], value: Any) -> Any:
    """``value`` as stored (and hashed); :class:`LedgerError` when it does not fit the column.
    The message names the column only, never the value."""
    name, kind = column.name, column.type
    if value is None:
        if column.nullable:
            return None
        raise LedgerError(f"ledger column {name} must have a value")
    if isinstance(kind, DateTime):
        return aware_utc(value, name)
    if isinstance(kind, Date):
        if type(value) is not dt.date:
            raise LedgerError(f"ledger column {name} must hold dates")
        return value
    if isinstance(kind, JSON):
        if type(value) is not tuple or any(type(v) is not str for v in value):
            raise LedgerError(f"ledger column {name} must hold tuples of field names")
        return value
    if type(value) is not str:
        raise LedgerError(f"ledger column {name} must hold text")
    return value


def _comparable(column: Column[Any], values: Sequence[Any]) -> tuple[Sequence[Any], list[Any]]:
    """``values``, each made what the column stores when it is not already (field names as a
    tuple of ``str``, other text as ``str``: what :func:`append_disclosures` makes of an
    item), so that values equal as keys are equal as stored; and their distinct values."""
    try:
        distinct = list(dict.fromkeys(values))
    except TypeError:  # unhashable: a list of field names
        distinct = None
    if isinstance(column.type, JSON):
        if distinct is not None and all(
            type(v) is tuple and all(type(f) is str for f in v) for v in distinct
        ):
            return values, distinct
        values = [_field_names(column.name, v) for v in values]
    elif isinstance(column.type, Date | DateTime):
        if distinct is not None:
            return values, distinct  # each distinct value checked by :func:`_normal`
    elif distinct is None or not all(v is None or type(v) is str for v in distinct):
        values = [v if v is None else str(v) for v in values]
    else:
        return values, distinct
    try:
        return values, list(dict.fromkeys(values))
    except TypeError:
        raise LedgerError(f"ledger column {column.name} holds a value of the wrong type") from None


def _field_names(name: str, value: Any) -> Any:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise LedgerError(f"ledger column {name} must hold sequences of field names")
    return tuple(str(f) for f in value)


def _json(value: Any) -> str:
    """A stored value as :func:`canonical` writes it (compact JSON, UTC ISO times)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return str(encode_basestring(value))
    if isinstance(value, tuple):
        return "[" + ",".join(map(encode_basestring, value)) + "]"
    return str(encode_basestring(value.isoformat()))  # a date, or a datetime in UTC


def copy_texts(values: list[str]) -> list[str]:
    """Each of ``values`` as a ``COPY`` text field (backslash escapes), in one pass."""
    joined = "\x00".join(values)  # NUL: the one character no stored text holds
    if joined.count("\x00") != max(len(values) - 1, 0):
        raise LedgerError("ledger text cannot hold a NUL character")
    if not any(c in joined for c in _COPY_ESCAPED):  # a scan per character: many times a regex
        return values
    return _COPY_ESCAPES.sub(lambda m: _COPY_ESCAPED[m.group(0)], joined).split("\x00")


def _copy_fields(values: list[Any]) -> list[str]:
    """Stored values as ``COPY`` text fields: what ``psycopg`` would send for them."""
    texts = []
    for value in values:
        if value is None:
            texts.append("")
        elif isinstance(value, str):
            texts.append(value)
        elif isinstance(value, tuple):
            texts.append(json.dumps(list(value)))  # the json column keeps this text
        else:
            texts.append(value.isoformat())
    escaped = copy_texts(texts)
    return ["\\N" if value is None else text_ for value, text_ in zip(values, escaped, strict=True)]


class Encoded:
    """One column of an append: its values checked once per distinct value; encoded (as
    canonical JSON, ``COPY`` text, stored values) once per distinct value of each part.

    A date, time or fields column keeps, per entry, the number of its distinct value: the
    parts then look up small ints, where a tuple of field names (whose hash Python does not
    keep) would be hashed anew at every look-up."""

    def __init__(self, column: Column[Any], values: Sequence[Any]) -> None:
        self.name = column.name
        self.values, distinct = _comparable(column, values)
        self.normal: dict[Any, Any] | None = None  # None: text, each value stored as it is
        if isinstance(column.type, Date | DateTime | JSON):
            number = {v: i for i, v in enumerate(distinct)}
            self.values = list(map(number.__getitem__, self.values))
            self.normal = {i: _normal(column, v) for i, v in enumerate(distinct)}
        elif not column.nullable and None in distinct:  # text, already ``str``
            raise LedgerError(f"ledger column {column.name} must have a value")

    def part(self, start: int, stop: int) -> Part:
        """The entries ``start`` to ``stop`` (excluded)."""
        return Part(self, self.values[start:stop])


Segment = str | list[str]
"""Text of some consecutive entries: one ``str`` for all of them (a value they share), or a
list with one ``str`` per entry."""


class Part:
    """Some consecutive entries of one column."""

    def __init__(self, column: Encoded, values: Sequence[Any]) -> None:
        self.name = column.name
        self.values = values
        self.distinct = list(dict.fromkeys(values))
        normal = column.normal
        # a text column holds ``str`` or None: with no None, its values need no check each
        self.texts = normal is None and None not in self.distinct
        self.normal = (
            self.distinct if normal is None else list(map(normal.__getitem__, self.distinct))
        )

    def _per_entry(self, encoded: list[Any]) -> list[Any]:
        """Per entry, the encoding (``encoded``, one per distinct value) of its value."""
        table = dict(zip(self.distinct, encoded, strict=True))
        return list(map(table.__getitem__, self.values))

    def _each(self, encoded: list[str]) -> Segment:
        """:meth:`_per_entry` of a text encoding: the one text when the entries share a
        value."""
        if len(encoded) == 1:
            return encoded[0]
        if len(encoded) == len(self.values):  # every value distinct: already in entry order
            return encoded
        return self._per_entry(encoded)

    def pieces(self) -> Segment:
        """``"name":value`` (canonical JSON) of every entry."""
        key = encode_basestring(self.name) + ":"
        encode = encode_basestring if self.texts else _json
        return self._each(list(map(key.__add__, map(encode, self.normal))))

    def copy_fields(self) -> Segment:
        """The ``COPY`` text field of every entry."""
        if self.texts:  # ``str`` each: only escaped
            return self._each(copy_texts(self.normal))
        return self._each(_copy_fields(self.normal))

    def stored(self) -> list[Any]:
        """The value stored for every entry (a JSON column's tuple as a list)."""
        return self._per_entry([list(n) if isinstance(n, tuple) else n for n in self.normal])


def joined(segments: Sequence[Segment], count: int) -> list[str]:
    """Per entry (``count`` of them), its text of every segment joined in order; neighbouring
    shared texts are joined once, so each entry joins only the texts that differ."""
    merged: list[Segment] = []
    for segment in segments:
        if isinstance(segment, str) and merged and isinstance(merged[-1], str):
            merged[-1] += segment
        else:
            merged.append(segment)
    if len(merged) == 1 and isinstance(merged[0], str):
        return [merged[0]] * count
    columns = [repeat(s, count) if isinstance(s, str) else s for s in merged]
    return list(map("".join, zip(*columns, strict=True)))


def chain(encoded: list[Part], seqs: list[int], prev: str, key: bytes | None) -> list[str]:
    """The ``entry_hash`` of every entry numbered ``seqs``, the first linked to ``prev``.

    The bytes hashed are exactly :func:`canonical`'s (sorted keys, compact separators): each
    entry's text before and after its ``prev_hash`` is joined from the columns' pieces first,
    so the loop that follows only joins three strings and hashes them.
    """
    pieces: dict[str, Segment] = {c.name: c.pieces() for c in encoded}
    pieces["seq"] = [f'"seq":{n}' for n in seqs]
    names = sorted([*pieces, "prev_hash"])
    at = names.index("prev_hash")
    opening: list[Segment] = ["{"]
    for name in names[:at]:
        opening += [pieces[name], ","]
    closing: list[Segment] = ['"']
    for name in names[at + 1 :]:
        closing += [",", pieces[name]]
    count = len(seqs)
    heads = joined([*opening, '"prev_hash":"'], count)
    tails = joined([*closing, "}"], count)
    text_ = str(encode_basestring(prev))[1:-1]  # a stored head as JSON writes it
    hashes: list[str] = []
    add = hashes.append
    if key is None:
        sha256 = hashlib.sha256
        for head, tail in zip(heads, tails, strict=True):
            text_ = sha256((head + text_ + tail).encode()).hexdigest()
            add(text_)
        return hashes
    base = hmac.new(key, digestmod=hashlib.sha256)  # keyed once, copied per entry
    for head, tail in zip(heads, tails, strict=True):
        mac = base.copy()
        mac.update((head + text_ + tail).encode())
        text_ = mac.hexdigest()
        add(text_)
    return hashes
