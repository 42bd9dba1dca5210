"""Two destination files on one staging database: refused at load when their agreements or
table layouts differ (rule ``staging_db_one_agreement``), naming both files, the database
(never a password) and the rule; the same agreement and formats under two names is allowed.

The database is recognised by its URL (backend, host, port, database; a SQLite file's path),
whatever environment variable names it, or by the variable's name when it is not set.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.destinations.registry import DestinationConfigError, load_destination

PG = "postgresql+psycopg://{user}:{password}@127.0.0.1:5432/{db}"
SECRET = "s3cr3t-pw"
A = ("vt-aoe-ecids", ["hs_child_identity", "hs_enrollment"])


def write(
    folder: Path, name: str, env: str, agreement: str, formats: list[str], **extra: object
) -> None:
    data = {
        "type": "staging_db",
        "recipient": "VT-AOE",
        "agreements": [agreement],
        "formats": formats,
        "staging_db": {"url_env": env},
        **extra,
    }
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "agreements").mkdir()
    destinations = tmp_path / "destinations"
    destinations.mkdir()
    return destinations


def sqlite(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}"


CASES = [
    # id, url of p, url of q, q's agreement, q's formats, q enabled, refused
    ("sqlite-other-agreement", "same.db", "same.db", "mo-dese-consent", A[1], True, True),
    ("sqlite-other-layout", "same.db", "same.db", A[0], ["hs_child_identity"], True, True),
    ("sqlite-same-agreement", "same.db", "same.db", A[0], A[1], True, False),
    ("sqlite-other-database", "one.db", "two.db", "mo-dese-consent", A[1], True, False),
    ("sqlite-other-disabled", "same.db", "same.db", "mo-dese-consent", A[1], False, False),
    ("pg-other-agreement", "pg:test:alice", "pg:test:bob", "mo-dese-consent", A[1], True, True),
    ("pg-same-agreement", "pg:test:alice", "pg:test:bob", A[0], A[1], True, False),
    ("pg-other-database", "pg:test:alice", "pg:other:alice", "mo-dese-consent", A[1], True, False),
]


def url(tmp_path: Path, spec: str) -> str:
    if spec.startswith("pg:"):
        _, db, user = spec.split(":")
        return PG.format(user=user, password=SECRET, db=db)
    return sqlite(tmp_path, spec)


@pytest.mark.parametrize(
    ("p_url", "q_url", "agreement", "formats", "enabled", "refused"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_two_files_on_one_staging_database_need_the_same_agreement_and_layout(
    folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    p_url: str,
    q_url: str,
    agreement: str,
    formats: list[str],
    enabled: bool,
    refused: bool,
) -> None:
    """Each file names its own environment variable: the database is told by its URL."""
    monkeypatch.setenv("TEST_P_URL", url(tmp_path, p_url))
    monkeypatch.setenv("TEST_Q_URL", url(tmp_path, q_url))
    write(folder, "p", "TEST_P_URL", *A)
    write(folder, "q", "TEST_Q_URL", agreement, formats, enabled=enabled)
    if not refused:
        assert load_destination("p", folder).name == "p"
        assert load_destination("q", folder).name == "q"
        return
    for name, other in (("p", "q"), ("q", "p")):
        with pytest.raises(DestinationConfigError) as caught:
            load_destination(name, folder)
        message = str(caught.value)
        assert f"{folder / name}.yaml:" in message, "file and line of the file loaded"
        assert str(folder / f"{other}.yaml") in message, "names the other file"
        assert "rule staging_db_one_agreement" in message
        assert SECRET not in message and "alice" not in message and "bob" not in message
        if p_url.startswith("pg:"):
            assert "host 127.0.0.1:5432, database test" in message
        else:
            assert f"SQLite file {tmp_path / p_url}" in message
        wrong = "table layouts" if agreement == A[0] else "agreements"
        assert wrong in message


def test_the_same_variable_unset_still_names_one_database(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two files naming one environment variable write to one database, set here or not."""
    monkeypatch.delenv("TEST_SHARED_URL", raising=False)
    write(folder, "p", "TEST_SHARED_URL", *A)
    write(folder, "q", "TEST_SHARED_URL", "mo-dese-consent", A[1])
    with pytest.raises(DestinationConfigError, match="environment variable TEST_SHARED_URL"):
        load_destination("p", folder)


def test_a_renamed_file_alone_loads(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_P_URL", sqlite(tmp_path, "same.db"))
    write(folder, "p", "TEST_P_URL", "mo-dese-consent", A[1])
    (folder / "p.yaml").rename(folder / "p-renamed.yaml")
    write(folder, "q", "TEST_P_URL", "mo-dese-consent", A[1])
    assert load_destination("p-renamed", folder).agreements == ("mo-dese-consent",)
