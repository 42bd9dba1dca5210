"""The quality benchmark's synthetic extract is what it says: every catalog field, in the
catalog's order, and values that pass the input suite (so the benchmark times clean batches)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from pipelines.quality import validate_input
from privacy.fields import CATALOG

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "quality_benchmark.py"


def benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quality_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_synthetic_extract_has_every_catalog_field_and_passes_the_input_suite() -> None:
    module = benchmark()
    extract = module.synthetic_extract(60)
    assert list(extract.columns) == ["child_id", *CATALOG]
    result = validate_input(extract, module.RUN_DATE)
    assert not result.stopped and len(result.quarantined) == 0
