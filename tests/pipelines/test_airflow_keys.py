"""Keys from Airflow Variables, through Airflow's own secrets backends (here: environment)."""

from __future__ import annotations

import base64

import pytest

from pipelines.airflow_keys import VariableKeyProvider
from privacy.errors import MissingKeyError


def test_when_variable_set_then_its_key_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = bytes(range(32))
    text = "k2026:" + base64.b64encode(secret).decode()
    monkeypatch.setenv("AIRFLOW_VAR_DATASHARE_KEY_VT_AOE", text)
    key = VariableKeyProvider().key("VT-AOE")
    assert key.key_id == "k2026" and key.secret == secret
    assert base64.b64encode(secret).decode() not in repr(key)


def test_when_variable_missing_then_fails_closed_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_VAR_DATASHARE_KEY_MO_DESE", raising=False)
    with pytest.raises(MissingKeyError, match="Airflow Variable DATASHARE_KEY_MO_DESE"):
        VariableKeyProvider().key("MO-DESE")
