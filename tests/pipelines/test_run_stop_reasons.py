"""``datashare run`` says why tasks stopped for good, once each, from Airflow's log."""

from __future__ import annotations

from pathlib import Path

from pipelines.commands.run import stop_reasons

LOG = """\
/x/pipelines/tasks.py:35: DeprecatedImportWarning: airflow.exceptions.AirflowFailException is deprecated
  from airflow.exceptions import AirflowFailException
privacy.errors.MissingKeyError: no key for recipient VT-AOE (looked in: environment variable DATASHARE_KEY_VT_AOE)
airflow.sdk.exceptions.AirflowFailException: MissingKeyError: no key for recipient VT-AOE (looked in: environment variable DATASHARE_KEY_VT_AOE)
[error] datashare task failed: dag=datashare_demo task=prepare map_index=0 error=AirflowFailException [datashare]
airflow.sdk.exceptions.AirflowFailException: MissingKeyError: no key for recipient VT-AOE (looked in: environment variable DATASHARE_KEY_VT_AOE)
airflow.exceptions.AirflowFailException: StagingKeyError: no staging key: DATASHARE_STAGING_KEY is unset
"""  # noqa: E501


def test_each_terminal_reason_once_in_order(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text(LOG)
    assert stop_reasons(log) == [
        "MissingKeyError: no key for recipient VT-AOE "
        "(looked in: environment variable DATASHARE_KEY_VT_AOE)",
        "StagingKeyError: no staging key: DATASHARE_STAGING_KEY is unset",
    ]


def test_no_log_no_reasons(tmp_path: Path) -> None:
    assert stop_reasons(tmp_path / "missing.log") == []
