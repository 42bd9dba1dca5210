"""The study agreement (uvm-crc-study: pseudonyms, dates cut to the month) sends the state's
enrollment layout end to end: month-cut entry and exit dates are written as month and year,
the output gate passes them, and every row that arrived is logged."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from pipelines.demo import DEMO_DATE
from tests.pipelines.submission.kinds import small_world

MONTH = re.compile(r"\d{2}/\d{4}")


def test_the_study_agreement_sends_month_cut_dates_in_the_enrollment_file(tmp_path: Path) -> None:
    world = small_world(tmp_path)
    try:
        root = tmp_path / "drop"
        world.destination("uvm", type="local", recipient="UVM-CRC", agreements=["uvm-crc-study"],
                          formats=["hs_enrollment"], local={"root": str(root)})  # fmt: skip
        summary = world.run("uvm", run_date=DEMO_DATE)
        assert summary["status"] == "success", summary["stop_lines"]
        [path] = root.rglob("hs_enrollment.csv")
        sent = pd.read_csv(path, dtype=str, keep_default_na=False)
        assert len(sent) == summary["rows_delivered"]["hs_enrollment.csv"] > 0
        assert all(MONTH.fullmatch(d) for d in sent["EntryDate"])
        assert all(MONTH.fullmatch(d) for d in sent["ExitDate"] if d)
        assert len(world.disclosures()) == len(sent)
    finally:
        world.engine.dispose()
