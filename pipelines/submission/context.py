"""Everything a step needs to know about its run, rebuilt from a small dict in each task."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from pipelines.db import make_engine
from pipelines.destinations.base import Destination
from pipelines.destinations.registry import DestinationConfig, build_destination, load_destination
from pipelines.paths import safe_join
from pipelines.settings import Settings, load_settings
from pipelines.staged_store import StagedStore, open_store
from privacy.agreements import Agreement, load_agreement
from privacy.bases import RecipientInfo
from privacy.keys import ChainKeyProvider, EnvKeyProvider, FileKeyProvider, KeyProvider
from schemas import Recipient


class SubmissionError(Exception):
    """A submission cannot go on (fail closed); the message names what and where, no PII."""


@dataclass(frozen=True)
class RunInfo:
    """The PII-free identity of a run, handed between tasks."""

    run_id: str
    destination: str
    run_date: dt.date
    dry_run: bool = False
    output: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {**asdict(self), "run_date": self.run_date.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunInfo:
        """The inverse of :meth:`to_dict` (extra keys ignored)."""
        return cls(
            run_id=data["run_id"],
            destination=data["destination"],
            run_date=dt.date.fromisoformat(data["run_date"]),
            dry_run=bool(data.get("dry_run", False)),
            output=data.get("output", ""),
        )


class RunContext:
    """Settings, destination, agreement, recipient and keys of one run.

    ``RunContext.of(run, settings)`` returns one shared context per run and settings within a
    process, so steps called many times (a delivery per program) read the configuration and
    open the database once.
    """

    def __init__(self, run: RunInfo, settings: Settings | None = None) -> None:
        self.run = run
        self.settings = settings or load_settings()

    @classmethod
    def of(cls, run: dict[str, Any] | RunInfo, settings: Settings | None = None) -> RunContext:
        """The shared context of ``run`` (a dict from a task, or a ``RunInfo``)."""
        info = run if isinstance(run, RunInfo) else RunInfo.from_dict(run)
        return _shared(info, settings or load_settings())

    @cached_property
    def engine(self) -> Engine:
        """The program database."""
        return make_engine(self.settings.database_url)

    @cached_property
    def destination(self) -> DestinationConfig:
        """The destination's validated configuration."""
        return load_destination(self.run.destination, self.settings.destinations_dir)

    @cached_property
    def agreement(self) -> Agreement:
        """The one agreement the destination carries."""
        names = self.destination.agreements
        if len(names) != 1:
            raise SubmissionError(
                f"destination {self.run.destination}: carries {len(names)} agreements; "
                "one agreement per destination is supported"
            )
        agreement = load_agreement(self.settings.agreements_dir / f"{names[0]}.yaml")
        if agreement.recipient != self.destination.recipient:
            raise SubmissionError(
                f"destination {self.run.destination} sends to {self.destination.recipient} but "
                f"agreement {agreement.id} is with {agreement.recipient}"
            )
        return agreement

    @cached_property
    def recipient(self) -> RecipientInfo:
        """The recipient as the registry has it, with its jurisdiction (``state``)."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(
                    Recipient.code, Recipient.category, Recipient.entity_level, Recipient.state
                ).where(Recipient.code == self.destination.recipient)
            ).first()
        if row is None:
            raise SubmissionError(
                f"recipient {self.destination.recipient} is not in the recipients registry"
            )
        return RecipientInfo(row.code, row.category, row.entity_level, row.state)

    @cached_property
    def keys(self) -> KeyProvider:
        """Pseudonymization keys: the environment, the demo key file, then Airflow Variables
        (and through them Airflow's secrets backends)."""
        from pipelines.airflow_keys import VariableKeyProvider

        providers: list[KeyProvider] = [EnvKeyProvider(), FileKeyProvider(self.settings.keys_file)]
        return ChainKeyProvider([*providers, VariableKeyProvider()])

    @cached_property
    def client(self) -> Destination:
        """The destination object, built once per run and process."""
        return self.build_destination()

    def build_destination(self) -> Destination:
        """The destination object; a relative local folder is taken from the project root
        (the folder holding ``config/``), wherever the task runs."""
        config = self.destination
        if config.type.value == "edfi":  # its idempotency ledger lives in the program database
            from pipelines.edfi.destination import EdfiDestination

            return EdfiDestination.from_config(config, engine=self.engine)
        if config.local is not None and not config.local.root.is_absolute():
            root = self.settings.config_dir.parent / config.local.root
            config = config.model_copy(
                update={"local": config.local.model_copy(update={"root": root})}
            )
        return build_destination(config)

    @cached_property
    def staged(self) -> StagedStore:
        """Where this run's encrypted batches are kept (the program database by default)."""
        return open_store(self.settings.staging_store, self.engine, self.settings.staging_dir)

    @property
    def staging_dir(self) -> Path:
        """This run's folder of encrypted staged files."""
        return safe_join(self.settings.staging_dir, self.run.run_id, role="run id")


@lru_cache(maxsize=8)
def _shared(run: RunInfo, settings: Settings) -> RunContext:
    return RunContext(run, settings)
