"""Alerts on a failed or partial run, through Airflow's notifier mechanism.

:class:`RunAlertNotifier` is an Airflow notifier (``BaseNotifier``) set as the failure
callback of the DAG's ``finish`` and ``verdict`` tasks: when the run ends failed or partial
(``verdict`` fails), or cannot even be summarized (``finish`` fails), it mails the
destination's ``alerts.email`` list through the SMTP connection ``alerts.smtp_conn_id`` (an
Airflow connection: host, port, login, password, ``from_email`` and TLS in its extras).

The message holds the destination, the run id, the Airflow run id, the status, and for each
stopped program its code, the step and the reason code with its plain words. It never holds
a child's data: no detail line of an error, no count of a small group, no value.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier

log = logging.getLogger("datashare")


def _words(code: str) -> str:
    from pipelines.submission.stops import StopReason

    try:
        return StopReason(code).description
    except ValueError:
        return code.replace("_", " ")


def compose(destination: str, airflow_run: str, summary: dict[str, Any] | None) -> tuple[str, str]:
    """Subject and plain-text body of the alert (no PII: codes and ids only)."""
    if not summary:
        subject = f"datashare: {destination} run failed before its summary"
        body = (
            f"Destination: {destination}\nAirflow run: {airflow_run}\nStatus: failed before "
            "the run summary was written; see the Airflow log of the finish task.\n"
        )
        return subject, body
    stops: dict[str, dict[str, str]] = summary.get("stops", {})
    subject = (
        f"datashare: {destination} run {summary['run_id']} {summary['status']} "
        f"({len(stops)} program{'s' if len(stops) != 1 else ''} stopped)"
    )
    lines = [
        f"Destination: {destination}",
        f"Run: {summary['run_id']} (run date {summary.get('run_date', '?')})",
        f"Airflow run: {airflow_run}",
        f"Status: {summary['status']}",
        f"Programs delivered: {', '.join(summary['programs']['processed']) or 'none'}",
        "Programs stopped:",
        *(
            f"  {program}: at {stop['step']}, {stop['reason']} ({_words(stop['reason'])})"
            for program, stop in sorted(stops.items())
        ),
        "",
        "Details without any child's data: datashare audit show --run " + summary["run_id"],
    ]
    return subject, "\n".join(lines) + "\n"


def send(conn_id: str, to: list[str], subject: str, body: str) -> None:
    """Send one plain-text mail through the Airflow SMTP connection ``conn_id``."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    html = "<pre>" + body.replace("&", "&amp;").replace("<", "&lt;") + "</pre>"
    with SmtpHook(smtp_conn_id=conn_id) as hook:
        hook.send_email_smtp(to=to, subject=subject, html_content=html, mime_subtype="alternative")


class RunAlertNotifier(BaseNotifier):
    """Mail the PII-free alert of a failed or partial run (Airflow failure callback)."""

    def __init__(self, destination: str, to: list[str], smtp_conn_id: str) -> None:
        super().__init__()
        self.destination = destination
        self.to = list(to)
        self.smtp_conn_id = smtp_conn_id

    def notify(self, context: Any) -> None:
        """Build the alert from the ``finish`` task's summary and send it."""
        ti = context.get("ti") or context.get("task_instance")
        summary = None
        if ti is not None and ti.task_id == "verdict":
            summary = ti.xcom_pull(task_ids="finish")
        airflow_run = str(getattr(ti, "run_id", context.get("run_id", "?")))
        subject, body = compose(self.destination, airflow_run, summary)
        if not self.to:
            log.warning("%s (no alerts.email configured; nothing sent)", subject)
            return
        send(self.smtp_conn_id, self.to, subject, body)
        log.info("alert sent to %d recipient(s): %s", len(self.to), subject)
