"""The harness's followers: they reply, like and vote in the sandbox, and remember it all.

They act through ``LocalPlatform.act`` in the harness's own process (the sandbox lives in
the story database), once per round, as soon as the round's poll is up. What they did is
the ground truth the final checks compare the database against.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.platforms.local import LocalAction, LocalPlatform
from story_state.db import session_scope
from story_state.lifecycle import EpisodeState, PostState, RoundStatus
from story_state.models import Episode, Post, Round, Story

FOLLOWERS = ("ana", "ben", "cy", "dara", "eli", "fay")
IDEAS = (
    "The miners rebel against the company",
    "A stowaway is found in the cargo hold",
    "The derelict ship starts to hum a song",
    "Someone on the crew has been here before",
    "The salt hides a buried city",
    "The radio picks up their own voices from tomorrow",
    "The captain seals the airlock with everyone outside",
)


@dataclass(frozen=True)
class OpenRound:
    """A round whose poll is posted: what the followers need to take part."""

    round_id: int
    episode: int
    clip_id: int
    poll_id: int
    options: int
    closes_due: bool  # its closing time has passed


@dataclass(frozen=True)
class Act:
    """One follower action, recorded so a reference run can replay it exactly.

    ``target`` is "clip" or "poll" for a reply, the index (in this round's replies) of the
    reply liked for a like; ``position`` is the option voted for.
    """

    actor: str
    kind: str  # "reply", "like" or "vote"
    text: str = ""
    target: str = ""
    position: int = 0


@dataclass
class Ledger:
    """Everything the followers did, by round."""

    replies: dict[int, int] = field(default_factory=dict)  # local post id → round id
    votes: dict[int, dict[str, int]] = field(default_factory=dict)  # poll id → voter → option
    poll_of_round: dict[int, int] = field(default_factory=dict)  # round id → poll post id
    acted: set[int] = field(default_factory=set)  # round ids
    script: dict[int, list[Act]] = field(default_factory=dict)  # episode number → actions


def open_round(session: Session, slug: str) -> OpenRound | None:
    """The main line's open round, once both of its posts are out on the local platform."""
    head = session.scalars(
        select(Episode)
        .join(Story)
        .where(Story.slug == slug, Episode.branch == "main")
        .order_by(Episode.number.desc())
    ).first()
    if head is None or head.state is not EpisodeState.POLLING or head.round is None:
        return None
    rnd = head.round
    if rnd.status is not RoundStatus.OPEN:
        return None
    sent = {
        p.kind: p.remote_id
        for p in session.scalars(
            select(Post).where(
                Post.episode_id == head.id, Post.platform == "local", Post.state == PostState.SENT
            )
        )
    }
    clip, poll = sent.get("clip"), sent.get("poll")
    if clip is None or poll is None:
        return None
    due = rnd.closes_at.timestamp() <= time.time()
    return OpenRound(rnd.id, head.number, int(clip), int(poll), len(rnd.options), due)


class Audience:
    def __init__(self, factory: sessionmaker[Session], seed: int) -> None:
        self.local = LocalPlatform(factory)
        self.factory = factory
        self.rng = random.Random(f"audience:{seed}")
        self.ledger = Ledger()

    def act(self, rnd: OpenRound) -> int:
        """Each follower may reply (to the clip or the poll), like a reply, and vote.

        What they do is drawn from the seed alone (the round's episode and option count),
        never from timing; it is recorded in ``ledger.script`` for the reference run.
        """
        if rnd.round_id in self.ledger.acted:
            return 0
        rng, ledger = self.rng, self.ledger
        ledger.acted.add(rnd.round_id)
        ledger.poll_of_round[rnd.round_id] = rnd.poll_id
        ledger.votes.setdefault(rnd.poll_id, {})
        acts: list[Act] = []
        for name in FOLLOWERS:
            if rng.random() < 0.8:
                text = f"{rng.choice(IDEAS)} ({name}, round {rnd.episode})"
                target = rng.choice(("clip", "poll"))
                acts.append(Act(name, "reply", text=text, target=target))
        replies = sum(1 for a in acts if a.kind == "reply")
        for name in FOLLOWERS:
            others = [i for i in range(replies) if rng.random() < 0.5]
            acts += [Act(name, "like", target=str(i)) for i in others[:1]]
        for name in FOLLOWERS:
            if rng.random() < 0.9:
                acts.append(Act(name, "vote", position=rng.randint(1, rnd.options)))
        ledger.script[rnd.episode] = acts
        mine = perform(self.local, rnd, acts)
        for reply_id in mine:
            ledger.replies[reply_id] = rnd.round_id
        for act in acts:
            if act.kind == "vote":
                ledger.votes[rnd.poll_id][act.actor] = act.position
        return len(mine)

    def make_due(self, rnd: OpenRound) -> None:
        """The round's time is up, as if round_minutes had passed: the runner closes it."""
        with session_scope(self.factory) as session:
            row = session.get(Round, rnd.round_id)
            if row is not None and row.status is RoundStatus.OPEN:
                row.closes_at = row.opens_at


def perform(local: LocalPlatform, rnd: OpenRound, acts: list[Act]) -> list[int]:
    """Do ``acts`` in ``rnd`` on the sandbox; returns the reply ids, in order."""
    mine: list[int] = []
    for act in acts:
        if act.kind == "reply":
            target = rnd.clip_id if act.target == "clip" else rnd.poll_id
            line = local.act(LocalAction(act.actor, reply=act.text, to=str(target)))
            mine.append(int(line.split()[1]))  # "reply 12 by ana to post 7"
        elif act.kind == "like":
            local.act(LocalAction(act.actor, like=str(mine[int(act.target)])))
        else:
            local.act(LocalAction(act.actor, vote=act.position))
    return mine
