"""One safe way to build a path from data or arguments: :func:`safe_join`.

Program codes, run ids, destination names and file names come from the database, from
configuration or from the command line; each becomes a path component of a staging, report,
dry-run or output folder, or of a run log. :func:`safe_join` takes a trusted root and such
components and refuses, with :class:`UnsafePathError`, any component that is empty, ``.`` or
``..``, absolute, or holds a path separator or a NUL, and any result that would still land
outside the root once symbolic links are resolved. Messages name the component's role, never
anything from a record.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["UnsafePathError", "safe_component", "safe_join"]

_SEPARATORS = frozenset({"/", "\\", "\x00"})


class UnsafePathError(ValueError):
    """A path component from data or arguments would leave its folder."""


def safe_component(part: object, role: str = "path component") -> str:
    """``part`` as one plain file or folder name, or :class:`UnsafePathError`."""
    text = str(part)
    if text in ("", ".", "..") or any(c in _SEPARATORS for c in text) or os.path.isabs(text):
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise UnsafePathError(
            f"{role} {shown!r} cannot name a file or folder: it must be one plain name "
            "(no '/', '\\', '..' or absolute path)"
        )
    return text


def safe_join(root: Path | str, *parts: object, role: str = "path component") -> Path:
    """``root / part / ...`` when every part is one plain name and the result stays inside
    ``root`` (symbolic links resolved); else :class:`UnsafePathError`."""
    base = Path(root)
    path = base.joinpath(*(safe_component(p, role) for p in parts))
    resolved_root = base.resolve()
    resolved = path.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise UnsafePathError(f"{role}: {path.name!r} would lead outside {base}")
    return path
