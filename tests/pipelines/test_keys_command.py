"""``datashare keys list`` names each recipient's key id and where a missing key was looked
for, and never shows a key: not the secret, not its base64, not a piece of either."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.db import make_engine
from schemas import Base, Recipient
from schemas.codes import EntityLevel, RecipientCategory

RECIPIENTS = ["MO-DESE", "UVM-CRC", "VT-AOE"]


def pieces(secret: str, size: int = 8) -> set[str]:
    """Every run of ``size`` characters of ``secret``."""
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'program.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            Recipient.__table__.insert(),
            [
                {
                    "code": code,
                    "name": code,
                    "category": RecipientCategory.STATE_EDUCATION_DATA_SYSTEM,
                    "entity_level": EntityLevel.STATE,
                    "state": code[:2],
                }
                for code in RECIPIENTS
            ],
        )
    engine.dispose()
    for name in [n for n in os.environ if n.startswith(("DATASHARE_", "AIRFLOW_VAR_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DATASHARE_DATABASE_URL", url)
    monkeypatch.setenv("DATASHARE_STATE_DIR", str(tmp_path / "state"))
    secrets = {
        "file": base64.b64encode(bytes(range(1, 33))).decode(),
        "env": base64.b64encode(bytes(range(101, 133))).decode(),
    }
    keys = tmp_path / "state" / "keys.json"
    keys.parent.mkdir()
    keys.write_text(json.dumps({"VT-AOE": f"filekey:{secrets['file']}"}))
    keys.chmod(0o600)
    monkeypatch.setenv("DATASHARE_KEY_MO_DESE", f"envkey:{secrets['env']}")
    return {**secrets, "keys_file": str(keys)}


def test_keys_list_shows_key_ids_and_where_it_looked_never_a_key(
    environment: dict[str, str],
) -> None:
    result = CliRunner().invoke(app, ["keys", "list"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.output.splitlines() if "-" in line[:12]}
    assert "filekey" in lines["VT-AOE"] and "envkey" in lines["MO-DESE"]
    assert "missing" in lines["UVM-CRC"] and "DATASHARE_KEY_UVM_CRC" in lines["UVM-CRC"]
    flat = "".join(result.output.split())  # a secret wrapped across lines is still found
    assert environment["keys_file"] in flat
    for name in ("file", "env"):
        secret = environment[name]
        raw = base64.b64decode(secret)
        leaked = [p for p in pieces(secret) | pieces(raw.hex()) if p in flat]
        assert not leaked, f"a piece of the {name} key is shown"
