"""The alert of a failed or partial run reaches a real SMTP server, names the destination,
the run, the stopped programs and their reason codes, and holds no child's data."""

from __future__ import annotations

import pytest

from pipelines.alerts import compose, send
from tests.smtp_server import SmtpTestServer, text_of

SUMMARY = {
    "run_id": "demo-20261127-abcd1234",
    "run_date": "2026-11-27",
    "status": "partial",
    "programs": {"processed": ["VT-HS-01"], "stopped": ["VT-EHS-02"]},
    "stops": {
        "VT-EHS-02": {
            "step": "prepare",
            "reason": "gate_failed",
            "detail": "BatchStopped: 12 rows failed input validation (Ada Lovelace 2021-03-04)",
        }
    },
}


def test_alert_of_a_partial_run_reaches_the_smtp_server_without_child_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with SmtpTestServer() as smtp:
        monkeypatch.setenv("AIRFLOW_CONN_DATASHARE_SMTP", smtp.uri)
        subject, body = compose("demo", "manual__2026-11-27", SUMMARY)
        send("datashare_smtp", ["data-manager@example.org"], subject, body)
        [message] = smtp.messages
    text = text_of(message)
    assert message["To"] == "data-manager@example.org"
    for expected in ("demo", "demo-20261127-abcd1234", "manual__2026-11-27", "partial",
                     "VT-EHS-02", "gate_failed", "VT-HS-01"):  # fmt: skip
        assert expected in text
    assert "Ada" not in text and "2021-03-04" not in text, "no detail line, no value"


def test_a_run_that_failed_before_its_summary_still_alerts() -> None:
    subject, body = compose("demo", "manual__x", None)
    assert "failed before its summary" in subject and "manual__x" in body
