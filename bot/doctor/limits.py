"""`storybot doctor`'s rows for what a platform accepts: post length, polls, video."""

from __future__ import annotations

from bot.doctor.checks import Check, Status
from bot.platforms.base import Limits


def _span(minutes: int) -> str:
    if minutes >= 2 * 1440:
        return f"{round(minutes / 1440)} days"
    if minutes >= 120:
        return f"{round(minutes / 60)} h"
    return f"{minutes} min"


def limits_rows(
    area: str, limits: Limits, round_minutes: int, *, assumed: bool = False
) -> list[Check]:
    """Posts and polls, as the platform's ``limits()`` says; ``assumed`` limits (the server did
    not say) are shown as unknown, never as ok."""
    known = Status.UNKNOWN if assumed else Status.OK
    note = " (assumed: the server did not say)" if assumed else ""
    rows = [Check(area, "posts", known, f"up to {limits.max_post_chars} characters{note}")]
    if limits.max_poll_options < 2:
        rows.append(Check(area, "polls", Status.WARN, "no polls: votes come from elsewhere"))
    else:
        low, high = limits.min_poll_minutes, limits.max_poll_minutes
        polls = (
            f"{limits.max_poll_options} options of up to {limits.max_option_chars} characters, "
            f"open {_span(low)} to {_span(high)}"
        )
        polls += note
        status = known
        if not low <= round_minutes <= high:
            status = Status.WARN
            cut = min(max(round_minutes, low), high)
            polls += f"; rounds of {round_minutes} min get polls of {cut} min"
        rows.append(Check(area, "polls", status, polls))
    return rows


def video_row(area: str, limits: Limits, video_note: str) -> Check:
    """Video, where the platform's limits settle it (X: always; the sandbox: never)."""
    if limits.accepts_video:
        return Check(area, "video", Status.OK, "clips are posted as video")
    return Check(area, "video", Status.WARN, video_note)


__all__ = ["limits_rows", "video_row"]
