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
