"""Shards: the groups of programs one mapped Airflow task prepares, then delivers, together.

Why shards: every mapped task is a new process that pays Airflow's and Great Expectations'
start-up (about 11 CPU seconds here) before it checks a row, and the gates cost about the same
for a hundred children as for ten thousand. A night of 300 programs mapped one task per
program paid that 600 times; in shards of about ``shard_children`` children it pays it a few
times. What stays per program: the batch, the delivery, the disclosure log, the audit, the
summary line and the stop (:mod:`.stops`): a program that fails stops only itself, the other
programs of its shard go on.

How programs are grouped: as few shards as ``max_children`` allows (total children divided by
it, rounded up), cut in the plan's order (program code) into near-equal parts by children: a
program goes to the part its middle child falls in, so a shard holds about ``max_children``
children (it may pass it by part of one program; a program is never split, its batch is one
delivery), and a shard of more than ``max_programs`` programs is cut further. Equal parts keep
a night from ending on a small last shard that pays a whole task's start-up for a few
programs. A small night of a few programs is one shard. Programs are counted by their
children rows (an upper bound of what the extract reads); no PII, only counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from sqlalchemy import Engine, func, select

from schemas import Child, Program


def shards(
    programs: Sequence[str],
    children: Mapping[str, int],
    *,
    max_children: int,
    max_programs: int,
) -> list[list[str]]:
    """``programs`` cut, in order, into near-equal shards of about ``max_children`` children
    and at most ``max_programs`` programs."""
    if max_children < 1 or max_programs < 1:
        raise ValueError("a shard holds at least one child and one program")
    sizes = [max(children.get(p, 0), 0) for p in programs]
    total = sum(sizes)
    count = max(1, -(-total // max_children))
    target = total / count
    parts: dict[int, list[str]] = defaultdict(list)
    before = 0
    for program, size in zip(programs, sizes, strict=True):
        middle = before + size / 2
        parts[min(count - 1, int(middle // target)) if total else 0].append(program)
        before += size
    return [
        part[start : start + max_programs]
        for _, part in sorted(parts.items())
        for start in range(0, len(part), max_programs)
    ]


def children_per_program(engine: Engine, programs: Sequence[str]) -> dict[str, int]:
    """How many children each of ``programs`` holds (0 for none)."""
    if not programs:
        return {}
    with engine.connect() as connection:
        rows = connection.execute(
            select(Program.code, func.count(Child.id))
            .join(Child, Child.program_id == Program.id, isouter=True)
            .where(Program.code.in_(list(programs)))
            .group_by(Program.code)
        ).all()
    counts = {code: int(n) for code, n in rows}
    return {p: counts.get(p, 0) for p in programs}


def label(programs: Sequence[str], stopped: int = 0) -> str:
    """How the grid names a shard: ``VT-HS-01 … VT-HS-25 (25)``; a program alone by its code;
    with ``stopped`` programs that stopped, ``(25, 1 stopped)``."""
    if not programs:
        return "(no program)"
    names = programs[0] if len(programs) == 1 else f"{programs[0]} … {programs[-1]}"
    count = f"{len(programs)}" + (f", {stopped} stopped" if stopped else "")
    return names if len(programs) == 1 and not stopped else f"{names} ({count})"
