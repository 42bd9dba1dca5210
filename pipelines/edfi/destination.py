"""The Ed-Fi API destination: permitted rows in, resources POSTed in dependency order.

``deliver(batch)`` maps the batch's ``records`` artifact (:mod:`pipelines.edfi.mapping`),
skips what the ledger says the API already holds unchanged, sends the rest resource by resource
(programs, students, school associations, then the others), each resource's records by
``concurrency`` worker threads sharing one client and token, and records what the API accepted
in the ledger from a background thread while the next resource goes out (the ledger is
complete when ``deliver`` returns; a crash in between is reconciled by ``holds`` and by
upserts being idempotent). A record the API refuses (4xx)
is reported with the server's problem message and its child's later resources are not sent
(the API would refuse them: 403/409). Retries ran out on a transient fault: the batch stops with
:class:`TransientDeliveryError` after recording what was accepted; a rerun sends the rest.

The result is an :class:`EdfiDeliveryResult`: ``accepted`` = children of whom the API now holds
at least one resource of this batch (sent now or held unchanged), ``rejected`` = children with a
refused resource (problem text, no values), ``carried`` = per child, the ``resource:field``
pairs sent now (what the disclosure log records), ``replaced`` = per child, resources deleted
because tonight's natural key differs (a corrected entry date makes a new school association;
the old one is deleted after the new ones went, dependents first), plus ``not_sent`` (what
mapping withheld, for the redaction audit) and ``resources`` (one outcome per resource). A
child none of whose resources the API holds now (refused, or mapping withheld them all) keeps
its old copies. ``resend_all`` (the destination's ``resend: full``) sends every resource even
when the ledger says the API holds it unchanged.

``withdraw(child_keys)`` deletes what the ledger says the API holds for children whose consent
was revoked (when the agreement says ``delete_on_revocation``), latest dependents first, and
reports each deletion for the disclosure log. ``write_dry_run(batch, folder)`` writes the exact
payloads, one JSONL file per resource, without touching the network.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from pipelines.collector import frozen
from pipelines.destinations.base import (
    Batch,
    ChildKey,
    DeliveryError,
    TerminalDeliveryError,
)
from pipelines.edfi.client import ClientCredentials, EdfiClient, Outcome
from pipelines.edfi.ledger import DELETED, SENT, LedgerEntry, SentLedger
from pipelines.edfi.mapping import (
    RESOURCE_FIELDS,
    SSA,
    STUDENTS,
    EdfiMapper,
    Mapped,
    MappingError,
    Payload,
)
from pipelines.edfi.openapi import SERVER_MANAGED
from pipelines.edfi.results import (
    DryRun,
    EdfiDeliveryResult,
    ResourceResult,
    WithdrawResult,
    summarize,
)
from pipelines.edfi.settings import EdfiSettings

log = logging.getLogger(__name__)


class EdfiDestination:
    """An Ed-Fi ODS/API (Data Standard 5.x) or Ed-Fi API 8 (6.x) destination."""

    def __init__(
        self,
        settings: EdfiSettings,
        engine: Engine,
        *,
        credentials: ClientCredentials | None = None,
        client: EdfiClient | None = None,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.mapper = EdfiMapper(settings)
        self.ledger = SentLedger(engine, settings.name)
        self._credentials = credentials
        self._client = client
        self._client_lock = threading.Lock()
        self.resend_all = False
        self._read: dict[tuple[str, str, str], dict[str, Any] | None] = {}
        """The API reads of the last :meth:`holds`, for the :meth:`carried_by` after it."""

    @classmethod
    def from_config(
        cls, config: Any, *, engine: Engine | None = None, **kwargs: Any
    ) -> EdfiDestination:
        """From the destination registry's config (its ``edfi`` block plus ``name`` and, unless
        the block sets one, ``timeout_seconds``) or from a plain mapping of settings. The
        ledger lives in the program's database (``DATASHARE_DATABASE_URL``) unless ``engine``
        is given."""
        block = getattr(config, "edfi", None)
        if block is None and isinstance(config, Mapping):
            block = config.get("edfi", config)
        if block is None:
            raise TerminalDeliveryError("Ed-Fi destination config without settings")
        values = dict(block)
        name = getattr(config, "name", None) or (
            config.get("name") if isinstance(config, Mapping) else None
        )
        values.setdefault("name", name)
        timeout = getattr(config, "timeout_seconds", None)
        if timeout is not None:
            values.setdefault("timeout_seconds", timeout)
        settings = EdfiSettings.model_validate(values)
        if engine is None:
            from pipelines.db import make_engine
            from pipelines.settings import load_settings

            engine = make_engine(load_settings().database_url)
        destination = cls(settings, engine, **kwargs)
        destination.resend_all = str(getattr(config, "resend", "changes")) == "full"
        return destination

    @property
    def client(self) -> EdfiClient:
        """The API client, made (and credentials read) on first use."""
        with self._client_lock:
            if self._client is None:
                self._client = EdfiClient.from_settings(self.settings, self._credentials)
            return self._client

    def close(self) -> None:
        """Close the client's connections."""
        if self._client is not None:
            self._client.close()

    def map(self, batch: Batch) -> Mapped:
        """The payloads ``batch`` becomes and what was withheld (no network)."""
        try:
            return self.mapper.map_batch(batch)
        except MappingError as error:
            raise TerminalDeliveryError(f"{self.name}: {error}") from error

    def write_dry_run(self, batch: Batch, folder: Path | str) -> DryRun:
        """Write the exact payloads ``deliver`` would send (ignoring the ledger), one JSONL
        file per resource named after it (``students.jsonl``, ...), readable by the owner
        only: they hold PII."""
        mapped = self.map(batch)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files: dict[str, Path] = {}
        for resource, payloads in mapped.by_resource(self.mapper.order):
            path = folder / f"{resource}.jsonl"
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                for payload in payloads:
                    handle.write(json.dumps(payload.body, ensure_ascii=False) + "\n")
            files[resource] = path
        return DryRun(files, mapped.not_sent)

    def deliver(self, batch: Batch) -> EdfiDeliveryResult:
        """Send ``batch``; unchanged records are not resent (see module doc)."""
        mapped = self.map(batch)
        result = EdfiDeliveryResult(
            location=self.settings.base_url,
            not_sent=list(mapped.not_sent),
            unmapped_fields=mapped.unmapped_fields,
            carried={},
        )
        sending = _Sending(self.ledger.held_by_program(batch.program_code))
        with frozen(), _LedgerWriter(self.ledger, batch.run_id) as writer:
            self._send_mapped(batch, mapped, sending, result, writer)
        summarize(result)
        self._replace_stale(mapped, sending, result, batch.run_id)
        result.sent_nothing_new = sending.posted == 0 and not result.replaced
        log.info("%s %s: %s", self.name, batch.program_code, result.counts())
        return result

    def _send_mapped(
        self,
        batch: Batch,
        mapped: Mapped,
        sending: _Sending,
        result: EdfiDeliveryResult,
        writer: _LedgerWriter,
    ) -> None:
        """Send the payloads resource by resource, in dependency order."""
        for resource, payloads in mapped.by_resource(self.mapper.order):
            todo: list[Payload] = []
            for payload in payloads:
                key = (payload.resource, payload.key_digest)
                prior = sending.known.get(key)
                if payload.child_key in sending.blocked:
                    problem = sending.blocked[payload.child_key]
                    result.resources.append(_result(payload, "skipped", problem=problem))
                elif (
                    not self.resend_all
                    and prior
                    and prior.status == SENT
                    and (prior.payload_digest == payload.payload_digest)
                ):
                    result.resources.append(_result(payload, "unchanged"))
                else:
                    todo.append(payload)
            sending.posted += len(todo)
            outcomes, error = self._post_all(resource, todo)
            writer.put(self._record(batch, result, sending.blocked, outcomes))
            if error is not None:
                raise error

    def holds(self, batch: Batch) -> bool:
        """Whether the API holds every resource of ``batch`` as mapped now: by the ledger, and
        for what the ledger lacks (a crash before it was written), by reading the API."""
        mapped = self.map(batch)
        known = self.ledger.lookup(
            ((p.resource, p.key_digest) for p in mapped.payloads), batch.program_code
        )
        missing = [
            p
            for p in mapped.payloads
            if not (
                (e := known.get((p.resource, p.key_digest)))
                and e.status == SENT
                and e.payload_digest == p.payload_digest
            )
        ]
        self._read = {}
        if not missing:
            return True
        with ThreadPoolExecutor(self.settings.concurrency) as pool:
            found = list(pool.map(self._held_item, missing))
        # kept for carried_by, which the reconciliation of the same batch calls next: each
        # resource is read from the API once (by its resource, natural key and content)
        self._read = {_read_key(p): item for p, item in zip(missing, found, strict=True)}
        return all(item is not None for item in found)

    def carried_by(
        self, batch: Batch, run_id: str, *, held_by_api: bool, record: bool = True
    ) -> dict[ChildKey, tuple[str, ...]]:
        """Per child, the ``resource:field`` pairs of ``batch`` that run ``run_id`` left at the
        API (what its disclosure log would have carried had it not crashed first): the
        resources the ledger says that run sent as mapped now, and those the ledger does not
        have as mapped now (a crash after the API accepted them and before the ledger was
        written) that the API holds exactly as mapped: all of them when ``held_by_api`` (the
        whole batch is there, :meth:`holds` read it), otherwise each asked of the API.

        Those the API holds are written to the ledger under ``run_id`` (with the id the API
        gave them), so the next delivery does not send them again (and log them a night late,
        under its own date) and a withdrawal finds them to delete. A resource the API does not
        hold is left out: the next delivery sends it and logs it then. A resource the API
        holds as mapped is taken to be the crashed run's: only it sends this batch's records
        to this API, and the ledger shows no other run sent them so. Without ``record`` (a dry
        run) the ledger is only read."""
        mapped = self.map(batch)
        by_run = self.ledger.sent_by(run_id, batch.program_code)
        known = self.ledger.lookup(
            ((p.resource, p.key_digest) for p in mapped.payloads), batch.program_code
        )

        def recorded(payload: Payload) -> bool:
            entry = known.get((payload.resource, payload.key_digest))
            return (
                entry is not None
                and entry.status == SENT
                and entry.payload_digest == payload.payload_digest
            )

        unlogged = [
            p
            for p in mapped.payloads
            if (p.resource, p.key_digest, p.payload_digest) not in by_run and not recorded(p)
        ]
        found = self._held_items(unlogged, assume=held_by_api)
        recovered = []
        for payload, item in zip(unlogged, found, strict=True):
            if item is None:
                continue
            prior = known.get((payload.resource, payload.key_digest))
            resource_id = item.get("id") or (prior.resource_id if prior else None)
            outcome = Outcome(200, str(resource_id) if resource_id else None)
            recovered.append(_entry(payload, outcome, batch.program_code))
        if record:
            self.ledger.record(recovered, run_id)
        here = {(e.resource, e.key_digest) for e in recovered}
        carried: dict[ChildKey, tuple[str, ...]] = {}
        for payload in mapped.payloads:
            if payload.child_key is None:
                continue
            key = (payload.resource, payload.key_digest)
            if (*key, payload.payload_digest) in by_run or key in here:
                carried[payload.child_key] = carried.get(payload.child_key, ()) + tuple(
                    f"{payload.resource}:{name}" for name in payload.fields
                )
        return carried

    def _held_items(
        self, payloads: Sequence[Payload], *, assume: bool
    ) -> list[dict[str, Any] | None]:
        """Per payload, the API's resource holding it exactly as mapped (``None`` when the
        API does not); with ``assume`` (the API was just read: it holds them all) an empty
        one each, without asking again."""
        read, self._read = self._read, {}
        if assume:
            return [read.get(_read_key(p)) or {} for p in payloads]
        asking = [p for p in payloads if _read_key(p) not in read]
        if asking:
            with ThreadPoolExecutor(self.settings.concurrency) as pool:
                read |= {
                    _read_key(p): item
                    for p, item in zip(asking, pool.map(self._held_item, asking), strict=True)
                }
        return [read[_read_key(p)] for p in payloads]

    def withdraw(
        self, child_keys: Iterable[ChildKey], *, run_id: str = "withdraw"
    ) -> list[WithdrawResult]:
        """Delete every resource the ledger says the API holds for these children (consent
        revoked and the agreement says ``delete_on_revocation``): the other associations
        first, then school associations, then students. Each deletion is reported for the
        disclosure log; the ledger marks them ``deleted`` by ``run_id`` (the run withdrawing:
        :meth:`withdrawn_by` finds them should it crash before logging)."""
        entries = [e for e in self.ledger.for_children(child_keys) if e.child_key is not None]
        results = self._delete_entries(entries, run_id)
        log.info(
            "%s withdraw: %d deleted, %d failed",
            self.name,
            sum(r.status != "failed" for r in results),
            sum(r.status == "failed" for r in results),
        )
        return results

    def withdrawn_by(
        self, run_id: str, program_code: str, children: Iterable[ChildKey]
    ) -> tuple[set[ChildKey], dict[ChildKey, tuple[str, ...]]]:
        """What run ``run_id`` deleted of ``program_code`` before it could log it (a crash):
        the ``children`` it was withdrawing of whom the API holds nothing any more (by the
        ledger; a child still partly held is withdrawn, and logged, by the run that deletes
        the rest), and, per other child, the resources of old copies it deleted (a changed
        natural key)."""
        wanted = set(children)
        deleted: dict[ChildKey, set[str]] = {}
        for entry in self.ledger.deleted_by(run_id, program_code):
            if entry.child_key is not None:
                deleted.setdefault(entry.child_key, set()).add(entry.resource)
        left = {e.child_key for e in self.ledger.for_children(wanted & set(deleted))}
        withdrawn = {k for k in deleted if k in wanted and k not in left}
        replaced = {k: tuple(sorted(v)) for k, v in deleted.items() if k not in wanted}
        return withdrawn, replaced

    def sent_fields_by(
        self, run_id: str, program_code: str, permitted: Iterable[str]
    ) -> dict[ChildKey, tuple[str, ...]]:
        """Per child, the ``resource:field`` pairs of what run ``run_id`` left at the API by
        the ledger alone (its staged batch lost): each resource it sent that the API still
        holds, with exactly the fields its bodies carried, as the ledger wrote them when they
        were sent (what the run's own log would have said; not narrowed by ``permitted``: a
        field that left is logged even if the agreement has since dropped it).

        A ledger row written before the ledger kept fields (migration 0014: ``fields`` NULL)
        says only which resource went: such a resource is logged, as before, with every
        ``permitted`` field a resource of its kind can carry
        (:data:`~pipelines.edfi.mapping.RESOURCE_FIELDS`). That may over-state what was sent,
        never under-state it."""
        allowed = frozenset(permitted)
        fields = RESOURCE_FIELDS[self.settings.data_standard]
        sent = self.ledger.sent_by_children(run_id, program_code)
        carried: dict[ChildKey, tuple[str, ...]] = {}
        for (key, resource), known in sorted(sent.items()):
            names = known if known is not None else sorted(fields.get(resource, set()) & allowed)
            carried[key] = carried.get(key, ()) + tuple(f"{resource}:{n}" for n in names)
        return carried

    def _replace_stale(
        self, mapped: Mapped, sending: _Sending, result: EdfiDeliveryResult, run_id: str
    ) -> None:
        """Delete what the API holds for the batch's children under a natural key tonight's
        payloads no longer have (only for children of whom it now holds tonight's copy)."""
        now = {(p.resource, p.key_digest) for p in mapped.payloads}
        stale = [
            e
            for key, e in sending.known.items()
            if e.status == SENT
            and e.child_key in result.accepted
            and e.child_key not in result.rejected
            and key not in now
        ]
        replaced: dict[ChildKey, list[str]] = {}
        for item in self._delete_entries(stale, run_id):
            if item.status != "failed":
                replaced.setdefault(item.child_key, []).append(item.resource)
            if item.status == "deleted":
                result.rows_deleted[item.resource] = result.rows_deleted.get(item.resource, 0) + 1
        result.replaced = {k: tuple(sorted(set(v))) for k, v in replaced.items()}

    def _delete_entries(self, entries: Sequence[LedgerEntry], run_id: str) -> list[WithdrawResult]:
        """Delete ``entries`` at the API, dependents first; the ledger marks them deleted by
        ``run_id``."""
        order = self.mapper.order
        results: list[WithdrawResult] = []
        for resource in sorted({e.resource for e in entries}, key=order.index, reverse=True):
            batch_entries = [e for e in entries if e.resource == resource]
            with ThreadPoolExecutor(self.settings.concurrency) as pool:
                answers = list(pool.map(self._delete_one, batch_entries))
            gone = []
            for entry, (status, outcome) in zip(batch_entries, answers, strict=True):
                assert entry.child_key is not None
                results.append(
                    WithdrawResult(
                        entry.child_key,
                        entry.resource,
                        status,
                        outcome.status if outcome else None,
                        outcome.problem if outcome else None,
                    )
                )
                if status != "failed":
                    gone.append(_with_status(entry, DELETED))
            self.ledger.record(gone, run_id=run_id)
        return results

    # --- internals ---------------------------------------------------------------------------

    def _post_all(
        self, resource: str, payloads: Sequence[Payload]
    ) -> tuple[list[tuple[Payload, Outcome | None]], DeliveryError | None]:
        """POST every payload, ``concurrency`` at a time (worker threads taking the next
        payload from a queue); on a transient give-up or a terminal error, stop taking new
        ones and return what finished plus the error."""
        outcomes: list[Outcome | None] = [None] * len(payloads)
        pending: queue.SimpleQueue[int] = queue.SimpleQueue()
        for index in range(len(payloads)):
            pending.put(index)
        errors: list[DeliveryError] = []
        client = self.client if payloads else None

        def work() -> None:
            while not errors:
                try:
                    index = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    outcomes[index] = client.post(resource, content=payloads[index].content)  # type: ignore[union-attr]
                except DeliveryError as error:
                    errors.append(error)

        workers = [
            threading.Thread(target=work, name=f"edfi-{resource}")
            for _ in range(min(self.settings.concurrency, len(payloads)))
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return list(zip(payloads, outcomes, strict=True)), (errors[0] if errors else None)

    def _record(
        self,
        batch: Batch,
        result: EdfiDeliveryResult,
        blocked: dict[ChildKey, str],
        outcomes: list[tuple[Payload, Outcome | None]],
    ) -> list[LedgerEntry]:
        """Add the outcomes to ``result``; the ledger entries of what the API accepted."""
        accepted: list[LedgerEntry] = []
        for payload, outcome in outcomes:
            if outcome is None:
                continue
            if outcome.ok:
                result.resources.append(_result(payload, "sent", outcome))
                accepted.append(_entry(payload, outcome, batch.program_code))
                if payload.child_key is not None and result.carried is not None:
                    carried = result.carried.setdefault(payload.child_key, ())
                    result.carried[payload.child_key] = carried + tuple(
                        f"{payload.resource}:{name}" for name in payload.fields
                    )
                continue
            result.resources.append(_result(payload, "rejected", outcome, outcome.problem))
            key = payload.child_key
            log.warning(
                "%s: %s of %s refused: %s",
                self.name,
                payload.resource,
                "/".join(key) if key else "program",
                outcome.problem,
            )
            if key is not None and payload.resource in (STUDENTS, SSA):
                blocked[key] = f"{payload.resource} was refused"
        return accepted

    def _held_item(self, payload: Payload) -> dict[str, Any] | None:
        """The API's resource holding ``payload`` exactly as mapped, or ``None``."""
        return next((i for i in self._find(payload) if _same(payload.body, i)), None)

    def _find(self, payload: Payload) -> list[dict[str, Any]]:
        """The API's resources with ``payload``'s natural key (query by the unambiguous key
        parts, then match the whole key here)."""
        params: dict[str, Any] = {}
        clashes: set[str] = set()
        for path, value in payload.natural_key.items():
            name = path.rsplit(".", 1)[-1]
            if name in params and params[name] != value:
                clashes.add(name)
            params[name] = value
        query = {k: v for k, v in params.items() if k not in clashes}
        schemas = self.mapper.schemas
        return [
            item
            for item in self.client.find(payload.resource, query)
            if schemas.identity(payload.resource, item) == payload.natural_key
        ]

    def _delete_one(self, entry: LedgerEntry) -> tuple[str, Outcome | None]:
        resource_id = entry.resource_id
        try:
            if resource_id is None:
                probe = Payload(entry.resource, {}, entry.child_key, entry.natural_key, "", "")
                found = self._find(probe)
                if not found:
                    return "already_absent", None
                resource_id = str(found[0]["id"])
            outcome = self.client.delete(entry.resource, resource_id)
        except DeliveryError as error:
            return "failed", Outcome(0, resource_id, str(error))
        if outcome.ok:
            return "deleted", outcome
        if outcome.status == 404:
            return "already_absent", outcome
        return "failed", outcome


@dataclass
class _Sending:
    """What one delivery keeps while it sends: the ledger's view, the children whose
    student or school association was refused, how many POSTs it made."""

    known: dict[tuple[str, str], LedgerEntry]
    blocked: dict[ChildKey, str] = field(default_factory=dict)
    posted: int = 0


class _LedgerWriter:
    """Writes ledger entries in a background thread while the next resource is sent; on
    exit waits for every write and raises the first write error, if any."""

    def __init__(self, ledger: SentLedger, run_id: str) -> None:
        self._ledger, self._run_id = ledger, run_id
        self._queue: queue.SimpleQueue[list[LedgerEntry] | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="edfi-ledger", daemon=True)

    def __enter__(self) -> _LedgerWriter:
        self._thread.start()
        return self

    def put(self, entries: list[LedgerEntry]) -> None:
        if entries:
            self._queue.put(entries)

    def _run(self) -> None:
        while (entries := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._ledger.record(entries, self._run_id)
                except BaseException as error:  # re-raised in the caller's thread
                    self._error = error

    def __exit__(self, kind: object, *_: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            if kind is None:
                raise self._error
            log.error("Ed-Fi ledger write failed too: %s", type(self._error).__name__)


def _result(
    payload: Payload, status: str, outcome: Outcome | None = None, problem: str | None = None
) -> ResourceResult:
    return ResourceResult(
        payload.resource,
        payload.child_key,
        status,
        payload.natural_key,
        outcome.status if outcome else None,
        problem,
    )


def _entry(payload: Payload, outcome: Outcome, program_code: str) -> LedgerEntry:
    key = payload.child_key
    return LedgerEntry(
        payload.resource,
        payload.key_digest,
        payload.payload_digest,
        payload.natural_key,
        key[0] if key else program_code,
        key[1] if key else "",
        outcome.resource_id,
        SENT,
        fields=tuple(sorted(payload.fields)),
    )


def _with_status(entry: LedgerEntry, status: str) -> LedgerEntry:
    return LedgerEntry(
        entry.resource,
        entry.key_digest,
        entry.payload_digest,
        entry.natural_key,
        entry.program_code,
        entry.child_local_id,
        entry.resource_id,
        status,
        entry.id,
    )


def _normalized(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: _normalized(v)
            for k, v in value.items()
            if k not in SERVER_MANAGED and v not in ([], None)
        }
    if isinstance(value, list):
        return sorted((_normalized(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    return value


def _read_key(payload: Payload) -> tuple[str, str, str]:
    """What an API read of ``payload`` answers for: its resource, natural key and content."""
    return (payload.resource, payload.key_digest, payload.payload_digest)


def _same(sent: Mapping[str, Any], held: Mapping[str, Any]) -> bool:
    """Whether the API's copy ``held`` carries exactly ``sent`` (server-managed keys and
    empty collections aside)."""
    return _normalized(sent) == _normalized(held)
