"""Captions fit every platform's limit and still name the people who shaped the episode."""

from __future__ import annotations

import pytest

from bot.loop.captions import clip_caption
from story_state.models import Episode

NARRATION = "The salt storm parts and the derelict ship hums awake. " * 6


def episode() -> Episode:
    return Episode(number=4, title="Episode 4: The Hum", narration=NARRATION)


@pytest.mark.parametrize("limit", [280, 500])
def test_caption_fits_and_credits_survive(limit: int) -> None:
    names = [f"fan{i}" for i in range(40)]
    text = clip_caption(episode(), names, limit, voters=57)
    assert len(text) <= limit
    assert text.startswith("Episode 4: The Hum")
    assert "Chosen by 57 voters." in text
    assert "Story ideas from fan0" in text and "more. Thank you!" in text


def test_few_credits_are_listed_in_full() -> None:
    text = clip_caption(episode(), ["ana", "ben"], 500, voters=1)
    assert text.endswith("Chosen by 1 voter. Story ideas from ana, ben. Thank you!")
    assert clip_caption(episode(), [], 500).count("Story ideas") == 0
