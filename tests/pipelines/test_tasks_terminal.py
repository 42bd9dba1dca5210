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


def test_finish_gets_every_program_outcome_of_the_shards_that_returned() -> None:
    from pipelines.tasks import outcomes

    one = {"programs": ["A", "B"], "outcomes": [{"program": "A"}, {"program": "B"}]}
    two = {"programs": ["C"], "outcomes": [{"program": "C"}], "stopped": []}
    assert outcomes(None) == []
    assert outcomes(one) == [{"program": "A"}, {"program": "B"}]
    assert [o["program"] for o in outcomes([one, None, two])] == ["A", "B", "C"]
