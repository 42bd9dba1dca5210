"""The run page's audit by reason counts what the redaction audit holds: for every run of the
console world, its groups equal counts made here from the run's raw ledger rows (plain SQL,
counted in Python), group by group, in the page's order."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.console.conftest import login
from tests.pipelines.submission.conftest import World


def counted(world: World, run_id: str) -> list[dict[str, Any]]:
    """The oracle: one group per (reason, program, agreement); a row with no field is a
    withheld child, one with a field a removed field."""
    with world.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT reason_code, program_code, agreement_id, field FROM redaction_audit"
                " WHERE run_id = :run"
            ),
            {"run": run_id},
        ).all()
    children: Counter[tuple[str, str, str]] = Counter()
    fields: dict[tuple[str, str, str], Counter[str]] = {}
    for reason, program, agreement, field in rows:
        key = (reason, program, agreement)
        fields.setdefault(key, Counter())
        if field is None:
            children[key] += 1
        else:
            fields[key][field] += 1
    return [
        {
            "reason": key[0],
            "program": key[1],
            "agreement": key[2],
            "children_withheld": children[key],
            "fields_removed": sum(fields[key].values()),
            "fields": ", ".join(f"{f} ({n})" for f, n in sorted(fields[key].items())),
        }
        for key in sorted(fields)
    ]


def test_every_runs_groups_equal_counts_from_its_ledger_rows(
    client: TestClient, tokens: dict[str, str], world: World
) -> None:
    login(client, tokens["vera"])
    runs = [r["run"] for r in client.get("/runs?format=json").json()]
    assert len(runs) >= 4
    withheld = 0
    for run_id in runs:
        shown = client.get(f"/runs/{run_id}?format=json").json()
        keys = ("reason", "program", "agreement", "children_withheld", "fields_removed", "fields")
        assert [{k: g[k] for k in keys} for g in shown] == counted(world, run_id), run_id
        withheld += sum(g["children_withheld"] for g in shown)
    assert withheld > 0  # the world withholds children, so the comparison is not vacuous
