"""Story memory: which bible entries matter for a beat, and the rolling summary."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from story_state.text import shorten


@dataclass(frozen=True)
class Lore:
    """A story-bible entry as the writer and the image prompt see it."""

    kind: str  # "character" | "place" | "fact"
    name: str
    description: str
    visual: str = ""
    image_seed: int | None = None
    keywords: tuple[str, ...] = ()


def _mentions(text: str, words: Sequence[str]) -> bool:
    return any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", text, re.IGNORECASE) for w in words if w)


def triggers(entry: Lore) -> tuple[str, ...]:
    """The words that bring an entry to mind: its name, each part of it, its keywords."""
    parts = tuple(p for p in entry.name.split() if len(p) > 2 and p[0].isupper())
    return (entry.name, *parts, *entry.keywords)


def relevant(entries: Sequence[Lore], *texts: str, limit: int = 8) -> tuple[Lore, ...]:
    """Entries whose triggers appear in ``texts`` (world-info style), facts always first."""
    joined = "\n".join(texts)
    hits = [e for e in entries if _mentions(joined, triggers(e))]
    facts = [e for e in entries if e.kind == "fact" and e not in hits]
    return tuple((hits + facts)[:limit])


def in_shot(entries: Sequence[Lore], *texts: str) -> tuple[Lore, ...]:
    """Characters that appear in this episode's picture or narration."""
    joined = "\n".join(texts)
    return tuple(
        e for e in entries if e.kind == "character" and e.visual and _mentions(joined, triggers(e))
    )


def image_prompt_with_cast(prompt: str, cast: Sequence[Lore]) -> str:
    """Re-inject each character's fixed look so they are drawn alike in every episode.

    The looks go first: CLIP-based image models read only the first 77 tokens.
    """
    if not cast:
        return prompt
    looks = "; ".join(f"{c.name}, {c.visual}" for c in cast)
    return f"{looks}; {prompt}"


def update_summary(summary: str, number: int, beat: str, max_chars: int = 900) -> str:
    """Append this episode's beat; keep the most recent part within ``max_chars``."""
    line = f"Episode {number}: {shorten(' '.join(beat.split()), 200).rstrip('.')}."
    text = f"{summary} {line}".strip()
    while len(text) > max_chars and ". Episode " in text:
        text = text[text.index(". Episode ") + 2 :]
    return text
