"""The redaction audit names only fields actually withheld from a disclosure that would
otherwise carry them.

A field the agreement names but none of the destination's formats carries (Vermont's
agreement names ``tribal_affiliation``; no file spec has a column for it) never leaves anyone's
record, so removing it from a child is not a redaction: no audit line, not counted in the run's
"fields removed". A field the formats carry and a rule removes (an AIAN opt-in excluding
``race``) is audited for every disclosed child of the program, and counted.

The oracle reads the file specs' YAML for the columns' sources; it does not ask the code under
test which fields are carried.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from pipelines.demo import DEMO_DATE
from privacy.participation import record_change
from schemas import RedactionEntry
from schemas.codes import OptInScope, ParticipationAction
from tests.pipelines.submission.conftest import PROJECT, World
from tests.pipelines.submission.kinds import FORMATS, small_world

AIAN = "NM-AIAN-07"
AGREEMENT = "nm-ececd-records"


def carried_by_formats(formats: list[str]) -> set[str]:
    """Every column source of the formats, read from their YAML."""
    sources: set[str] = set()
    for name in formats:
        spec = yaml.safe_load((PROJECT / "schemas" / "formats" / f"{name}.yaml").read_text())
        sources |= {str(column["source"]) for column in spec.get("columns", [])}
    return sources


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = small_world(tmp_path)
    data = yaml.safe_load((PROJECT / "config/agreements/vt-aoe-ecids.yaml").read_text())
    data |= {"id": AGREEMENT, "recipient": "NM-ECECD"}
    (made.config / "agreements" / f"{AGREEMENT}.yaml").write_text(yaml.safe_dump(data))
    made.destination(
        "nm",
        type="local",
        recipient="NM-ECECD",
        agreements=[AGREEMENT],
        formats=FORMATS,
        local={"root": str(tmp_path / "drop")},
    )
    yield made
    made.engine.dispose()


CASES = [
    # (fields the AIAN opt-in excludes, the field audited as excluded for its children, if any)
    pytest.param((), None, id="nothing-excluded"),
    pytest.param(("race",), "race", id="carried-field-excluded"),
    pytest.param(("tribal_affiliation",), None, id="uncarried-field-excluded"),
    pytest.param(("race", "tribal_affiliation"), "race", id="both-excluded"),
]


@pytest.mark.parametrize(("excluded", "audited"), CASES)
def test_only_fields_a_format_carries_are_audited_as_removed(
    world: World, excluded: tuple[str, ...], audited: str | None
) -> None:
    assert (
        "tribal_affiliation"
        in yaml.safe_load((PROJECT / "config/agreements/vt-aoe-ecids.yaml").read_text())["fields"]
    ), "the agreement names the field"
    carried = carried_by_formats(FORMATS)
    assert "tribal_affiliation" not in carried and "race" in carried
    with Session(world.engine) as session, session.begin():
        record_change(
            session,
            AIAN,
            ParticipationAction.OPT_IN,
            decided_by="tribal council",
            authority="Resolution 2026-30",
            recorded_by="clerk",
            scope=OptInScope.RECORD,
            excluded_fields=excluded,
            effective_date=DEMO_DATE - dt.timedelta(days=30),
        )
    summary = world.run("nm", run_date=DEMO_DATE)
    assert summary["status"] == "success", summary["stop_lines"]
    with Session(world.engine) as session:
        lines = session.execute(
            select(
                RedactionEntry.program_code,
                RedactionEntry.subject,
                RedactionEntry.field,
                RedactionEntry.reason_code,
            ).where(RedactionEntry.run_id == summary["run_id"], RedactionEntry.field.is_not(None))
        ).all()
    assert {field for _, _, field, _ in lines} <= carried, "only carried fields are audited"
    removed = summary["fields_removed_by_reason"]
    assert "tribal_affiliation_not_permitted" not in removed
    log = world.disclosures()
    sent = set(log.loc[log["program_code"] == AIAN, "child_local_id"])
    assert sent, "the AIAN program's children were disclosed"
    excluded_lines = {(p, s, f) for p, s, f, r in lines if r == "aian_field_excluded"}
    if audited is None:
        assert not excluded_lines and "aian_field_excluded" not in removed
    else:
        assert excluded_lines == {(AIAN, child, audited) for child in sent}
        assert removed["aian_field_excluded"] == len(sent)
        fields = log.loc[log["program_code"] == AIAN, "fields"]
        assert not any(audited in f for f in fields), "and the field did not leave"
    assert sum(removed.values()) == len(lines), "the count is the audit's lines"
