"""The words the bot posts: clip captions, alt text and the poll question."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from story_state.models import Episode, PollOption
from story_state.text import shorten

ALT_TEXT_LIMIT = 1500


def _credit_line(names: Sequence[str], room: int | None = None) -> str:
    """ "Story ideas from ana, ben and 12 more." — as many names as ``room`` allows."""
    if not names:
        return ""
    shown = list(names)
    while True:
        hidden = len(names) - len(shown)
        listed = ", ".join(shown) + (f" and {hidden} more" if hidden else "")
        line = f"Story ideas from {listed}. Thank you!"
        if room is None or len(line) <= room or len(shown) <= 1:
            return line if room is None or len(line) <= room else ""
        shown.pop()


def voters_line(voters: int | None) -> str:
    if not voters:
        return ""
    return f"Chosen by {voters} voter{'s' if voters != 1 else ''}."


def early_close_line(closed_at: datetime | None) -> str:
    """For a round closed before its poll ended (servers cannot end a poll early)."""
    if closed_at is None:
        return ""
    return f"Voting closed at {closed_at.astimezone(UTC):%H:%M} UTC; later votes were not counted."


def clip_caption(
    episode: Episode,
    credits: Sequence[str],
    max_chars: int,
    voters: int | None = None,
    closed_early_at: datetime | None = None,
) -> str:
    """Title, as much narration as fits, and the people who shaped this episode."""
    title = episode.title or f"Episode {episode.number}"
    tail = " ".join(
        part
        for part in (
            voters_line(voters),
            early_close_line(closed_early_at),
            _credit_line(credits, max_chars // 2),
        )
        if part
    )
    room = max_chars - len(title) - (len(tail) + 2 if tail else 0) - 2
    parts = [title]
    if episode.narration and room > 40:
        parts.append(shorten(episode.narration, room))
    if tail:
        parts.append(tail)
    return shorten("\n\n".join(parts), max_chars)


def alt_text(narration: str, credits: Sequence[str]) -> str:
    """The clip's alt text: what it shows (a narrated still with subtitles) and what is said."""
    return _described("A narrated still image with subtitles. Narration: ", narration, credits)


def still_alt_text(narration: str, credits: Sequence[str]) -> str:
    """The alt text of the still posted where a server takes no video: no sound, no subtitles,
    so the narration it stands in for is given in full."""
    return _described(
        "A still image from the episode (this server takes no video). The episode's narration: ",
        narration,
        credits,
    )


def _described(lead: str, narration: str, credits: Sequence[str]) -> str:
    text = lead + narration
    credit = _credit_line(credits)
    if credit:
        text += " " + credit
    return shorten(text, ALT_TEXT_LIMIT)


def poll_caption(question: str, options: Sequence[PollOption], max_chars: int, number: int) -> str:
    """The poll post. Every round's text differs (X refuses a repeated post as a duplicate)."""
    invite = "Vote, or reply with your own idea: the best replies shape the next episode."
    lines = [question, ""]
    # The labels, exactly as the poll's buttons read (the beat behind one may be longer).
    lines += [f"{o.position}. {o.label}" for o in options]
    full = "\n".join([*lines, "", invite])
    if len(full) <= max_chars:
        return full
    return shorten(f"After episode {number}: {question} {invite}", max_chars)
