"""Each program's report of a shard is its own input and output gate results, serialized as
a whole report is: the output text shared by programs whose gate results are the same
objects, never by programs with results of their own."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.demo import DEMO_DATE
from pipelines.submission import prepare as module
from pipelines.submission.plan import plan_run
from pipelines.submission.prepare import _prepare_together
from pipelines.submission.reports import report_text
from tests.pipelines.submission.conftest import World
from tests.pipelines.submission.test_remote_submission import FORMATS


def test_each_program_report_is_its_own_content_serialized_whole(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.destination("vt", type="local", recipient="VT-AOE", agreements=["vt-aoe-ecids"],
                      formats=FORMATS, local={"root": str(tmp_path / "drop")})  # fmt: skip
    plan = plan_run("vt", DEMO_DATE, settings=world.settings)
    programs = plan["shards"][0]
    assert len(programs) == 2
    seen: dict[str, Any] = {}
    gate = module.output_gate

    def gate_with_one_own(p: Any, frames: Any) -> dict[str, dict[str, Any]]:
        results = gate(p, frames)
        first, second = programs
        assert all(results[first][n] is results[second][n] for n in results[first])
        own = copy.deepcopy(results[second])  # the second program's results its own objects
        next(iter(own.values()))["report"]["rows"] = -1  # and different
        results[second] = own
        seen.update(results, reports=p.reports)
        return results

    monkeypatch.setattr(module, "output_gate", gate_with_one_own)
    prepared, stopped = _prepare_together(plan, programs, world.settings)
    assert not stopped and [p["program"] for p in prepared] == programs
    texts = {p["program"]: Path(p["report"]).read_text() for p in prepared}
    for code in programs:
        content = {"input": seen["reports"], "output": seen[code]}
        assert texts[code] == report_text(content)
    first, second = (json.loads(texts[c])["output"] for c in programs)
    assert first != second
