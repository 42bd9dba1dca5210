"""Great Expectations' own logging stays out of task logs below WARNING."""

from __future__ import annotations

import logging

import pytest

from pipelines.quality import validate_input
from pipelines.quiet import quiet_libraries
from tests.pipelines.quality_frames import RUN_DATE, clean_extract


def test_after_quieting_a_validation_logs_nothing_from_great_expectations_below_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import pipelines.tasks  # noqa: F401  (the task module quiets the libraries on import)

    quiet_libraries()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("great_expectations").info("a probe the level must drop")
    validate_input(clean_extract(10), RUN_DATE, max_failure_share=1.0)
    noisy = [r for r in caplog.records if r.name.startswith("great_expectations")]
    assert [r for r in noisy if r.levelno < logging.WARNING] == []
    assert logging.getLogger("great_expectations").getEffectiveLevel() == logging.WARNING
