"""Putting an episode together: its parts in story order, within the length it may run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

# Templates name characters through these markers; the first mention of someone the story has
# not met yet becomes their full introduction. clean() strips control characters from user
# text, so a marker can only ever come from a template.
LEAD, OTHER = "\x00L\x00", "\x00O\x00"


class Scene(NamedTuple):
    """Each part of an episode as its candidate lines, in random order."""

    opening: list[str]  # the premise (episode 1) or a recap of the last beat
    action: list[str]  # the beat happening ([] when the beat is the premise or the end)
    reaction: list[str]  # who acts on it
    ideas: list[list[str]]  # the community's ideas, happening in the scene
    result: list[str]  # what it costs (or, in the last episode, how it settles)
    closer: list[str]  # the cliffhanger, or the ending


def assemble(
    scene: Scene, fillers: Sequence[str], target: int, someone_in_beat: bool
) -> tuple[str, list[str]]:
    """The episode in story order, and the fillers it used.

    What must be said comes first: the opening, the beat, someone acting on it (unless the
    beat's own line already names someone), the ideas and the closer; then, as the length
    allows, the reaction, what it costs, and atmosphere. Over budget, the shortest lines.
    """
    closer, reaction, result = scene.closer, scene.reaction, scene.result
    action = scene.action

    def parts() -> list[list[str]]:
        named = someone_in_beat or bool(action and _names_someone(action[0]))
        return [scene.opening, action, [] if named else reaction[:1], *scene.ideas]

    if _words([p[0] for p in parts() if p] + closer[:1]) > target * 1.15:
        action = sorted(action, key=lambda s: (not _names_someone(s), _count(s)))
        closer, reaction, result = (sorted(c, key=_count) for c in (closer, reaction, result))
        shortest = [sorted(p, key=_count) for p in (scene.opening, *scene.ideas)]
        scene = scene._replace(opening=shortest[0], ideas=shortest[1:])
    must = [p[:1] for p in parts()]
    count = _words([p[0] for p in must if p] + closer[:1])
    optional: list[list[str]] = []
    for lines in ([] if must[2] else reaction[:1], result[:1]):
        fits = bool(lines) and count + _count(lines[0]) <= target + 3
        optional.append(lines if fits else [])
        count += _count(lines[0]) if fits else 0
    chosen = _fill(count, target, fillers)
    order = [
        *must[0],
        *chosen[:1],
        *must[1],
        *must[2],
        *optional[0],
        *(line for idea in must[3:] for line in idea),
        *chosen[1:],
        *optional[1],
        *closer[:1],
    ]
    return " ".join(order), chosen


def _count(sentence: str) -> int:
    return len(sentence.split())


def _names_someone(sentence: str) -> bool:
    return LEAD in sentence or OTHER in sentence


def _fill(count: int, target: int, fillers: Sequence[str]) -> list[str]:
    """Atmosphere sentences, in order, until the narration is about ``target`` words long."""
    chosen: list[str] = []
    for filler in fillers:
        if count >= target - 2:
            break
        if count + len(filler.split()) <= target + 3:
            chosen.append(filler)
            count += len(filler.split())
    return chosen


def _words(parts: Sequence[str]) -> int:
    return sum(len(p.split()) for p in parts)
