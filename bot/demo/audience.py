"""A simulated audience for demos: followers who reply, like and vote, deterministically."""

from __future__ import annotations

import random
from dataclasses import dataclass

from bot.platforms.local import LocalAction, LocalActionError, LocalPlatform

NAMES = [
    "ana",
    "ben",
    "cy",
    "dara",
    "eli",
    "fen",
    "gus",
    "hana",
    "ivo",
    "jun",
    "kai",
    "lena",
    "milo",
    "nia",
    "oren",
    "pia",
    "quin",
    "rae",
    "sol",
    "tova",
    "uma",
    "vik",
    "wren",
    "xan",
    "yara",
    "zed",
]

# Ideas come in families of near-duplicates, as real replies do, so clustering has work.
IDEA_FAMILIES: tuple[tuple[str, ...], ...] = (
    ("The miners rebel", "the miners rebel!!", "Miners rebel against the company"),
    ("A stowaway is found in the cargo hold", "someone is hiding in the cargo hold"),
    ("The android remembers its past life", "the android remembers who it was"),
    ("A storm of salt buries the colony", "salt storm buries the colony!"),
    ("The radio picks up a voice from Earth", "a voice from Earth on the radio"),
    ("The captain was dead all along", "the captain has been dead all along"),
    ("They find a second sun rising", "a second sun rises over the flats"),
    ("The ship's AI starts singing", "the AI on the ship starts to sing"),
    ("A child draws a map of the tunnels", "the child's drawing is a map of the tunnels"),
    ("The water supply is poisoned", "someone poisoned the water"),
)


@dataclass(frozen=True)
class RoundReport:
    replies: int
    likes: int
    votes: int


class Audience:
    def __init__(self, size: int, seed: int) -> None:
        names = [
            NAMES[i % len(NAMES)] + (str(i // len(NAMES)) if i >= len(NAMES) else "")
            for i in range(size)
        ]
        self.names = names
        self.seed = seed

    def play_round(self, platform: LocalPlatform, round_number: int) -> RoundReport:
        """Everyone reacts to the open round through the same actions the CLI offers."""
        rng = random.Random(f"{self.seed}:{round_number}")
        replies: list[str] = []
        favourite_families = rng.sample(range(len(IDEA_FAMILIES)), k=3)
        for name in self.names:
            if rng.random() < 0.6:
                family = IDEA_FAMILIES[
                    rng.choice(favourite_families)
                    if rng.random() < 0.7
                    else rng.randrange(len(IDEA_FAMILIES))
                ]
                note = platform.act(LocalAction(actor=name, reply=rng.choice(family)))
                replies.append(note.split()[1])  # "reply <id> by ..."
        likes = 0
        for name in self.names:
            for target in rng.sample(replies, k=min(len(replies), rng.choice((0, 1, 2)))):
                try:
                    platform.act(LocalAction(actor=name, like=target))
                    likes += 1
                except LocalActionError:
                    pass  # already liked: a real follower cannot like twice either
        votes = 0
        poll = [p for p in platform.thread()["posts"] if p["is_bot"] and p["poll"]][-1]
        weights = [rng.random() ** 2 for _ in poll["poll"]["options"]]
        for name in self.names:
            if rng.random() < 0.85:
                choice = rng.choices(range(1, len(weights) + 1), weights=weights)[0]
                platform.act(LocalAction(actor=name, vote=choice))
                votes += 1
        return RoundReport(len(replies), likes, votes)
