"""Enrollments (a current one per child, a prior one for some) and monthly attendance of the
current program year."""

from __future__ import annotations

import numpy as np

from pipelines.demo import draw
from pipelines.demo.draw import DAY, Columns
from pipelines.demo.population import Children
from pipelines.demo.world import (
    DEMO_DATE,
    HOLIDAYS,
    PRIOR_YEAR_END,
    PRIOR_YEAR_START,
    PROGRAM_YEAR_START,
    PROGRAMS,
)
from schemas.codes import ExitReason as Exit
from schemas.codes import ProgramOption as Opt
from schemas.codes import ProgramType

OPTIONS = {
    ProgramType.HEAD_START: {
        Opt.CENTER_BASED: 85,
        Opt.HOME_BASED: 8,
        Opt.COMBINATION: 4,
        Opt.FAMILY_CHILD_CARE: 3,
    },
    ProgramType.EARLY_HEAD_START: {
        Opt.CENTER_BASED: 55,
        Opt.HOME_BASED: 35,
        Opt.FAMILY_CHILD_CARE: 10,
    },
    ProgramType.MIGRANT_SEASONAL: {Opt.CENTER_BASED: 95, Opt.FAMILY_CHILD_CARE: 5},
    ProgramType.AIAN: {Opt.CENTER_BASED: 75, Opt.HOME_BASED: 20, Opt.LOCALLY_DESIGNED: 5},
}
EXIT_SHARE = 0.07
PRIOR_SHARE = 0.12
EXITS = (Exit.FAMILY_MOVED, Exit.FAMILY_CHOICE, Exit.OTHER, Exit.TRANSITION_TO_HEAD_START)
EXIT_WEIGHTS = {True: (35, 20, 10, 35), False: (50, 35, 15, 0)}  # keyed by "is EHS"
MONTHS = np.arange(np.datetime64(PROGRAM_YEAR_START, "M"), np.datetime64(DEMO_DATE, "M") + 1)


def enrollments(
    rng: np.random.Generator, kids: Children, site_ids: np.ndarray, first_ids: tuple[int, int]
) -> tuple[Columns, Columns, np.ndarray]:
    """The ``enrollments`` and ``attendance`` tables and each child's current entry date;
    ``site_ids[program, k]`` is the id of the program's k-th site."""
    n = len(kids.ids)
    demo = draw.day(DEMO_DATE)
    types = [p.program_type for p in PROGRAMS]
    is_hs = np.array([t is ProgramType.HEAD_START for t in types])[kids.program]
    is_ehs = np.array([t is ProgramType.EARLY_HEAD_START for t in types])[kids.program]
    min_entry = kids.birth + np.where(is_hs, 1096, 42) * DAY

    kind = draw.choose(rng, n, (65, 20, 15))  # new this year, returning, rolling intake
    candidate = np.select(
        [kind == 0, kind == 1],
        [
            draw.day(PROGRAM_YEAR_START) + draw.offsets(rng, n, 0, 21),
            draw.day(PRIOR_YEAR_START) + draw.offsets(rng, n, 0, 30),
        ],
        draw.between(rng, np.full(n, draw.day(PROGRAM_YEAR_START)), np.full(n, demo - DAY)),
    )
    entry = np.minimum(np.maximum(candidate, min_entry), demo)
    exited = (rng.random(n) < EXIT_SHARE) & (entry <= demo - 2 * DAY)
    exit_date = np.where(exited, draw.between(rng, entry + DAY, np.full(n, demo - DAY)), entry)
    reason = np.empty(n, dtype=object)
    for ehs in (True, False):
        mask = is_ehs == ehs
        reason[mask] = np.array([e.value for e in EXITS], dtype=object)[
            draw.choose(rng, int(mask.sum()), EXIT_WEIGHTS[ehs])
        ]

    prior_entry = np.maximum(draw.day(PRIOR_YEAR_START) + draw.offsets(rng, n, 0, 40), min_entry)
    has_prior = (
        (kind != 1)
        & (prior_entry <= draw.day(PRIOR_YEAR_END) - 30 * DAY)
        & (rng.random(n) < PRIOR_SHARE)
    )
    nsites = np.array([len(p.sites) for p in PROGRAMS])[kids.program]
    prior_site = (rng.random(n) * nsites).astype(int)
    prior_reason = np.array(
        [Exit.FAMILY_MOVED.value, Exit.FAMILY_CHOICE.value, Exit.OTHER.value], dtype=object
    )[draw.choose(rng, n, (40, 20, 40))]
    option = np.empty(n, dtype=object)
    for index, spec in enumerate(PROGRAMS):
        mask = kids.program == index
        weights = OPTIONS[spec.program_type]
        option[mask] = np.array([o.value for o in weights], dtype=object)[
            draw.choose(rng, int(mask.sum()), list(weights.values()))
        ]

    prior = np.flatnonzero(has_prior)
    child = np.concatenate([prior, np.arange(n)])
    order = np.argsort(child * 2 + np.repeat([0, 1], [len(prior), n]), kind="stable")
    current = np.concatenate([np.zeros(len(prior), bool), np.ones(n, bool)])[order]
    child = child[order]
    site_index = np.concatenate([prior_site[prior], kids.site])[order]
    site = site_ids[kids.program[child], site_index]
    ids = first_ids[0] + np.arange(len(child), dtype=np.int64)
    exit_all = np.concatenate([np.full(len(prior), draw.day(PRIOR_YEAR_END)), exit_date])[order]
    closed = np.concatenate([np.ones(len(prior), bool), exited])[order]
    table: Columns = {
        "id": ids,
        "child_id": kids.ids[child],
        "site_id": site,
        "program_option": np.concatenate([option[prior], option])[order],
        "entry_date": np.concatenate([prior_entry[prior], entry])[order],
        "exit_date": np.where(closed, exit_all, np.datetime64("NaT", "D")),
        "exit_reason": draw.where(closed, np.concatenate([prior_reason[prior], reason])[order]),
        "eligibility_category": kids.eligibility[child],
    }
    attendance = _attendance(rng, table, current, first_ids[1])
    return table, attendance, entry


def _attendance(
    rng: np.random.Generator, enr: Columns, current: np.ndarray, first_id: int
) -> Columns:
    """Days scheduled and present per month of the current program year, for enrollments
    active in it; home-based enrollments schedule a visit a week."""
    entry = enr["entry_date"][current]
    ends = enr["exit_date"][current]
    stop = np.where(np.isnat(ends), draw.day(DEMO_DATE), ends)
    month_start = MONTHS.astype("M8[D]")
    month_end = (MONTHS + 1).astype("M8[D]") - DAY
    start = np.maximum(np.maximum(entry[:, None], draw.day(PROGRAM_YEAR_START)), month_start)
    end = np.minimum(np.minimum(stop[:, None], draw.day(DEMO_DATE)), month_end)
    active = start <= end
    days = np.where(
        active,
        np.busday_count(start, np.maximum(end, start - DAY) + DAY, holidays=list(HOLIDAYS)),
        0,
    )
    home = (enr["program_option"][current] == Opt.HOME_BASED.value)[:, None]
    scheduled = np.where(home, -(-days // 5), days)
    habit = rng.beta(9.0, 1.2, size=len(entry))[:, None]  # each child's usual attendance
    present = rng.binomial(scheduled, np.broadcast_to(habit, scheduled.shape))
    keep = scheduled > 0
    rows = np.broadcast_to(enr["id"][current][:, None], keep.shape)[keep]
    return {
        "id": first_id + np.arange(int(keep.sum()), dtype=np.int64),
        "enrollment_id": rows,
        "month": np.broadcast_to(month_start, keep.shape)[keep],
        "days_scheduled": scheduled[keep],
        "days_present": present[keep],
    }
