"""Where things are: the database, the policy and destination files, and the local state folder.

Every setting comes from the environment (``DATASHARE_*``) with a default fit for the demo in
the working directory; paths are made absolute so Airflow task processes see the same ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipelines.db import DATABASE_URL_ENV, database_url


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one process."""

    database_url: str
    config_dir: Path
    state_dir: Path

    @property
    def agreements_dir(self) -> Path:
        """Data-sharing agreements, one YAML file each."""
        return self.config_dir / "agreements"

    @property
    def destinations_dir(self) -> Path:
        """Destinations, one YAML file each; one nightly DAG each."""
        return self.config_dir / "destinations"

    @property
    def staging_dir(self) -> Path:
        """Encrypted artifacts handed between tasks; removed after delivery."""
        return self.state_dir / "staging"

    @property
    def staging_store(self) -> str:
        """Where staged batches live: ``database`` (default; every worker reaches it) or
        ``folder`` (``staging_dir``, one host only); see :mod:`pipelines.staged_store`."""
        return os.environ.get("DATASHARE_STAGING_STORE", "database")

    @property
    def reports_dir(self) -> Path:
        """Validation reports and run summaries kept for data managers (no PII)."""
        return self.state_dir / "reports"

    @property
    def keys_file(self) -> Path:
        """The demo's key file (pseudonymization and staging keys); production uses a secrets
        backend or the environment instead."""
        return Path(os.environ.get("DATASHARE_KEYS_FILE", self.state_dir / "keys.json"))

    @property
    def staging_key_file(self) -> Path:
        """The demo's staging key file; production sets ``$DATASHARE_STAGING_KEY`` instead."""
        return Path(os.environ.get("DATASHARE_STAGING_KEY_FILE", self.state_dir / "staging.key"))

    def environ(self) -> dict[str, str]:
        """These settings as environment variables, for child processes such as Airflow."""
        return {
            DATABASE_URL_ENV: self.database_url,
            "DATASHARE_CONFIG_DIR": str(self.config_dir),
            "DATASHARE_STATE_DIR": str(self.state_dir),
            "DATASHARE_KEYS_FILE": str(self.keys_file),
            "DATASHARE_STAGING_KEY_FILE": str(self.staging_key_file),
            "DATASHARE_STAGING_STORE": self.staging_store,
        }


def absolute_sqlite(url: str) -> str:
    """A relative SQLite URL made absolute against the working directory."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix:
        return prefix + str(Path(url.removeprefix(prefix)).resolve())
    return url


def load_settings(database: str | None = None) -> Settings:
    """Settings from the environment (and an explicit database URL, if given)."""
    project = Path(__file__).resolve().parent.parent
    config = os.environ.get("DATASHARE_CONFIG_DIR") or (
        "config" if Path("config/destinations").is_dir() else project / "config"
    )
    state = os.environ.get("DATASHARE_STATE_DIR", ".datashare")
    return Settings(
        database_url=absolute_sqlite(database_url(database)),
        config_dir=Path(config).resolve(),
        state_dir=Path(state).resolve(),
    )
