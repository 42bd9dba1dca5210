"""A staged ledger reads back as the disclosures, redactions and child keys that were staged,
in the compact form (each distinct list of fields written once) and in the plain form a run
staged before it (still read: such a run may be reconciled by a later night)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.staged_store import FolderStore
from pipelines.staging import create_key_file, staging_key
from pipelines.submission.batches import load_ledger
from pipelines.submission.stage_batch import ledger_bytes

FIELDS = st.lists(st.sampled_from(["first_name", "birth_date", "race", "sex"]), max_size=4)
DISCLOSURES = st.lists(
    st.fixed_dictionaries(
        {
            "program_code": st.just("P1"),
            "child_local_id": st.text(min_size=1, max_size=5),
            "fields": FIELDS,
            "digest": st.text(max_size=8),
        }
    ),
    max_size=12,
)
REDACTIONS = [{"subject": "C1", "field": None, "reason": "no_consent", "rule": "r"}]
CHILD_KEYS = {"a.csv": [["P1", "C1"]]}


def _staged(tmp_path: Path, data: bytes) -> dict[str, Any]:
    key_file = create_key_file(tmp_path / "staging.key")
    store = FolderStore(tmp_path / "staged")
    ref = store.put(data, staging_key(key_file), run_id="r1", program="P1", name="ledger.json")
    context = SimpleNamespace(settings=SimpleNamespace(staging_key_file=key_file), staged=store)
    return load_ledger(context, {"ledger": ref.to_dict()})  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(disclosures=DISCLOSURES)
def test_a_compact_ledger_reads_back_as_staged(
    tmp_path_factory: pytest.TempPathFactory, disclosures: list[dict[str, Any]]
) -> None:
    tmp_path = tmp_path_factory.mktemp("ledger")
    plain = {"disclosures": disclosures, "redactions": REDACTIONS, "child_keys": CHILD_KEYS}
    staged = ledger_bytes(disclosures, REDACTIONS, CHILD_KEYS)
    assert _staged(tmp_path, staged) == json.loads(json.dumps(plain))
    distinct = {tuple(d["fields"]) for d in disclosures}
    assert len(json.loads(staged)["field_lists"]) == len(distinct)


def test_a_ledger_staged_in_the_plain_form_still_reads(tmp_path: Path) -> None:
    disclosures = [
        {"program_code": "P1", "child_local_id": "C1", "fields": ["race"], "digest": "d"}
    ]
    plain = {"disclosures": disclosures, "redactions": REDACTIONS, "child_keys": CHILD_KEYS}
    assert _staged(tmp_path, json.dumps(plain).encode()) == plain


def _ledger_as_before(
    disclosures: list[dict[str, Any]],
    redactions: list[dict[str, Any]],
    child_keys: dict[str, list[list[str]]],
) -> bytes:
    """The staged ledger as it was built before the template (the oracle): a compact dict per
    disclosure, the whole ledger written by ``json.dumps``."""
    lists: dict[tuple[str, ...], int] = {}
    compact = [
        {**d, "fields": lists.setdefault(tuple(d["fields"]), len(lists))} for d in disclosures
    ]
    ledger = {
        "disclosures": compact,
        "field_lists": [list(fields) for fields in lists],
        "redactions": redactions,
        "child_keys": child_keys,
    }
    return json.dumps(ledger).encode()


class Code(str):
    """A text subclass (a coded value, say) whose ``str`` is not its text."""

    def __str__(self) -> str:
        return "not me"

    __format__ = None  # type: ignore[assignment]


HOSTILE = st.one_of(
    st.text(max_size=6),
    st.sampled_from(['a"b', "a\\b", "é", "\x00", "\x7f", "tab\t", "%s", "%d", "{}", '", "']),
    st.builds(Code, st.sampled_from(["C1", "x"])),
)
PLAIN = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=6)
ANY_TEXT = st.one_of(PLAIN, HOSTILE)
USUAL = st.fixed_dictionaries(
    {
        "program_code": ANY_TEXT,
        "child_local_id": ANY_TEXT,
        "fields": st.lists(ANY_TEXT, max_size=3),
        "digest": ANY_TEXT,
    }
)
UNUSUAL = st.one_of(  # keys in another order, a key more, a value that is not text
    st.fixed_dictionaries(
        {"digest": PLAIN, "fields": FIELDS, "program_code": PLAIN, "child_local_id": PLAIN}
    ),
    USUAL.map(lambda d: d | {"extra": 1}),
    USUAL.map(lambda d: d | {"digest": None}),
    USUAL.map(lambda d: d | {"child_local_id": 7}),
)
KEYS = st.dictionaries(ANY_TEXT, st.lists(st.tuples(ANY_TEXT, ANY_TEXT), max_size=4), max_size=3)


@settings(max_examples=300, deadline=None)
@given(
    plain=st.lists(
        st.fixed_dictionaries(
            {"program_code": PLAIN, "child_local_id": PLAIN, "fields": FIELDS, "digest": PLAIN}
        ),
        max_size=8,
    ),
    mixed=st.lists(st.one_of(USUAL, UNUSUAL), max_size=4),
    redactions=st.lists(
        st.fixed_dictionaries({"subject": ANY_TEXT, "field": st.none() | ANY_TEXT}), max_size=3
    ),
    child_keys=KEYS,
)
def test_the_staged_ledger_is_byte_for_byte_what_it_was(
    plain: list[dict[str, Any]],
    mixed: list[dict[str, Any]],
    redactions: list[dict[str, Any]],
    child_keys: dict[str, list[tuple[str, str]]],
) -> None:
    """Plain disclosures take the template; any hostile text, key order, extra key or value
    that is not text among them makes them all be written one by one: the bytes are the
    same either way (the child keys staged as pairs, as the stage step hands them over)."""
    listed = {name: [list(pair) for pair in pairs] for name, pairs in child_keys.items()}
    for disclosures in (plain, plain + mixed, mixed):
        expected = _ledger_as_before(disclosures, redactions, listed)
        assert ledger_bytes(disclosures, redactions, child_keys) == expected


@pytest.mark.parametrize(
    "text", ['a"b', "a\\b", "é", "\x00", "\x1f", "\x7f", "\u2028", Code("C1"), 3, None]
)
@pytest.mark.parametrize("key", ["program_code", "child_local_id", "digest"])
def test_one_text_json_escapes_is_written_as_json_writes_it(text: Any, key: str) -> None:
    """Every disclosure plain but one: that one's text (or value) written as JSON does."""
    disclosures = [
        {"program_code": "P1", "child_local_id": f"C{i}", "fields": ["race"], "digest": "d"}
        for i in range(3)
    ]
    disclosures[1][key] = text
    keys = {"a.csv": [("P1", "C1"), ("P1", text)]}
    expected = _ledger_as_before(disclosures, REDACTIONS, {"a.csv": [["P1", "C1"], ["P1", text]]})
    assert ledger_bytes(disclosures, REDACTIONS, keys) == expected  # type: ignore[arg-type]
