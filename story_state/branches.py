"""Branch names, and the check that keeps every media path inside the media root.

A branch name becomes a folder under the media root (``<root>/<slug>/<branch>/episode-002``),
so it is held to a plain shape: lowercase ASCII letters, digits and hyphens, 1–40 of them.
Whatever the name, a path is only read or written after :func:`inside` has said that it
resolves (symlinks followed) to somewhere under the root.
"""

from __future__ import annotations

import re
from pathlib import Path

from story_state.errors import StateError

MAIN = "main"
MAX_BRANCH = 40
BRANCH_NAME = re.compile(rf"[a-z0-9-]{{1,{MAX_BRANCH}}}")


def check_branch(name: str, *, new: bool = False) -> str:
    """``name`` if it is a valid branch name; a StateError that says what is allowed if not.

    ``new``: the name is for a branch about to be made, so it may not be the main line's."""
    if not BRANCH_NAME.fullmatch(name):
        shown = name if len(name) <= 60 else name[:57] + "…"
        raise StateError(
            f"branch name {shown!r} is not allowed: use 1–{MAX_BRANCH} characters from "
            "a–z, 0–9 and '-' (e.g. what-if-2)"
        )
    if new and name == MAIN:
        raise StateError("a new branch needs a name other than 'main'")
    return name


def inside(root: Path, path: Path) -> Path:
    """``path`` unchanged if it resolves to somewhere under ``root``; a StateError if not."""
    try:
        resolved = path.resolve()
        base = root.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, an unreadable folder
        raise StateError(f"media path {path} cannot be resolved: {exc}") from None
    if not resolved.is_relative_to(base):
        raise StateError(f"media path {path} is outside the media root {root}")
    return path
