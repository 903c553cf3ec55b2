"""The words the bot posts: clip captions, alt text and the poll question."""

from __future__ import annotations

from collections.abc import Sequence

from story_state.models import Episode, PollOption
from story_state.text import shorten

ALT_TEXT_LIMIT = 1500


def _credit_line(names: Sequence[str]) -> str:
    if not names:
        return ""
    return "Story ideas from " + ", ".join(names) + ". Thank you!"


def clip_caption(episode: Episode, credits: Sequence[str], max_chars: int) -> str:
    parts = [episode.title or f"Episode {episode.number}"]
    credit = _credit_line(credits)
    tail = "\n\n" + credit if credit else ""
    room = max_chars - len(parts[0]) - len(tail) - 2
    if episode.narration and room > 40:
        parts.append(shorten(episode.narration, room))
    text = "\n\n".join(parts) + tail
    return shorten(text, max_chars)


def alt_text(narration: str, credits: Sequence[str]) -> str:
    text = "Narrated still image with subtitles. Narration: " + narration
    credit = _credit_line(credits)
    if credit:
        text += " " + credit
    return shorten(text, ALT_TEXT_LIMIT)


def poll_caption(question: str, options: Sequence[PollOption], max_chars: int, number: int) -> str:
    """The poll post. Every round's text differs (X refuses a repeated post as a duplicate)."""
    invite = "Vote, or reply with your own idea: the best replies shape the next episode."
    lines = [question, ""]
    lines += [f"{o.position}. {o.beat}" for o in options]
    full = "\n".join([*lines, "", invite])
    if len(full) <= max_chars:
        return full
    return shorten(f"After episode {number}: {question} {invite}", max_chars)
