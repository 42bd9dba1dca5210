"""Reports hold no PII, read well, and the GE context stays offline and quiet."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
from pathlib import Path

import pandas as pd
import pytest

import pipelines.quality as quality
from pipelines.quality import render_text, validate_input, validate_output, write_report
from pipelines.quality.context import get_context, run_suite
from pipelines.quality.input_suite import RESULT_FORMAT, _prepare, input_suite
from pipelines.quality.mentions import KeyIndex, name_keys
from pipelines.quality.output_suite import Columns, RowValues
from tests.pipelines.quality_frames import FIRST_NAMES, LAST_NAMES, RUN_DATE, clean_extract

SSN, PHONE, EMAIL = "987-65-4321", "(802) 555-0199", "marisol.q@example.org"


def _dirty_extract() -> pd.DataFrame:
    """Known names and birth dates, with rows breaking many rules around them."""
    frame = clean_extract(20)
    frame.at[0, "birth_date"] = dt.date(2027, 3, 14)
    frame.at[1, "sex"] = "Wilhelmina"  # a name where a code belongs
    frame.at[2, "first_name"] = "Thaddeus" * 10  # too long
    frame.at[3, "exit_date"] = dt.date(2019, 7, 4)
    frame.at[4, "child_local_id"] = frame.at[5, "child_local_id"]
    frame.at[6, "home_language"] = "Quenneville"
    frame.at[7, "birth_date"] = dt.date(1899, 2, 2)
    return frame


def _secrets(frame: pd.DataFrame) -> set[str]:
    names = {*FIRST_NAMES, *LAST_NAMES, "Rosalind", "Wilhelmina", "Quenneville"}
    dates = set()
    for column in ("birth_date", "exit_date"):
        for value in frame[column].dropna():
            dates |= {value.isoformat(), value.strftime("%m/%d/%Y"), str(value)}
    return names | dates | {SSN, PHONE, EMAIL, "Maple Street"}


def _outgoing() -> pd.DataFrame:
    """An outgoing batch leaking names, an SSN, a phone and an e-mail."""
    return pd.DataFrame(
        {
            "student_id": ["Marisol", "k1-ABCDEFGHABCDEFGH"],
            "race": ["Okonkwo", "white"],
            "note": [SSN, PHONE],
            "contact": [EMAIL, "2022-01-01"],
            "statement": [f"Call {PHONE}.", f"About {FIRST_NAMES[0]} {LAST_NAMES[0]}, not ours."],
            "n": [3, 40],
        }
    )


def _rows(extract: pd.DataFrame) -> RowValues:
    """Rows 0 and 1 of the extract own the outgoing rows; every child is in the batch."""
    values = extract[["first_name", "last_name", "birth_date", "guardian_first_name"]].head(2)
    batch = set().union(
        *(name_keys(f, None, s) for f, s in extract[["first_name", "last_name"]].to_numpy())
    )
    return RowValues(values, frozenset(), [frozenset(), frozenset()], KeyIndex.of(batch))


def _run_both(
    tmp_path: Path,
) -> tuple[quality.InputResult, quality.OutputResult, list[str], set[str]]:
    extract = _dirty_extract()
    input_result = validate_input(extract, RUN_DATE, max_failure_share=0.5)
    output_result = validate_output(
        _outgoing(),
        expected_columns=["student_id", "race", "contact", "note", "n"],
        pseudonym_columns=["student_id"],
        pseudonym_pattern=r"^[a-z0-9]+-[A-Z2-7]{16}$",
        aggregate_count_column="n",
        columns=Columns(text=("student_id", "note"), statements=("statement",)),
        rows=_rows(extract),
    )
    texts = []
    for name, result in (("input", input_result), ("output", output_result)):
        json_path, text_path = write_report(tmp_path / f"{name}.json", result)
        texts += [json_path.read_text(), text_path.read_text(), render_text(result)]
    return input_result, output_result, texts, _secrets(extract)


def test_no_pii_in_reports_failures_quarantine_files_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    input_result, output_result, texts, secrets = _run_both(tmp_path)

    # the runs did find the problems they must not describe by value
    assert input_result.report["quarantined_rows"] == 8
    assert {"pseudonym_format", "child_value", "other_child", "ssn_like", "phone_like"} | {
        "email_like"
    } <= {failure.split(" ")[0] for failure in output_result.failures}
    assert any(f.startswith("small_cell") for f in output_result.failures)
    assert any(f.startswith("columns_match") for f in output_result.failures)

    kept = [
        json.dumps(input_result.report),
        json.dumps(output_result.report),
        json.dumps(output_result.failures),
        input_result.quarantined.drop(columns=["child_id"]).to_csv(),
        *texts,
        "\n".join(record.getMessage() for record in caplog.records),
    ]
    for text in kept:
        leaked = sorted(secret for secret in secrets if secret in text)
        assert leaked == []


def test_control_ge_raw_result_does_hold_values_so_the_no_pii_test_can_fail() -> None:
    extract = _dirty_extract()
    raw = run_suite(
        _prepare(extract),
        input_suite(),
        result_format=RESULT_FORMAT,
        parameters={
            "run_date": pd.Timestamp(RUN_DATE),
            "sixth_birthday_cutoff": pd.Timestamp(2020, 11, 27),
        },
    )
    dumped = json.dumps(raw.describe_dict(), default=str)
    assert "Wilhelmina" in dumped and "Quenneville" in dumped


def test_text_report_lists_each_expectation_with_counts(tmp_path: Path) -> None:
    input_result, output_result, _, _ = _run_both(tmp_path)
    text = render_text(input_result)
    lines = text.splitlines()
    assert lines[0] == "Input quality gate (run date 2026-11-27): passed with quarantined rows"
    assert "quarantined 8" in lines[1]
    header = next(line for line in lines if line.startswith("rule"))
    assert header.split() == ["rule", "column", "result", "unexpected", "percent"]
    sex_row = next(line for line in lines if line.split()[:2] == ["unknown_code", "sex"])
    assert sex_row.split()[2:] == ["FAIL", "1", "5.00%"]
    assert any(line.split()[:3] == ["unknown_code", "race", "ok"] for line in lines)
    failing = render_text(output_result, failures_only=True)
    assert "ok " not in failing.split("\n\n", 1)[1]
    assert failing.startswith("Output privacy gate: FAILED")


def test_write_report_writes_json_that_round_trips_and_text_beside_it(tmp_path: Path) -> None:
    result = validate_input(clean_extract(5), RUN_DATE)
    json_path, text_path = write_report(tmp_path / "runs" / "r1" / "input.json", result)
    assert json.loads(json_path.read_text()) == result.report
    assert text_path == tmp_path / "runs" / "r1" / "input.txt"
    assert text_path.read_text() == render_text(result)
    assert sorted(p.name for p in json_path.parent.iterdir()) == ["input.json", "input.txt"]


def test_context_is_ephemeral_offline_and_analytics_off(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    get_context.cache_clear()
    quality.context._batch_definition.cache_clear()
    context = get_context()
    assert type(context).__name__ == "EphemeralDataContext"
    assert os.environ["GX_ANALYTICS_ENABLED"] == "false"
    assert context.config.analytics_enabled is False
    assert validate_input(clean_extract(3), RUN_DATE).report["success"]
    assert validate_output(pd.DataFrame({"a": ["x"]}), expected_columns=["a"]).ok
    assert get_context() is context


def test_public_surface_is_pinned() -> None:
    assert sorted(quality.__all__) == [
        "InputResult",
        "InputRule",
        "OutputResult",
        "QualityError",
        "render_text",
        "validate_input",
        "validate_output",
        "write_report",
    ]
