"""The part of a destination file Airflow needs to schedule it, and how to read the file.

This module is light on purpose (YAML and pydantic only): the DAG files validate every
destination with :class:`DagSettings` at parse time (:func:`scan_destinations`) without
importing pandas, a database driver or a destination client; the healthy files' DAGs are
built, and the broken ones become one Airflow import error (:class:`BrokenDestinationFiles`).
:class:`~pipelines.destinations.registry.DestinationConfig` extends :class:`DagSettings`, so
the schedule, pool and task settings are declared once, here, and the full model (type
blocks, formats) is checked by ``datashare destinations check``, ``datashare doctor`` and the
run's first task.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.filespec import dotted_key, key_line, parse_yaml
from schemas.identifiers import DESTINATION_NAME

DEFAULT_SCHEDULE = "0 2 * * *"
_CRON_FIELD = r"[\d*/,\-A-Za-z?]+"
_CRON = re.compile(
    rf"^(@(hourly|daily|weekly|monthly|yearly|annually)|{_CRON_FIELD}(\s+{_CRON_FIELD}){{4}})$"
)
_NAME = DESTINATION_NAME


class DestinationConfigError(ValueError):
    """A destination file that cannot be read or does not validate."""


class BrokenDestinationFiles(DestinationConfigError):
    """Destination files that no DAG is built from, one ``file:line: key: problem`` line each:
    what Airflow shows as the import error of ``dags/datashare_destination_errors.py``."""

    def __init__(self, problems: tuple[str, ...], files: int) -> None:
        noun = "file is" if files == 1 else "files are"
        super().__init__(
            f"{files} destination {noun} not scheduled (the other destinations' DAGs are "
            "unaffected); fix each line below, `datashare destinations check` shows the same:\n"
            + "\n".join(problems)
        )


class TaskSettings(BaseModel):
    """How Airflow runs each task of the destination's DAG (the ``tasks:`` block)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retries: int = Field(default=2, ge=0, le=10)
    retry_delay_seconds: int = Field(default=30, ge=1, le=3600)
    max_retry_delay_minutes: int = Field(default=30, ge=1, le=24 * 60)
    execution_timeout_minutes: int = Field(default=60, ge=1, le=24 * 60)
    shard_children: int = Field(default=25_000, ge=1, le=10_000_000)
    """A mapped task prepares (then delivers) a shard of programs holding about this many
    children together (shards are near-equal; a program is never split)."""
    shard_programs: int = Field(default=100, ge=1, le=10_000)
    """And at most this many programs (each program's delivery is its own step)."""

    @property
    def stale_after_minutes(self) -> int:
        """A running run silent this long is taken as crashed (abandoned): no live task runs
        longer than its timeout, nor waits longer than the retry delay between attempts."""
        return self.execution_timeout_minutes + self.max_retry_delay_minutes


class AlertSettings(BaseModel):
    """Who hears of a failed or partial run (the ``alerts:`` block), and through which
    Airflow SMTP connection; no address, no alert (the failure is still logged)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: tuple[str, ...] = ()
    smtp_conn_id: str = "smtp_default"


class DagSettings(BaseModel):
    """What the DAG of one destination is built from; other keys are the full model's."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(pattern=_NAME)
    type: str
    description: str = ""
    enabled: bool = True
    recipient: str = Field(min_length=1)
    schedule: str = DEFAULT_SCHEDULE
    pool_size: int = Field(default=1, ge=1, le=64)
    tasks: TaskSettings = TaskSettings()
    alerts: AlertSettings = AlertSettings()

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        if not _CRON.match(value.strip()):
            raise ValueError("schedule must be a 5-field cron expression or @daily-style preset")
        return value

    @property
    def pool(self) -> str:
        """The Airflow pool of the destination's tasks."""
        return f"datashare_{self.name}"

    @property
    def dag_id(self) -> str:
        """The destination's DAG id."""
        return f"datashare_{self.name}"


def read_destination(path: Path) -> tuple[dict[str, Any], yaml.Node | None]:
    """The file's mapping (with ``name`` set from the file stem) and its YAML node tree."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        raise DestinationConfigError(f"{path}: cannot be read") from None
    data, root = parse_yaml(text, path, DestinationConfigError)
    if not isinstance(data, dict):
        raise DestinationConfigError(f"{path}:1: a destination is a mapping of keys")
    if data.setdefault("name", path.stem) != path.stem:
        raise DestinationConfigError(
            f"{path}:{key_line(root, ('name',))}: name: must be {path.stem}"
        )
    return data, root


def problems(path: Path, root: yaml.Node | None, exc: ValidationError, prefix: tuple = ()) -> str:
    """A validation error as ``file:line: key: message`` lines."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = (*prefix, *err["loc"])
        lines.append(
            f"{path}:{key_line(root, loc)}: {dotted_key(loc) or '(destination)'}: {err['msg']}"
        )
    return "\n".join(lines)


def load_dag_settings(path: Path) -> DagSettings:
    """Read and validate the scheduling part of one destination file (file:line errors)."""
    data, root = read_destination(path)
    try:
        return DagSettings.model_validate(data)
    except ValidationError as exc:
        raise DestinationConfigError(problems(path, root, exc)) from None


@dataclass(frozen=True)
class DestinationScan:
    """Every destination file of a folder, each validated on its own."""

    settings: tuple[DagSettings, ...]
    """The healthy files' settings, by file name."""
    problems: tuple[str, ...]
    """One ``file:line: key: problem`` line per problem of the broken files."""
    broken: tuple[Path, ...]
    """The broken files."""

    def raise_if_broken(self) -> None:
        """Raise :class:`BrokenDestinationFiles` when any file is broken."""
        if self.broken:
            raise BrokenDestinationFiles(self.problems, len(self.broken))


def scan_destinations(folder: Path) -> DestinationScan:
    """Validate every ``*.yaml`` of ``folder`` (hidden files aside) on its own, so that one
    broken file stops only its own destination."""
    settings: list[DagSettings] = []
    problems: list[str] = []
    broken: list[Path] = []
    for path in sorted(Path(folder).glob("*.yaml")):
        if path.name.startswith("."):
            continue
        try:
            settings.append(load_dag_settings(path))
        except DestinationConfigError as error:
            problems.extend(str(error).splitlines())
            broken.append(path)
        except Exception as error:  # isolate: an unforeseen fault stops only this file
            problems.append(f"{path}:1: {type(error).__name__}: {error}")
            broken.append(path)
    return DestinationScan(tuple(settings), tuple(problems), tuple(broken))
