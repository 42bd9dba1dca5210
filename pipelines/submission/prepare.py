"""Prepare programs' batches: extract, validate input, decide, transform, map, validate output,
and stage each program's result encrypted for the deliver step. Nothing leaves here.

Several programs can be prepared together (one extract, one input gate and one output gate per
chunk instead of per program: Great Expectations costs about a second per suite run whatever
the size); the results are still one batch per program. Fail closed: an input chunk with too
many bad rows, a decision error, a missing key or a failed output privacy gate stops the
programs concerned with a clear, PII-free message.

A shard (:func:`prepare_shard`, what one mapped Airflow task does) stops programs one by one:
a program with too many bad rows in a chunk (its own share, not the chunk's) or a failed
output gate stops alone and the others go on; an error that names no program (a decision
error, say) makes the shard prepare its programs one at a time, so that only the programs it
concerns stop. A missing or unusable key stops every program of the shard at once: each of
them would fail alike.

A program the plan lists in ``withdrawing`` (it no longer shares, and what the destination holds
of it is withdrawn: :mod:`.withdrawals`) is not extracted, decided or mapped: its staged batch
has no artifact and an empty ledger, and says ``withdraw_program`` so that its delivery
withdraws every child held and sends nothing else (:func:`stage_withdrawal`). An AIAN program
sharing aggregate outputs only whose held records are withdrawn (``records_withheld`` too) is
prepared as usual when the destination's formats carry aggregate tables (every child of it is
withheld, so no child's row is staged) and its batch says ``withdraw_program`` as well, with
``keeps_aggregates``: its delivery withdraws every child held and sends only its aggregate
tables.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from pipelines.collector import frozen, paused
from pipelines.extract import ExtractChunk, extract
from pipelines.quality.input_suite import validate_input
from pipelines.settings import Settings
from pipelines.staging import StagingKeyError, staging_key
from pipelines.submission.collect import Collected, count_into, counts_by_program
from pipelines.submission.context import RunContext, SubmissionError
from pipelines.submission.gate import identity_of, output_gate
from pipelines.submission.quarantine import quarantine_rows
from pipelines.submission.records import RecordMaker
from pipelines.submission.reports import report_folder, report_text, write_report
from pipelines.submission.stage_batch import stage_programs
from pipelines.submission.withdrawals import WITHDRAWN_PROGRAM, aggregate_files
from privacy.agreements import Agreement, StatementHandling
from privacy.decision import Decision, DecisionInputs, decide
from privacy.errors import InvalidKeyError, MissingKeyError
from privacy.participation import current_participation
from privacy.transforms import FieldPlan, compile_plan
from schemas.filespec import FileSpec, load_spec

STATEMENTS_SPEC = "hs_parent_statements"
MAX_FAILURE_SHARE = 0.05


class BatchStopped(SubmissionError):
    """A batch stops before anything is sent."""


def contributing_rows(decision: Decision, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of children that count in aggregates (any scope but none), removed fields emptied."""
    ids = decision.field_mask.index
    columns = ["child_id", *dict.fromkeys(["program_code", *decision.fields])]
    rows = frame.loc[frame["child_id"].isin(ids), columns]
    mask = decision.field_mask.reindex(rows["child_id"]).to_numpy(dtype=bool)
    out = rows.reset_index(drop=True)
    for j, name in enumerate(decision.fields):
        if (~mask[:, j]).any():
            out[name] = out[name].astype(object).where(mask[:, j], None)
    return out


class Preparation:
    """Builds the batches of a set of programs, chunk by chunk."""

    def __init__(self, context: RunContext, programs: Sequence[str]) -> None:
        self.context = context
        self.programs = list(programs)
        self.run_date = context.run.run_date
        self.specs: list[FileSpec] = [load_spec(name) for name in context.destination.formats]
        self.carries_statements = STATEMENTS_SPEC in context.destination.formats
        with Session(context.engine) as session:
            self.participation = current_participation(
                session, context.recipient.code, self.run_date
            )
        self.agreement = self._effective_agreement(context.agreement)
        self.plans: dict[frozenset[str], FieldPlan] = {}
        self.collected = {code: Collected() for code in self.programs}
        self.identity: list[pd.DataFrame] = []
        """Every extracted child's key and identifying fields, for the output gate."""
        self.reports: list[dict[str, Any]] = []
        self.records = RecordMaker(self)
        self.seconds: dict[str, float] = defaultdict(float)
        self.stopped: dict[str, Exception] = {}
        """Programs stopped on their own (input share, output gate), and why."""

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Add the time spent in the block to ``step``'s total (reported with the counts)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] += time.perf_counter() - started

    def _effective_agreement(self, agreement: Agreement) -> Agreement:
        """The agreement as this destination can honour it: statements travel only where the
        destination has a file for them; elsewhere the disputed field is withheld."""
        if agreement.parent_statements is StatementHandling.CARRY and not self.carries_statements:
            return agreement.model_copy(update={"parent_statements": StatementHandling.WITHHOLD})
        return agreement

    def plan_for(self, program: str) -> FieldPlan:
        """The field plan of a program (an AIAN opt-in may exclude fields)."""
        status = self.participation[program]
        return self._plan(frozenset(status.opt_in.excluded_fields if status.opt_in else ()))

    @cached_property
    def carried(self) -> frozenset[str]:
        """The catalog fields the destination's outputs carry at all: the sources of its record
        files' columns and of its aggregate breakdowns, or the fields its Ed-Fi mapping fills.
        A field the agreement names that no output carries never leaves anybody's disclosure,
        so removing it from a child is not a redaction to audit or count."""
        plan = self._plan(frozenset())
        if self.is_edfi:
            from pipelines.edfi.mapping import MAPPED_FIELDS  # here: only Ed-Fi needs it

            return frozenset(plan.fields) & MAPPED_FIELDS
        columns = {c.source for spec in self.record_specs for c in spec.columns}
        columns |= {name for spec in self.aggregate_specs for name in spec.breakdowns}
        return frozenset(plan.source(c) for c in columns if c in plan.columns)

    def _plan(self, excluded: frozenset[str]) -> FieldPlan:
        if excluded not in self.plans:
            self.plans[excluded] = compile_plan(
                self.agreement,
                self.context.keys,
                recipient_code=self.context.recipient.code,
                excluded_fields=excluded,
            )
        return self.plans[excluded]

    @property
    def is_edfi(self) -> bool:
        """Whether the destination is an Ed-Fi API (records, not files)."""
        return self.context.destination.type.value == "edfi"

    @property
    def record_specs(self) -> list[FileSpec]:
        """The record-level file specs other than parent statements."""
        return [s for s in self.specs if s.level == "record" and s.name != STATEMENTS_SPEC]

    @property
    def aggregate_specs(self) -> list[FileSpec]:
        """The aggregate file specs."""
        return [s for s in self.specs if s.level == "aggregate"]

    def add(self, chunk: ExtractChunk) -> None:
        """Validate, decide, transform and map one chunk."""
        with self.timed("input_gate"):
            # the share is judged per program below, so one program's bad rows stop only it
            checked = validate_input(chunk.children, self.run_date, max_failure_share=1.0)
        bad = checked.quarantined
        for program, rows in bad.groupby("program_code"):
            count_into(self.collected[str(program)].quarantined, rows["rule"])
        if not bad.empty and not self.context.run.dry_run:
            quarantine_rows(self.context, chunk.children, bad)
        stopping = self._over_share(chunk.children, bad)
        report = {**checked.report, "max_failure_share": MAX_FAILURE_SHARE}
        self.reports.append(report | {"stopped": bool(stopping), "stopped_programs": stopping})
        passed = checked.passed
        passed = passed.loc[~passed["program_code"].isin(list(self.stopped))]
        if passed.empty:
            return
        with self.timed("decide"):
            decision = decide(
                DecisionInputs(passed, chunk.consents, chunk.notices, chunk.statements),
                self.agreement,
                self.context.recipient,
                self.run_date,
                participation=self.participation,
            )
            self._withheld(decision)
        self.identity.append(identity_of(chunk.children, passed["child_id"]))
        for program, n in passed["program_code"].value_counts().items():
            if n:  # a category with no row here
                self.collected[str(program)].counts["considered"] += int(n)
        by_plan: dict[int, list[str]] = defaultdict(list)
        for program in passed["program_code"].unique():
            by_plan[id(self.plan_for(str(program)))].append(str(program))
        with self.timed("transform_and_map"):
            self._outputs(decision, passed, by_plan)

    def _over_share(self, children: pd.DataFrame, bad: pd.DataFrame) -> list[str]:
        """Stop each program whose rows in this chunk failed input validation over
        ``MAX_FAILURE_SHARE``; returns the programs stopped now."""
        if bad.empty:
            return []
        failing = bad.groupby("program_code")["child_id"].nunique()
        sizes = children.groupby("program_code")["child_id"].size()
        now = []
        for program, count in failing.items():
            code, total = str(program), int(sizes.get(program, 0))
            if code in self.stopped or not total or count / total <= MAX_FAILURE_SHARE:
                continue
            self.stopped[code] = BatchStopped(
                f"program {code}: {count} of {total} rows failed input validation "
                f"(over {MAX_FAILURE_SHARE:.0%}); the batch stops, nothing is sent"
            )
            now.append(code)
        return now

    def _outputs(
        self, decision: Decision, passed: pd.DataFrame, by_plan: dict[int, list[str]]
    ) -> None:
        """Transform and map the disclosed (record) or contributing (aggregate) children."""
        for programs in by_plan.values():
            plan = self.plan_for(programs[0])
            if len(by_plan) == 1:  # every program of the chunk: no rows to leave out
                rows = passed
            else:
                rows = passed.loc[passed["program_code"].isin(programs)]
            if self.agreement.output.value == "record" and (self.record_specs or self.is_edfi):
                self.records.add(decision, rows, plan)
            if self.aggregate_specs:
                contributing = contributing_rows(decision, rows)
                permitted = plan.apply(contributing, self.run_date)
                owners = contributing["program_code"].to_numpy()
                for program in pd.unique(owners):
                    part = permitted.loc[owners == program]
                    self.collected[str(program)].aggregate.append(part)

    def _withheld(self, decision: Decision) -> None:
        children = decision.children
        rule = f"{self.agreement.id} ({self.agreement.legal_basis.value})"
        removals = decision.field_removals.merge(
            children[["child_id", "program_code", "child_local_id", "disclose"]], on="child_id"
        )
        # only fields a disclosure of this destination would otherwise carry
        removals = removals.loc[removals["disclose"] & removals["field"].isin(self.carried)]
        self._tally(children, "reasons")
        self._tally(removals, "removals")
        withheld = children.loc[~children["disclose"]]
        for program, local_id, reason in zip(
            withheld["program_code"], withheld["child_local_id"], withheld["reason"], strict=True
        ):
            self.collected[str(program)].redactions.append(
                {"subject": str(local_id), "field": None, "reason": str(reason), "rule": rule}
            )
        for program, local_id, name, reason in zip(
            removals["program_code"],
            removals["child_local_id"],
            removals["field"],
            removals["reason"],
            strict=True,
        ):
            self.collected[str(program)].redactions.append(
                {"subject": str(local_id), "field": str(name), "reason": str(reason), "rule": rule}
            )

    def _tally(self, rows: pd.DataFrame, counts: str) -> None:
        """Add the ``reason`` counts of ``rows`` to each program's ``counts`` (``reasons`` or
        ``removals``), every program counted at once."""
        if rows.empty:
            return
        for program, items in counts_by_program(rows["program_code"], rows["reason"]).items():
            target: dict[str, int] = getattr(self.collected[program], counts)
            for reason, n in items:
                target[reason] = target.get(reason, 0) + n

    def finish(self) -> list[dict[str, Any]]:
        """Validate every outgoing frame, stage each program's batch encrypted, and return the
        PII-free references the deliver step needs."""
        with self.timed("transform_and_map"):
            frames = {code: self.records.frames(code, c) for code, c in self.collected.items()}
        with self.timed("output_gate"):
            gate = output_gate(self, frames)
        passed = []
        written = {"input": report_text(self.reports)}  # the same in every program's report
        outputs: dict[tuple[tuple[str, int], ...], str] = {}
        folder: Path | None = None  # the run's report folder, made at the first report
        for code in self.programs:
            if code in self.stopped:
                continue
            content = {"input": self.reports, "output": gate[code]}
            # a file's gate result checked for the programs together is one object they share:
            # programs of the same results have the same output text, serialized once
            shared = tuple((name, id(result)) for name, result in gate[code].items())
            if shared not in outputs:
                outputs[shared] = report_text(gate[code])
            output = {"output": outputs[shared]}
            folder = folder or report_folder(self.context)
            report = write_report(
                self.context, code, content, written=written | output, folder=folder
            )
            failures = [f for result in gate[code].values() for f in result["failures"]]
            if failures:
                self.stopped[code] = BatchStopped(
                    f"program {code}: the output privacy gate failed, nothing is sent: "
                    + "; ".join(failures[:5])
                    + f" (report: {report})"
                )
                continue
            passed.append((code, frames[code], report))
        with self.timed("stage"):  # every program of the shard in one write
            return stage_programs(self, passed) if passed else []


def _prepare_together(
    run: dict[str, Any], programs: Sequence[str], settings: Settings | None
) -> tuple[list[dict[str, Any]], dict[str, Exception]]:
    """Prepare ``programs`` in one pass: their batches, and the programs that stopped alone."""
    context = RunContext.of(run, settings)
    withdrawing = run.get("withdrawing") or {}
    # aggregate-only AIAN programs: their records withdrawn, their aggregate tables prepared
    tables = (
        set(run.get("records_withheld") or {}) if aggregate_files(context.destination) else set()
    )
    stopped = [
        stage_withdrawal(context, p, int(withdrawing[p]))
        for p in programs
        if p in withdrawing and p not in tables
    ]
    programs = [p for p in programs if p not in withdrawing or p in tables]
    if not programs:
        return stopped, {}
    prepared, why = _prepare_sharing(context, programs)
    for item in prepared:
        if (code := item["program"]) in withdrawing:
            item["counts"]["withdrawing"] = int(withdrawing[code])
            item |= {"withdraw_program": WITHDRAWN_PROGRAM, "keeps_aggregates": True}
    return [*stopped, *prepared], why


def stage_withdrawal(context: RunContext, code: str, held: int) -> dict[str, Any]:
    """The staged batch of a program that stopped sharing: no artifact, an empty ledger (so
    nothing of any child can leave), and ``withdraw_program`` (the reason every child the
    destination holds is withdrawn with); ``held`` is how many the plan counted."""
    key = staging_key(context.settings.staging_key_file)
    ledger = json.dumps({"disclosures": [], "redactions": [], "child_keys": {}}).encode()
    ref = context.staged.put(
        ledger, key, run_id=context.run.run_id, program=code, name="ledger.json"
    )
    counts = {
        "considered": 0,
        "disclosed": 0,
        "withheld_by_reason": {},
        "fields_removed_by_reason": {},
        "quarantined_by_rule": {},
        "rows": {},
        "withdrawing": held,
    }
    return {
        "program": code,
        "run_date": context.run.run_date.isoformat(),
        "artifacts": [],
        "ledger": ref.to_dict(),
        "counts": counts,
        "report": "",
        "withdraw_program": WITHDRAWN_PROGRAM,
    }


@contextmanager
def _collector_off_the_heap() -> Iterator[None]:
    """Keep the garbage collector off what the process held before the shard: the gates'
    start-up is paid first (:func:`.quality.context.warm_up`), then ``gc.freeze`` moves every
    object alive (hundreds of thousands: Great Expectations, pandas, SQLAlchemy) out of the
    collector's sight, so that each full collection the shard's own objects trigger walks only
    those (one took over a second per collection with them, on a 25,000-child shard of a
    1,000,000-child night). ``gc.unfreeze`` hands them back afterwards. Nothing is kept alive
    that would otherwise be freed: frozen objects are only not examined for cycles. The
    collector stays paused from the warm-up to the freeze: its first collection after the
    warm-up would walk every object the warm-up made (all of Great Expectations), only for
    them to be frozen next."""
    from pipelines.quality.context import warm_up

    with ExitStack() as stack:
        with paused():
            warm_up()
            stack.enter_context(frozen())
        yield


def _prepare_sharing(
    context: RunContext, programs: Sequence[str]
) -> tuple[list[dict[str, Any]], dict[str, Exception]]:
    """Prepare sharing ``programs`` in one pass (see :func:`_prepare_together`)."""
    with _collector_off_the_heap():
        return _prepare_sharing_now(context, programs)


def _prepare_sharing_now(
    context: RunContext, programs: Sequence[str]
) -> tuple[list[dict[str, Any]], dict[str, Exception]]:
    preparation = Preparation(context, programs)
    chunks = extract(context.engine, programs, context.run.run_date)
    while True:
        with preparation.timed("extract"):
            chunk = next(chunks, None)
        if chunk is None:
            break
        preparation.add(chunk)
    prepared = preparation.finish()
    seconds = {step: round(value, 3) for step, value in preparation.seconds.items()}
    for item in prepared:
        item["counts"]["seconds"] = seconds
    return prepared, preparation.stopped


SHARD_WIDE = (MissingKeyError, InvalidKeyError, StagingKeyError)
"""Errors every program of a shard would meet alike: not worth preparing one at a time."""


def prepare_shard(
    run: dict[str, Any], programs: Sequence[str], settings: Settings | None = None
) -> tuple[list[dict[str, Any]], dict[str, Exception]]:
    """Prepare a shard: the batches of the programs that passed, and why each other program
    stopped. An error that names no program makes each program be prepared alone (so it stops
    only the programs it concerns); a :data:`SHARD_WIDE` error is raised for the whole shard."""
    try:
        return _prepare_together(run, programs, settings)
    except SHARD_WIDE:
        raise
    except Exception:
        if len(programs) == 1:
            raise
    prepared: list[dict[str, Any]] = []
    stopped: dict[str, Exception] = {}
    for program in programs:
        try:
            done, why = _prepare_together(run, [program], settings)
        except Exception as error:
            stopped[program] = error
            continue
        prepared += done
        stopped |= why
    return prepared, stopped


def prepare_programs(
    run: dict[str, Any], programs: Sequence[str], settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Prepare the batches of ``programs`` for the run described by ``run``; the first
    program that stopped raises its :class:`BatchStopped` (nothing of it is sent)."""
    prepared, stopped = _prepare_together(run, programs, settings)
    for program in programs:
        if program in stopped:
            raise stopped[program]
    return prepared


def prepare_program(
    run: dict[str, Any], program_code: str, settings: Settings | None = None
) -> dict[str, Any]:
    """Prepare one program's batch (what each mapped Airflow task does)."""
    return prepare_programs(run, [program_code], settings)[0]
