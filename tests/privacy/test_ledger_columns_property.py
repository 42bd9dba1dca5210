"""Property: whatever entries are appended (odd text, repeated and distinct values, fields
lists, times in any zone, keyed or not, in one append or two), the rows stored are exactly the
ones the ledger's documented format defines, on SQLite and on PostgreSQL, and :func:`verify`
passes on them.

The oracle is written here from the format in ``privacy/ledger.py``'s docstring, one entry at
a time, and imports none of the code it checks: seq 1, 2, 3, ...; ``prev_hash`` the previous
entry's ``entry_hash`` (64 zeros first); ``entry_hash`` SHA-256 (HMAC-SHA256 under the key,
computed with ``cryptography``) of the sorted-key compact UTF-8 JSON of every column but
``id`` and ``entry_hash``, dates as ``YYYY-MM-DD``, times as UTC ISO 8601. A JSON column
(``fields``) is stored as ``json.dumps`` writes the list. The first append goes through the
columns API (:func:`append_columns`), a second one (when drawn) through the object API.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from pipelines.db import session_scope
from privacy.ledger import (
    LEDGER_KEY_ENV,
    Disclosure,
    Redaction,
    append_columns,
    append_disclosures,
    append_redactions,
    verify,
)

KEY = "property-chain-key-" + "z" * 20
ZEROS = "0" * 64
PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TABLES = {"disclosures": "disclosure_log", "redactions": "redaction_audit"}
TIMES = {"disclosures": "disclosed_at", "redactions": "recorded_at"}

# Text PostgreSQL can store (no NUL, no lone surrogate), rich in what JSON and COPY escape.
ODD = st.sampled_from(
    [
        *["\t", "\n", "\r", "\r\n", "\\", '"', "'", "\b", "\f", "\v", "\x01", "\x1f", "\x7f"],
        *["\u2028", "é", "中", "😀", "\\N", "\\."],
    ]
)
TEXT = st.lists(
    st.one_of(ODD, st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")),
    max_size=12,
).map("".join)
ZONES = st.sampled_from(
    [dt.UTC, dt.timezone(dt.timedelta(hours=1)), dt.timezone(dt.timedelta(hours=-9, minutes=-30))]
)
TIME = st.builds(
    lambda when, zone: when.replace(tzinfo=dt.UTC).astimezone(zone),
    st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 31)),
    ZONES,
)
DAY = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31))


@st.composite
def _entries(draw: st.DrawFn, ledger: str) -> list[dict[str, Any]]:
    """Entries (column name -> value) of ``ledger``; columns reuse a few values often."""
    count = draw(st.integers(1, 30))

    def column(values: st.SearchStrategy[Any]) -> list[Any]:
        pool = draw(st.lists(values, min_size=1, max_size=4))
        pick = st.one_of(st.sampled_from(pool), values)
        return [draw(pick) for _ in range(count)]

    if ledger == "disclosures":
        columns = {
            "run_id": column(TEXT),
            "program_code": column(TEXT),
            "child_local_id": column(TEXT),
            "recipient_code": column(TEXT),
            "agreement_id": column(TEXT),
            "legal_basis": column(TEXT),
            "purpose": column(TEXT),
            "fields": column(st.lists(TEXT, max_size=4).map(tuple)),
            "action": column(st.sampled_from(["disclose", "delete"])),
            "run_date": column(DAY),
            "disclosed_at": column(TIME),
            "payload_digest": column(TEXT),
        }
    else:
        columns = {
            "run_id": column(TEXT),
            "program_code": column(TEXT),
            "subject": column(TEXT),
            "agreement_id": column(TEXT),
            "field": column(st.none() | TEXT),
            "reason_code": column(TEXT),
            "rule": column(TEXT),
            "recorded_at": column(TIME),
        }
    return [{name: values[i] for name, values in columns.items()} for i in range(count)]


def _oracle_json(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def _oracle_hash(data: bytes, key: bytes | None) -> str:
    if key is None:
        return hashlib.sha256(data).hexdigest()
    mac = crypto_hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize().hex()


def _oracle(entries: list[dict[str, Any]], key: bytes | None) -> list[dict[str, Any]]:
    """The stored rows the format defines, one entry at a time (times as UTC ISO text,
    ``fields`` as its stored JSON text)."""
    rows, prev = [], ZEROS
    for seq, entry in enumerate(entries, start=1):
        content = {name: _oracle_json(v) for name, v in entry.items()}
        content |= {"seq": seq, "prev_hash": prev}
        data = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        entry_hash = _oracle_hash(data.encode("utf-8"), key)
        row = {**content, "entry_hash": entry_hash}
        if "fields" in row:
            row["fields"] = json.dumps(row["fields"])
        rows.append(row)
        prev = entry_hash
    return rows


def _stored(engine: Engine, ledger: str) -> list[dict[str, Any]]:
    """Every stored row in seq order, times as UTC ISO text, ``fields`` as its stored text."""
    table, time = TABLES[ledger], TIMES[ledger]
    extra = ", CAST(fields AS TEXT) AS fields_text" if ledger == "disclosures" else ""
    with engine.connect() as connection:
        rows = connection.execute(text(f"SELECT *{extra} FROM {table} ORDER BY seq")).mappings()
        out = []
        for r in rows:
            row = {k: v for k, v in r.items() if k not in ("id", "fields_text")}
            when = row[time]
            if isinstance(when, str):  # SQLite without the column type: UTC wall time
                when = dt.datetime.fromisoformat(when)
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            row[time] = when.astimezone(dt.UTC).isoformat()
            if isinstance(row.get("run_date"), str):
                row["run_date"] = dt.date.fromisoformat(row["run_date"])
            if "run_date" in row:
                row["run_date"] = row["run_date"].isoformat()
            if "fields" in row:
                row["fields"] = r["fields_text"]
            out.append(row)
    return out


@contextmanager
def _key(keyed: bool) -> Iterator[bytes | None]:
    before = os.environ.pop(LEDGER_KEY_ENV, None)
    if keyed:
        os.environ[LEDGER_KEY_ENV] = KEY
    try:
        yield KEY.encode() if keyed else None
    finally:
        os.environ.pop(LEDGER_KEY_ENV, None)
        if before is not None:
            os.environ[LEDGER_KEY_ENV] = before


def _as_object(ledger: str, entry: dict[str, Any]) -> Disclosure | Redaction:
    return Disclosure(**entry) if ledger == "disclosures" else Redaction(**entry)


@PROPERTY
@given(
    ledger=st.sampled_from(["disclosures", "redactions"]),
    data=st.data(),
    keyed=st.booleans(),
)
def test_when_entries_appended_then_rows_are_the_formats_own_and_verify(
    engine: Engine, ledger: str, data: st.DataObject, keyed: bool
) -> None:
    entries = data.draw(_entries(ledger), label="entries")
    split = data.draw(st.integers(1, len(entries)), label="first append")
    with engine.begin() as connection:
        connection.execute(text(f"DELETE FROM {TABLES[ledger]}"))
    with _key(keyed) as key:
        first = {name: [e[name] for e in entries[:split]] for name in entries[0]}
        with session_scope(engine) as session:
            seqs = append_columns(session, ledger, first)  # type: ignore[arg-type]
        assert seqs == list(range(1, split + 1))
        rest = [_as_object(ledger, e) for e in entries[split:]]
        with session_scope(engine) as session:
            if ledger == "disclosures":
                later = append_disclosures(session, rest)  # type: ignore[arg-type]
            else:
                later = append_redactions(session, rest)  # type: ignore[arg-type]
        assert later == list(range(split + 1, len(entries) + 1))
        assert _stored(engine, ledger) == _oracle(entries, key)
        with session_scope(engine) as session:
            report = verify(session, ledger)  # type: ignore[arg-type]
    assert report.ok and report.entries == len(entries), report.breaks
