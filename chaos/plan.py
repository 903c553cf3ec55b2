"""The kill plan: which runner life dies where, chosen by the seed and spread over the story.

Each item is one life of ``storybot run``: either SIGKILLed by the harness a random delay after
it is up, or armed with one failpoint (``bot/loop/failpoints.py``) that kills it from inside at an
exact spot. Items are spread evenly over the story's episodes (the last, which only renders
and posts its clip, gets half a share) and, within an episode, ordered as the lifecycle meets
them (render, publish, idle, close), so kills land all through the story, not after it ends.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from bot.loop.failpoints import POINTS, Failpoint

PHASE = {
    "mid_render": 0,
    "after_render": 0,
    "before_publish": 1,
    "after_publish": 1,
    "before_close": 3,
    "in_close": 3,
}
TIME_PHASE = 2
CLOSE_PHASE = 3
# Always in the plan when it has room: the two crash points the issue names first.
MUST = ("after_publish", "mid_render")
MIN_DELAY_S, MAX_DELAY_S = 0.3, 5.0


@dataclass(frozen=True)
class Kill:
    """One runner life and how it ends."""

    index: int
    episode: int  # the episode this kill is meant to land in (pacing)
    failpoint: Failpoint | None  # None: killed from outside after ``delay_s``
    delay_s: float = 0.0

    @property
    def phase(self) -> int:
        return PHASE[self.failpoint.name] if self.failpoint else TIME_PHASE

    @property
    def is_close(self) -> bool:
        return self.phase == CLOSE_PHASE

    def describe(self) -> str:
        if self.failpoint is None:
            return f"SIGKILL after {self.delay_s:.2f}s"
        return f"failpoint {self.failpoint.spec()}"


def _failpoint(name: str, rng: random.Random) -> Failpoint:
    # Publishing happens twice per episode (clip, then poll): the 2nd hit is the poll.
    nth = rng.choice((1, 2)) if name in ("before_publish", "after_publish") else 1
    return Failpoint(name, "kill", nth)


def make_plan(kills: int, rounds: int, seed: int) -> list[Kill]:
    """``kills`` items over a story of ``rounds`` rounds (``rounds + 1`` episodes)."""
    rng = random.Random(seed)
    episodes = rounds + 1
    # The last episode only renders and posts its clip: it counts as half an episode, so the
    # kills are not spent on a story that has already ended.
    halves = 2 * episodes - 1
    slots = [1 + (i * halves // max(kills, 1)) // 2 for i in range(kills)]
    wanted = max(len(MUST), math.ceil(kills * 0.6))
    extra = [p for p in POINTS if p not in MUST]
    rng.shuffle(extra)
    required = [*MUST, *extra][: min(kills, wanted, len(POINTS))]
    kinds: list[str | None] = [*required]
    while len(kinds) < kills:
        kinds.append(rng.choice(POINTS) if rng.random() < 0.6 else None)
    rng.shuffle(kinds)
    plan: list[Kill] = []
    for i, (episode, name) in enumerate(zip(slots, kinds, strict=True)):
        if episode >= episodes and (name is None or PHASE[name] == CLOSE_PHASE):
            episode = episodes - 1  # the last episode has no round to close or wait in
        delay = round(rng.uniform(MIN_DELAY_S, MAX_DELAY_S), 2)
        fp = _failpoint(name, rng) if name is not None else None
        if fp is not None and episode >= episodes and fp.nth > 1:
            fp = Failpoint(fp.name, fp.action)  # the last episode posts its clip only
        plan.append(Kill(i, max(1, episode), fp, delay))
    plan.sort(key=lambda k: (k.episode, k.phase, k.index))
    return [Kill(n, k.episode, k.failpoint, k.delay_s) for n, k in enumerate(plan, start=1)]
