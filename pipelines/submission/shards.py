"""Shards: the groups of programs one mapped Airflow task prepares, then delivers, together.

Why shards: every mapped task is a new process that pays Airflow's and Great Expectations'
start-up (about 11 CPU seconds here) before it checks a row, and the gates cost about the same
for a hundred children as for ten thousand. A night of 300 programs mapped one task per
program paid that 600 times; in shards of about ``shard_children`` children it pays it a few
times. What stays per program: the batch, the delivery, the disclosure log, the audit, the
summary line and the stop (:mod:`.stops`): a program that fails stops only itself, the other
programs of its shard go on.

How programs are grouped: in the plan's order (program code), a shard takes programs until
the next one would bring it over ``max_children`` children or ``max_programs`` programs; a
program bigger than ``max_children`` is a shard on its own, never split (its batch is one
delivery). A small night of a few programs is one shard. Programs are counted by their
children rows (an upper bound of what the extract reads); no PII, only counts.
"""

from __future__ import annotations

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
    """``programs`` cut, in order, into shards of at most ``max_children`` children (unless
    one program alone has more) and ``max_programs`` programs."""
    if max_children < 1 or max_programs < 1:
        raise ValueError("a shard holds at least one child and one program")
    out: list[list[str]] = []
    current: list[str] = []
    held = 0
    for program in programs:
        size = children.get(program, 0)
        if current and (held + size > max_children or len(current) >= max_programs):
            out.append(current)
            current, held = [], 0
        current.append(program)
        held += size
    if current:
        out.append(current)
    return out


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
