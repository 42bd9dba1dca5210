"""Destination configs (``config/destinations/*.yaml``) and the factory that builds them.

One YAML file per destination; its name is the file stem. Common keys: ``type`` (``local``,
``sftp``, ``staging_db``, ``edfi``), ``recipient`` (recipient code), ``agreements`` (the
agreement ids it carries), ``formats`` (file specs it sends, ``schemas/formats``), ``schedule``
(cron, nightly by default), ``pool_size`` (the Airflow pool's slots: programs delivered at
once), ``tasks`` (how Airflow runs each task, :class:`TaskSettings`), ``retries``,
``retry_backoff_seconds`` and ``timeout_seconds`` (one call of the destination's client: an
SFTP upload, a database write, an HTTP request, retried inside one task attempt), ``enabled``
(false: an example or paused destination that no schedule runs; it can still be dry-run). The
two kinds of retry are separate on purpose: a task attempt makes up to ``retries + 1`` client
calls, and Airflow makes up to ``tasks.retries + 1`` task attempts. ``resend``: ``changes``, the
default, sends only what differs from what the destination holds now (nothing when nothing
does); ``full`` sends everything every night, for states that want the full file each time.
The type's own settings sit under a key named like the type::

    type: sftp
    sftp:
      host: sftp.example.org
      known_hosts: /etc/datashare/known_hosts
      username: headstart
      private_key_env: DATASHARE_SFTP_KEY     # the variable's name, never the key

Secrets are referenced by environment variable or Airflow connection id only. Errors
(:class:`DestinationConfigError`) name the file, the line and the key.
"""

from __future__ import annotations

import importlib
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipelines.destinations.base import Destination
from pipelines.destinations.schedule import (
    DEFAULT_SCHEDULE,
    DagSettings,
    DestinationConfigError,
    TaskSettings,
    problems,
    read_destination,
)
from pipelines.destinations.sftp_settings import SftpSettings
from pipelines.destinations.staging_db import StagingDbSettings
from schemas.filespec import FORMATS_DIR, FileSpecError, key_line, load_spec
from schemas.identifiers import is_destination_name

__all__ = [
    "DEFAULT_SCHEDULE",
    "DestinationConfig",
    "DestinationConfigError",
    "DestinationType",
    "TaskSettings",
    "build_destination",
    "list_destinations",
    "load_destination",
]

DEFAULT_FOLDER = Path("config/destinations")


class DestinationType(StrEnum):
    """Kinds of destination."""

    LOCAL = "local"
    SFTP = "sftp"
    STAGING_DB = "staging_db"
    EDFI = "edfi"


class Resend(StrEnum):
    """What a night sends: what changed since the destination's last delivered state, or all."""

    CHANGES = "changes"
    FULL = "full"


class LocalSettings(BaseModel):
    """The ``local`` settings: the folder batches land in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: Path


class DestinationConfig(DagSettings):
    """One destination: who receives, under which agreements, what, when and how. The
    schedule, pool and task settings are :class:`DagSettings`'s (declared once)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: DestinationType  # type: ignore[assignment]
    agreements: tuple[str, ...] = Field(min_length=1)
    formats: tuple[str, ...] = ()
    retries: int = Field(default=2, ge=0, le=10)
    retry_backoff_seconds: float = Field(default=2.0, ge=0)
    timeout_seconds: float = Field(default=60.0, gt=0)
    resend: Resend = Resend.CHANGES
    local: LocalSettings | None = None
    sftp: SftpSettings | None = None
    staging_db: StagingDbSettings | None = None
    edfi: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> DestinationConfig:
        blocks = {t.value: getattr(self, t.value) for t in DestinationType}
        if blocks[self.type.value] is None:
            raise ValueError(f"type {self.type.value} needs a '{self.type.value}:' settings block")
        others = [k for k, v in blocks.items() if v is not None and k != self.type.value]
        if others:
            raise ValueError(f"settings for another type: {', '.join(others)}")
        if self.type is not DestinationType.EDFI and not self.formats:
            raise ValueError("formats: name the file specs this destination receives")
        if len(set(self.formats)) != len(self.formats):
            raise ValueError("formats: a spec is named twice")
        return self

    @property
    def settings(self) -> Any:
        """The settings block of this destination's type."""
        return getattr(self, self.type.value)


def load_destination(name: str, folder: Path = DEFAULT_FOLDER) -> DestinationConfig:
    """Read and validate ``<folder>/<name>.yaml``, including that its formats are known specs.

    ``name`` is a destination name (``schemas/identifiers.py``), never a path: it names run
    logs, folders and the DAG, so anything else is refused here, where it enters."""
    if not is_destination_name(name):
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise DestinationConfigError(
            f"{shown!r} is not a destination name: give a file name of {folder} without .yaml "
            "(a-z, 0-9, '_', '-'), not a path"
        )
    path = Path(folder) / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(list_destinations(Path(folder))) or "none"
        raise DestinationConfigError(f"{path}: no such destination (known: {known})")
    data, root = read_destination(path)
    try:
        config = DestinationConfig.model_validate(data)
    except ValidationError as exc:
        raise DestinationConfigError(_problems(path, root, exc)) from None
    for index, spec in enumerate(config.formats):
        try:
            load_spec(spec, FORMATS_DIR)
        except FileSpecError:
            raise DestinationConfigError(
                f"{path}:{key_line(root, ('formats', index))}: formats[{index}]: "
                f"no file spec named {spec}"
            ) from None
    if config.type is DestinationType.EDFI and config.edfi is not None:
        _check_edfi(path, root, config)
    if config.type is DestinationType.STAGING_DB:
        _check_staging_dates(path, root, config)
        _check_shared_database(path, root, config)
    return config


_problems = problems


def _check_edfi(path: Path, root: yaml.Node | None, config: DestinationConfig) -> None:
    """Validate the ``edfi`` block with the Ed-Fi settings model when that module exists."""
    try:
        module = importlib.import_module("pipelines.edfi.settings")
    except ImportError:
        return
    model = getattr(module, "EdfiSettings", None)
    if model is None:
        return
    try:
        model.model_validate({"name": config.name, **(config.edfi or {})})
    except ValidationError as exc:
        raise DestinationConfigError(_problems(path, root, exc, ("edfi",))) from None


def _check_staging_dates(path: Path, root: yaml.Node | None, config: DestinationConfig) -> None:
    """Refuse a staging database whose agreement sends a date cut to the month into a date
    column (SQL ``DATE``: :func:`~pipelines.destinations.staging_db.month_cut_columns`), one
    ``file:line`` problem per agreement, field and column. The agreements are read from the
    config folder's ``agreements/``; one that cannot be read is ``datashare policy check``'s
    to report (and stops the run where it is loaded)."""
    from pipelines.destinations.staging_db import month_cut_columns
    from privacy.agreements import AgreementError, load_agreement

    specs = [load_spec(name, FORMATS_DIR) for name in config.formats]
    problems = []
    for index, name in enumerate(config.agreements):
        file = path.parent.parent / "agreements" / f"{name}.yaml"
        try:
            agreement = load_agreement(file)
        except (AgreementError, OSError):
            continue
        transforms = {field: spec.name for field, spec in agreement.fields.items()}
        where = f"{path}:{key_line(root, ('agreements', index))}: agreements[{index}]"
        for spec, column in month_cut_columns(specs, transforms):
            field = column.source
            if transforms.get(field) == "month":
                what = f"agreement {name} ({file}) sends {field} cut to the month"
            else:
                what = f"spec {spec.name} writes {field} without its day"
            problems.append(
                f"{where}: {what}, but {spec.name}.{column.name} is a date column (SQL DATE) "
                "of this staging database, which cannot hold a month without making up a day "
                "(rule month_in_date_column); send it to a file drop (its date columns write "
                "the month as the month), or use a spec whose column for it is text"
            )
    if problems:
        raise DestinationConfigError("\n".join(problems))


SHARED_RULE = "staging_db_one_agreement"


def _check_shared_database(path: Path, root: yaml.Node | None, config: DestinationConfig) -> None:
    """Refuse a staging database another enabled destination file of the folder writes to
    under different agreements or table layouts (``formats``), naming both files, the
    database (never a password) and the rule: its markers are read by program whoever wrote
    them (:mod:`pipelines.submission.staging_copy`), so either file would misjudge what the
    state holds under the other's agreement. The same agreement and formats under two names
    (a renamed file, or two files) is allowed. The database is recognised by the name of its
    variable or connection, and by its host, port and database (a SQLite file's real path)
    when that name resolves here, whichever names the two files use
    (:func:`~pipelines.destinations.staging_db.database_identity`). Another file that cannot
    be read is its own problem (reported where it is loaded). Files elsewhere (another
    host's folder) are the database's own record's to catch, at the first write
    (rule ``staging_db_agreement_changed``)."""
    from pipelines.destinations.staging_db import database_identity

    assert config.staging_db is not None
    if not config.enabled:
        return
    mine, shown = database_identity(config.staging_db)
    problems = []
    for other_path in sorted(path.parent.glob("*.yaml")):
        if other_path.name.startswith(".") or other_path.resolve() == path.resolve():
            continue
        try:
            data, _ = read_destination(other_path)
            other = DestinationConfig.model_validate(data)
        except (DestinationConfigError, ValidationError):
            continue
        if other.type is not DestinationType.STAGING_DB or not other.enabled:
            continue
        assert other.staging_db is not None
        if not database_identity(other.staging_db)[0] & mine:
            continue
        differs = []
        if sorted(other.agreements) != sorted(config.agreements):
            differs.append(
                f"agreements {', '.join(config.agreements)} / {', '.join(other.agreements)}"
            )
        if sorted(other.formats) != sorted(config.formats):
            differs.append(
                f"table layouts (formats {', '.join(config.formats)} / {', '.join(other.formats)})"
            )
        if differs:
            problems.append(
                f"{path}:{key_line(root, ('staging_db',))}: staging_db: destinations "
                f"{config.name} ({path}) and {other.name} ({other_path}) write to the same "
                f"staging database ({shown}) with different {' and '.join(differs)}; its "
                "markers are read by program whoever wrote them, so each would misjudge what "
                f"the state holds under the other's agreement (rule {SHARED_RULE}): give each "
                "its own staging database, or the same agreement and formats (for a renamed "
                "file, remove the old one)"
            )
    if problems:
        raise DestinationConfigError("\n".join(problems))


def list_destinations(folder: Path = DEFAULT_FOLDER) -> list[str]:
    """The destination names in ``folder`` (file stems), sorted."""
    return sorted(p.stem for p in Path(folder).glob("*.yaml") if not p.name.startswith("."))


def build_destination(config: DestinationConfig) -> Destination:
    """The destination object ``config`` describes."""
    if config.type is DestinationType.LOCAL:
        from pipelines.destinations.local import LocalFolderDestination

        assert config.local is not None
        return LocalFolderDestination(config.name, config.local.root)
    if config.type is DestinationType.SFTP:
        from pipelines.destinations.sftp import SftpDestination

        assert config.sftp is not None
        return SftpDestination(
            config.name,
            config.sftp,
            timeout=config.timeout_seconds,
            retries=config.retries,
            retry_backoff=config.retry_backoff_seconds,
        )
    if config.type is DestinationType.STAGING_DB:
        from pipelines.destinations.staging_db import StagingDbDestination

        assert config.staging_db is not None
        specs = [load_spec(name) for name in config.formats]
        return StagingDbDestination(
            config.name,
            config.staging_db,
            specs,
            timeout=config.timeout_seconds,
            retries=config.retries,
            retry_backoff=config.retry_backoff_seconds,
            agreements=config.agreements,
            formats=config.formats,
        )
    return _build_edfi(config)


def _build_edfi(config: DestinationConfig) -> Destination:
    """Ed-Fi destinations come from ``pipelines.edfi.destination``: its
    ``build_destination(config)``, else ``EdfiDestination.from_config(config)``."""
    try:
        module = importlib.import_module("pipelines.edfi.destination")
    except ImportError as exc:
        raise DestinationConfigError(
            f"destination {config.name}: type edfi needs pipelines.edfi.destination, which "
            f"is not available ({exc.name})"
        ) from None
    builder = getattr(module, "build_destination", None)
    if builder is None and hasattr(module, "EdfiDestination"):
        builder = getattr(module.EdfiDestination, "from_config", None)
    if builder is None:
        raise DestinationConfigError(
            f"destination {config.name}: pipelines.edfi.destination has no "
            "build_destination(config) or EdfiDestination.from_config(config)"
        )
    destination: Destination = builder(config)
    return destination
