"""Running an external tool (ffmpeg, ffprobe, espeak-ng) the same way everywhere.

A missing or unrunnable executable is ``BackendUnavailable`` (the operator installs something),
a run past its time limit or a non-zero exit is ``GenerationError`` (this render failed) with the
tail of the tool's own error output, so the reason reaches the operator's log and status.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from story_state.errors import BackendUnavailable, GenerationError

TAIL_CHARS = 1500


def run_tool(
    args: list[str],
    *,
    what: str,
    timeout_s: float,
    stdin: bytes | None = None,
    fix: str = "",
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``args`` and return the finished process.

    ``what`` names the job in messages ("ffmpeg", "ffmpeg voice treatment"); ``fix`` says how to
    install the tool; ``check=False`` leaves the exit status to the caller.
    """
    try:
        proc = subprocess.run(args, input=stdin, capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise GenerationError(f"{what} took longer than {timeout_s:.0f}s") from exc
    except OSError as exc:
        raise BackendUnavailable(
            f"cannot run {Path(args[0]).name} ({exc})" + (f": {fix}" if fix else "")
        ) from exc
    if check and proc.returncode != 0:
        raise GenerationError(f"{what} exited with {proc.returncode}: {error_tail(proc)}")
    return proc


def error_tail(proc: subprocess.CompletedProcess[bytes]) -> str:
    """The end of the tool's error output, or a note that it printed nothing."""
    return proc.stderr.decode("utf-8", "replace").strip()[-TAIL_CHARS:] or "(no output)"


__all__ = ["error_tail", "run_tool"]
