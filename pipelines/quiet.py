"""Keep third-party chatter out of task logs: a task log shows the datashare lines a person
needs, and a library's own logging only from WARNING up.

Great Expectations logs every expectation and data-context step at INFO and draws tqdm
progress bars on stderr; both end up in Airflow task logs. :func:`quiet_libraries` raises
those loggers to WARNING and turns tqdm's bars off (``TQDM_DISABLE``), once per process.
"""

from __future__ import annotations

import logging
import os

NOISY = (
    "great_expectations",
    # sets its own level to INFO when imported; a filter outlasts that
    "great_expectations.data_context.types.base",
)


def _at_least_warning(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


def quiet_libraries() -> None:
    """Library loggers at WARNING (a level and a filter), no progress bars."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    for name in NOISY:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)
        if _at_least_warning not in logger.filters:
            logger.addFilter(_at_least_warning)
