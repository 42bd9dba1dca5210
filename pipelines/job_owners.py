"""Which process owns a verify job, and whether that process still runs.

A job records its owner: the host name (to show), the *space* its pid is read in (this boot of
the kernel and this pid namespace: two processes that see the same pids share it) and the pid
with that process's start time as the kernel counts it (clock ticks after boot, from
``/proc/<pid>/stat``), so a pid reused by a later process is not taken for the owner.

A process in the same space can look the owner up: gone (or a zombie, or another process now
under its pid) means the job is orphaned, at once, whatever its heartbeat says. A process in
another space (another api-server host, another container) cannot, and judges by heartbeat
only. Where there is no ``/proc`` (not Linux) the space is unknown and every job is judged by
heartbeat.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Owner:
    """A process that runs (or ran) a job."""

    host: str
    space: str | None
    pid: int
    started: str | None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


@cache
def _space() -> str | None:
    """This boot and this pid namespace, or None where there is no ``/proc``."""
    boot = _read(PROC / "sys/kernel/random/boot_id")
    try:
        namespace = os.readlink(PROC / "self/ns/pid")
    except OSError:
        return None
    return None if boot is None else f"{boot}/{namespace}"[:120]


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start in clock ticks after boot) of process ``pid``, or None if it is gone."""
    stat = _read(PROC / str(pid) / "stat")
    if stat is None:
        return None
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces and ")"
    return (fields[0], fields[19]) if len(fields) > 19 else None


def current() -> Owner:
    """This process, as a job records it."""
    pid = os.getpid()
    space = _space()
    found = _stat(pid) if space is not None else None
    return Owner(
        host=socket.gethostname()[:255],
        space=space,
        pid=pid,
        started=None if found is None else found[1],
    )


def visible(space: str | None) -> bool:
    """Whether a process of ``space`` can be looked up from here."""
    return space is not None and space == _space()


def ended(owner: Owner) -> bool:
    """Whether ``owner``, a process of this space, has ended: no such pid, a zombie, or
    another process (a later start) under its pid."""
    found = _stat(owner.pid)
    if found is None:
        return True
    state, started = found
    return state in ("Z", "X", "x") or started != owner.started
