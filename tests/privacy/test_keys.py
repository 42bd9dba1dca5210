"""Key providers: environment, key file, chain; missing or unsafe keys fail closed, quietly."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from privacy.errors import InvalidKeyError, MissingKeyError
from privacy.keys import (
    ChainKeyProvider,
    EnvKeyProvider,
    FileKeyProvider,
    KeyProvider,
    RecipientKey,
    default_key_file,
    ensure_demo_key,
    format_key,
    key_name,
    parse_key,
)

SECRET = bytes(range(100, 132))
TEXT = f"k2026:{base64.b64encode(SECRET).decode()}"
ENCODED = TEXT.split(":")[1]


def test_key_name_turns_dashes_into_underscores() -> None:
    assert key_name("VT-AOE") == "DATASHARE_KEY_VT_AOE"
    assert key_name("nm-ececd") == "DATASHARE_KEY_NM_ECECD"


def test_env_provider_reads_the_recipients_variable() -> None:
    key = EnvKeyProvider({"DATASHARE_KEY_VT_AOE": TEXT}).key("VT-AOE")
    assert key == RecipientKey("k2026", SECRET)
    key_id, secret = key  # the contract's (key_id, key_bytes) shape
    assert (key_id, secret) == ("k2026", SECRET)


def test_env_provider_missing_key_names_recipient_and_variable() -> None:
    with pytest.raises(MissingKeyError) as caught:
        EnvKeyProvider({"DATASHARE_KEY_MO_DESE": TEXT}).key("VT-AOE")
    assert caught.value.recipient == "VT-AOE"
    assert "VT-AOE" in str(caught.value)
    assert "DATASHARE_KEY_VT_AOE" in str(caught.value)
    assert ENCODED not in str(caught.value)


def test_env_provider_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATASHARE_KEY_UVM_CRC", TEXT)
    assert EnvKeyProvider().key("UVM-CRC").key_id == "k2026"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(ENCODED, "keyid:base64secret", id="no_key_id"),
        pytest.param(f"bad id:{ENCODED}", "keyid:base64secret", id="space_in_key_id"),
        pytest.param(f"{'k' * 16}:{ENCODED}", "keyid:base64secret", id="key_id_too_long"),
        pytest.param("k1:not*base64!", "not base64", id="not_base64"),
        pytest.param(f"k1:{base64.b64encode(b'short').decode()}", "shorter than 32", id="short"),
    ],
)
def test_malformed_keys_are_refused_without_echoing_them(text: str, message: str) -> None:
    with pytest.raises(InvalidKeyError, match=message) as caught:
        parse_key(text, source="environment variable DATASHARE_KEY_X")
    assert "DATASHARE_KEY_X" in str(caught.value)
    assert text.split(":")[-1] not in str(caught.value)


def test_repr_and_str_hide_the_secret() -> None:
    key = parse_key(TEXT, source="test")
    for shown in (repr(key), str(key), f"{key}", repr([key])):
        assert "k2026" in shown
        assert ENCODED not in shown and repr(SECRET) not in shown


def test_format_and_parse_round_trip() -> None:
    key = RecipientKey("abc_1", SECRET)
    assert parse_key(format_key(key), source="test") == key


def test_ensure_demo_key_creates_a_private_file_and_is_stable(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "datashare" / "keys.json"
    first = ensure_demo_key(path, "VT-AOE")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert ensure_demo_key(path, "VT-AOE") == first
    other = ensure_demo_key(path, "UVM-CRC")
    provider = FileKeyProvider(path)
    assert provider.key("VT-AOE").key_id == first
    assert provider.key("UVM-CRC").key_id == other
    assert provider.key("VT-AOE").secret != provider.key("UVM-CRC").secret
    assert len(provider.key("VT-AOE").secret) == 32
    assert set(json.loads(path.read_text())) == {"VT-AOE", "UVM-CRC"}


def test_file_provider_missing_key_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    with pytest.raises(MissingKeyError, match=r"key file .*keys\.json"):
        FileKeyProvider(path).key("VT-AOE")
    ensure_demo_key(path, "MO-DESE")
    with pytest.raises(MissingKeyError, match="VT-AOE"):
        FileKeyProvider(path).key("VT-AOE")


def test_file_provider_refuses_a_file_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    ensure_demo_key(path, "VT-AOE")
    os.chmod(path, 0o644)
    with pytest.raises(InvalidKeyError, match="chmod 600"):
        FileKeyProvider(path).key("VT-AOE")


@pytest.mark.parametrize(
    "content",
    ["not json", "[1, 2]", '{"VT-AOE": 5}'],
    ids=["not_json", "a_list", "a_number_as_key"],
)
def test_file_provider_refuses_malformed_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(InvalidKeyError):
        FileKeyProvider(path).key("VT-AOE")


def test_default_key_file_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_key_file() == tmp_path / "datashare" / "keys.json"
    assert FileKeyProvider().path == tmp_path / "datashare" / "keys.json"


def test_chain_takes_the_first_provider_that_has_the_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    file_id = ensure_demo_key(path, "VT-AOE")
    env = EnvKeyProvider({"DATASHARE_KEY_VT_AOE": TEXT})
    assert ChainKeyProvider([env, FileKeyProvider(path)]).key("VT-AOE").key_id == "k2026"
    assert ChainKeyProvider([EnvKeyProvider({}), FileKeyProvider(path)]).key("VT-AOE").key_id == (
        file_id
    )


def test_chain_missing_everywhere_lists_every_place(tmp_path: Path) -> None:
    chain = ChainKeyProvider([EnvKeyProvider({}), FileKeyProvider(tmp_path / "keys.json")])
    with pytest.raises(MissingKeyError) as caught:
        chain.key("NM-ECECD")
    assert caught.value.looked_in == (
        "environment variable DATASHARE_KEY_NM_ECECD",
        f"key file {tmp_path / 'keys.json'}",
    )


def test_chain_does_not_hide_a_malformed_key(tmp_path: Path) -> None:
    env = EnvKeyProvider({"DATASHARE_KEY_VT_AOE": "k1:short"})
    with pytest.raises(InvalidKeyError):
        ChainKeyProvider([env, FileKeyProvider(tmp_path / "k.json")]).key("VT-AOE")


def test_providers_satisfy_the_protocol_and_a_small_adapter_does_too() -> None:
    class VariableProvider:  # what an Airflow Variable adapter in pipelines looks like
        def __init__(self, variables: dict[str, str]) -> None:
            self.variables = variables

        def key(self, recipient_code: str) -> RecipientKey:
            name = key_name(recipient_code)
            if name not in self.variables:
                raise MissingKeyError(recipient_code, [f"Airflow Variable {name}"])
            return parse_key(self.variables[name], source=f"Airflow Variable {name}")

    for provider in (EnvKeyProvider({}), FileKeyProvider("/nonexistent"), ChainKeyProvider([])):
        assert isinstance(provider, KeyProvider)
    chain = ChainKeyProvider([EnvKeyProvider({}), VariableProvider({key_name("VT-AOE"): TEXT})])
    assert chain.key("VT-AOE").key_id == "k2026"
