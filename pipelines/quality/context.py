"""One in-memory Great Expectations context per process, offline, quiet and forgetful.

The context is ephemeral (nothing written to disk), GE's usage statistics are off
(``GX_ANALYTICS_ENABLED=false``, ``enable_analytics(False)``), progress bars are off, and
nothing reaches the network. Suites are run with ``Batch.validate`` rather than
``ValidationDefinition.run``: the latter stores every result, unexpected values included, in
the context's validation-results store, which would keep PII in memory for the process's life.

Start-up is paid once per process, and can be paid before the work: :func:`warm_up` imports
GE, builds the context, the pandas data source and the input suite, and registers our own
expectations. A long-lived Airflow worker calls it before it forks its task processes
(:mod:`pipelines.preload`), so a mapped task inherits all of it instead of paying about
11 CPU seconds of imports (without cached bytecode; about 3 with it) per program.

Importing ``great_expectations`` also imports what only some of its expectations use at run
time: ``scipy.stats`` (KL divergence), ``altair`` (charts in rendered docs) and ``mistune``
(markdown in rendered docs), about a third of its import cost. None is used by our suites,
so they are deferred
(:func:`pipelines.deferred.defer`): a stand-in module in their place imports the real one on
first attribute use, and an expectation that needs them still gets them, later.

:class:`Loaded` loads a frame once for the suites a gate runs on it and returns GE's raw
results for the caller to read indices from; only
:func:`summarize` output (names, columns, counts) may be kept or written anywhere.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipelines.deferred import defer

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.data_context import AbstractDataContext

_LOCK = threading.Lock()


class QualityError(Exception):
    """A batch could not be validated at all (missing column, unparseable type, GE error).

    Messages name the suite, rule and column, never a value.
    """


DEFERRED = ("scipy.stats", "altair", "mistune")
"""Modules GE imports eagerly but only some expectations (none of ours) use at run time."""

# before anything of this package imports great_expectations (the package imports us first)
defer(DEFERRED)


@cache
def get_context() -> AbstractDataContext:
    """The process's one ephemeral context, created on first use with analytics off."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.enable_analytics(False)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    _no_fingerprint()
    return context


def _no_fingerprint() -> None:
    """Stop GE fingerprinting every frame it loads: for any frame under
    ``HASH_THRESHOLD`` bytes its pandas engine hashes every cell
    (``pd.util.hash_pandas_object``, then MD5) into the batch marker
    ``pandas_data_fingerprint``, which nothing reads (GE 1.x keeps it for usage statistics,
    which are off) and which cost a third of the input gate and a sixth of the output gate.
    A threshold of zero bytes leaves every frame unhashed; validation is untouched."""
    from great_expectations.execution_engine import pandas_execution_engine

    pandas_execution_engine.HASH_THRESHOLD = 0


@cache
def _batch_definition() -> BatchDefinition:
    with _LOCK:
        source = get_context().data_sources.add_pandas("datashare_quality")
        asset = source.add_dataframe_asset("frame")
        return asset.add_batch_definition_whole_dataframe("whole_frame")


def warm_up() -> None:
    """Pay the gates' start-up now: GE imported, the context, its pandas data source and the
    input suite built, our expectations registered. Idempotent; holds no data. The garbage
    collector is paused meanwhile (:func:`pipelines.collector.paused`): GE's import builds
    hundreds of thousands of long-lived objects and full collections kept walking them."""
    from pipelines.collector import paused

    with paused():
        from pipelines.quality import expectations, input_rules  # noqa: F401  (registers them)
        from pipelines.quality.input_suite import screen_suite

        _batch_definition()
        screen_suite()


class Loaded:
    """A frame loaded into Great Expectations once, for every suite a gate runs on it.

    ``Batch.validate`` makes a new validator each call, and with it a new batch of the same
    frame, twice per call. A gate runs up to three suites on one frame; loaded once, the
    suites run on one validator (``graph_validate``, as ``Batch.validate`` itself does:
    nothing is stored), and GE's batch fingerprint is off (:func:`_no_fingerprint`).
    :meth:`close` drops GE's metric cache, which holds the last run's metrics (unexpected
    values among them) on the data source's long-lived execution engine.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
        self._validator = get_context().get_validator_using_batch_list(
            expectation_suite=None, batch_list=[batch]
        )

    def run(
        self,
        suite: Any,
        *,
        result_format: Mapping[str, Any],
        parameters: Mapping[str, Any] | None = None,
    ) -> list[Any]:
        """The results of ``suite``, in suite order; :class:`QualityError` if any expectation
        raised, except one marked ``meta["combined"]`` (it reads as failed: its caller checks
        its columns one by one). Every expectation carries ``meta={"rule": ..., "field": ...}``.
        """
        validator = self._validator
        configurations = validator.process_expectations_for_validation(
            suite.expectation_configurations, dict(parameters or {})
        )
        results = validator.graph_validate(
            configurations=configurations,
            runtime_configuration={"result_format": dict(result_format)},
        )
        for item in results:
            if (item.exception_info or {}).get("raised_exception"):
                meta = meta_of(item)
                if meta.get("combined"):
                    item.success = False  # checked again column by column, which may raise
                    continue
                raise QualityError(
                    f"suite {suite.name}: rule {meta.get('rule')} on column {meta.get('field')} "
                    f"could not be evaluated"
                )
        return list(results)

    def screened(
        self,
        suite: Any,
        *,
        result_format: Mapping[str, Any],
        parameters: Mapping[str, Any] | None = None,
    ) -> Screened:
        """Validate in two passes: every expectation with :data:`SCREEN_FORMAT` (success
        only), then only those that failed again with ``result_format`` (counts, indices).
        Same successes as one full run (GE decides success from the same unexpected count in
        every format), for about half the cost when most expectations pass.

        A passed expectation's result has no count (the screen did not ask for one): the
        report leaves it empty rather than claim a number. Every expectation of ``suite``
        must carry a distinct ``meta["order"]``.
        """
        import great_expectations as gx

        screen = self.run(suite, result_format=SCREEN_FORMAT, parameters=parameters)
        failed = {meta_of(item).get("order") for item in screen if not item.success}
        detail: dict[Any, Any] = {}
        if failed:
            again = gx.ExpectationSuite(name=suite.name)
            for expectation in suite.expectations:
                if (expectation.meta or {}).get("order") in failed:
                    copy = expectation.copy(deep=True)
                    copy.id = None
                    again.add_expectation(copy)
            full = self.run(again, result_format=result_format, parameters=parameters)
            detail = {meta_of(item).get("order"): item for item in full}
        results = []
        for item in screen:
            order = meta_of(item).get("order")
            results.append(detail.get(order, item))
        return Screened(results)

    def close(self) -> None:
        """Drop what GE keeps of this frame (its metric cache on the shared engine)."""
        engine = self._validator.execution_engine
        cache = getattr(engine, "_metric_cache", None)
        if isinstance(cache, dict):
            cache.clear()

    def __enter__(self) -> Loaded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_suite(
    frame: pd.DataFrame,
    suite: Any,
    *,
    result_format: Mapping[str, Any],
    parameters: Mapping[str, Any] | None = None,
) -> ExpectationSuiteValidationResult:
    """Validate ``frame`` against ``suite`` once (:meth:`Loaded.run`); GE's raw result."""
    from great_expectations.core import ExpectationSuiteValidationResult

    with Loaded(frame) as loaded:
        results = loaded.run(suite, result_format=result_format, parameters=parameters)
    success = all(item.success for item in results)
    return ExpectationSuiteValidationResult(success=success, results=results, suite_name=suite.name)


SCREEN_FORMAT = {"result_format": "BOOLEAN_ONLY"}
"""The screen's result format: success only, about half of GE's cost of a COMPLETE run."""


@dataclass(frozen=True)
class Screened:
    """The results of a screened run (:meth:`Loaded.screened`), in suite order."""

    results: list[Any]


def summarize(result: Screened | ExpectationSuiteValidationResult) -> list[dict[str, Any]]:
    """PII-free summary of each expectation, in suite order (:func:`summary_row` of each)."""
    rows = [(int(meta_of(item).get("order", 0)), summary_row(item)) for item in result.results]
    rows.sort(key=lambda pair: pair[0])
    return [row for _, row in rows]


def summary_row(item: Any) -> dict[str, Any]:
    """PII-free summary of one expectation result.

    Keeps only rule name, column, expectation type, success and the unexpected count and
    percentage (``None`` when GE did not count, as in a success-only screen); GE's lists of
    unexpected values, index rows and kwargs (value sets may hold names) are dropped.
    """
    meta = meta_of(item)
    raw = item.result or {}
    count = raw.get("unexpected_count")
    percent = raw.get("unexpected_percent")
    return {
        "name": str(meta.get("rule")),
        "column": None if meta.get("field") is None else str(meta["field"]),
        "expectation": str(meta.get("type")),
        "success": bool(item.success),
        "unexpected_count": None if count is None else int(count),
        "unexpected_percent": None if percent is None else round(float(percent), 4),
    }


def meta_of(item: Any) -> dict[str, Any]:
    """An expectation result's ``meta`` (rule, field, order, ...) plus its expectation type."""
    config = item.expectation_config
    if config is None:
        raise QualityError("a validation result lacks its expectation")
    return {**(config.meta or {}), "type": config.type}


def unexpected_ids(item: Any, id_column: str) -> list[Any]:
    """The ``id_column`` values of the rows an expectation result marks unexpected.

    Reads only the index column from GE's ``unexpected_index_list`` (whose entries also hold
    the failing values, which are not touched).
    """
    entries = (item.result or {}).get("unexpected_index_list") or []
    return [entry[id_column] for entry in entries]
