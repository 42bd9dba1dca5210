"""The plan takes only programs in the recipient's state; a recipient without a state gets
no program at all (default deny), each listed with ``recipient_no_jurisdiction``."""

from __future__ import annotations

from sqlalchemy import update

from pipelines.demo import DEMO_DATE, PROGRAM_CODES
from pipelines.submission.plan import plan_run
from schemas import Recipient
from tests.pipelines.submission.conftest import World
from tests.pipelines.submission.test_local_submission import local


def _set_state(world: World, code: str, state: str | None) -> None:
    with world.engine.begin() as connection:
        connection.execute(update(Recipient).where(Recipient.code == code).values(state=state))


def test_when_recipient_has_a_state_then_only_its_programs_are_planned(world: World) -> None:
    local(world, "vt", "vt-aoe-ecids", "VT-AOE", ["hs_child_identity"])
    plan = plan_run("vt", DEMO_DATE, dry_run=True, settings=world.settings)
    assert plan["programs"] == ["VT-EHS-02", "VT-HS-01"]
    assert plan["skipped_programs"] == {}


def test_when_recipient_has_no_state_then_no_program_is_planned(world: World) -> None:
    local(world, "vt", "vt-aoe-ecids", "VT-AOE", ["hs_child_identity"])
    _set_state(world, "VT-AOE", None)
    plan = plan_run("vt", DEMO_DATE, dry_run=True, settings=world.settings)
    assert plan["programs"] == []
    assert plan["skipped_programs"] == dict.fromkeys(
        sorted(PROGRAM_CODES), "recipient_no_jurisdiction"
    )


def test_when_recipient_is_in_another_state_then_none_of_these_programs(world: World) -> None:
    local(world, "vt", "vt-aoe-ecids", "VT-AOE", ["hs_child_identity"])
    _set_state(world, "VT-AOE", "NH")
    plan = plan_run("vt", DEMO_DATE, dry_run=True, settings=world.settings)
    assert plan["programs"] == [] and plan["skipped_programs"] == {}
