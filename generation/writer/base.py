"""The writer port: from the story so far and the chosen beat to one episode's script."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from story_state.memory import Lore


@dataclass(frozen=True)
class Idea:
    """A community suggestion the writer should weave in, credited to its authors."""

    text: str
    authors: tuple[str, ...] = ()


@dataclass(frozen=True)
class PreviousEpisode:
    number: int
    title: str
    beat: str
    narration: str


@dataclass(frozen=True)
class StoryContext:
    title: str
    premise: str
    style: str
    language: str
    previous: tuple[PreviousEpisode, ...] = ()
    summary: str = ""  # the story so far, in a few sentences
    lore: tuple[Lore, ...] = ()  # the bible entries relevant to this beat
    # What the story has established on this path, in plain words ("Mara is dead"): the next
    # beats a writer offers must neither tell these again nor contradict them.
    facts: tuple[str, ...] = ()


@dataclass(frozen=True)
class WriteRequest:
    context: StoryContext
    number: int  # 1-based episode number
    beat: str  # what happens in this episode (the previous poll's winner)
    ideas: tuple[Idea, ...] = ()
    seed: int = 0
    is_final: bool = False
    max_options: int = 4  # 2..4
    target_seconds: float = 20.0  # spoken length to aim for


@dataclass(frozen=True)
class Script:
    title: str
    narration: str
    subtitles: tuple[str, ...]  # narration split into screen-sized lines, in order
    image_prompt: str
    options: tuple[str, ...] = field(default_factory=tuple)  # 2–4 next beats; () if final
    # Characters, places and facts this episode introduces: proposed for the story bible.
    lore: tuple[Lore, ...] = ()


class Writer(Protocol):
    def write(self, request: WriteRequest) -> Script: ...
