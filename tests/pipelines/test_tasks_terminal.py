"""Which failures of a task Airflow must not retry: key, policy and privacy problems fail the
task for good (``AirflowFailException``) with their message; transient delivery faults are
left to the task's retries."""

from __future__ import annotations

import pytest

from pipelines.destinations.base import TerminalDeliveryError, TransientDeliveryError
from pipelines.staging import StagingKeyError
from pipelines.submission.context import SubmissionError
from pipelines.tasks import _terminal
from privacy.errors import MissingKeyError


def fail(error: Exception) -> None:
    raise error


@pytest.mark.parametrize(
    "error",
    [
        MissingKeyError("VT-AOE", ["environment variable DATASHARE_KEY_VT_AOE"]),
        StagingKeyError("no staging key: DATASHARE_STAGING_KEY is unset"),
        SubmissionError("recipient X is not in the recipients registry"),
        TerminalDeliveryError("request refused (401)"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_terminal_errors_fail_the_task_without_retries(error: Exception) -> None:
    with pytest.raises(Exception) as caught:
        _terminal(lambda: fail(error))
    assert type(caught.value).__name__ == "AirflowFailException"
    assert str(caught.value) == f"{type(error).__name__}: {error}"


def test_transient_faults_are_left_to_retries() -> None:
    with pytest.raises(TransientDeliveryError):
        _terminal(lambda: fail(TransientDeliveryError("HTTP 503 after 3 attempts")))
