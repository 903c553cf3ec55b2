"""The harness's followers: they reply, like and vote on the platform itself, and remember it.

They act through a ``World`` (chaos/world.py): in the sandbox through ``LocalPlatform.act``,
on a Mastodon-API server with their own tokens. They act once per round, as soon as the
round's poll is up, and the round is not closed before the server shows what they did (a
real round lasts minutes; Takahe makes some things a second late). What they did is kept in
a ledger: the script a reference run replays, and a check that the server has it all.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from chaos.world import FOLLOWERS, World
from story_state.db import session_scope
from story_state.lifecycle import EpisodeState, PostState, RoundStatus
from story_state.models import Episode, Post, Round, Story

IDEAS = (
    "The miners rebel against the company",
    "A stowaway is found in the cargo hold",
    "The derelict ship starts to hum a song",
    "Someone on the crew has been here before",
    "The salt hides a buried city",
    "The radio picks up their own voices from tomorrow",
    "The captain seals the airlock with everyone outside",
)
SETTLE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class OpenRound:
    """A round whose poll is posted: what the followers need to take part."""

    round_id: int
    episode: int
    clip_id: str
    poll_id: str
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
    """Everything the followers did, by round (ids are the platform's)."""

    replies: dict[str, int] = field(default_factory=dict)  # reply id → round id
    parents: dict[str, str] = field(default_factory=dict)  # reply id → status it answers
    likes: Counter[str] = field(default_factory=Counter)  # reply id → likes given
    votes: dict[str, dict[str, int]] = field(default_factory=dict)  # poll → voter → option
    poll_of_round: dict[int, str] = field(default_factory=dict)  # round id → poll status id
    acted: set[int] = field(default_factory=set)  # round ids
    script: dict[int, list[Act]] = field(default_factory=dict)  # episode number → actions


def open_round(session: Session, slug: str, platform: str) -> OpenRound | None:
    """The main line's open round, once both of its posts are out on ``platform``."""
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
                Post.episode_id == head.id, Post.platform == platform, Post.state == PostState.SENT
            )
        )
    }
    clip, poll = sent.get("clip"), sent.get("poll")
    if clip is None or poll is None:
        return None
    due = rnd.closes_at.timestamp() <= time.time()
    return OpenRound(rnd.id, head.number, clip, poll, len(rnd.options), due)


class Audience:
    def __init__(self, factory: sessionmaker[Session], world: World, seed: int) -> None:
        self.factory = factory
        self.world = world
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
        mine = perform(self.world, rnd, acts)
        for reply_id, act in zip(mine, (a for a in acts if a.kind == "reply"), strict=True):
            ledger.replies[reply_id] = rnd.round_id
            ledger.parents[reply_id] = rnd.clip_id if act.target == "clip" else rnd.poll_id
        for act in acts:
            if act.kind == "like":
                ledger.likes[mine[int(act.target)]] += 1
            elif act.kind == "vote":
                ledger.votes[rnd.poll_id][act.actor] = act.position
        return len(mine)

    def settle(self, rnd: OpenRound, timeout_s: float = SETTLE_TIMEOUT_S) -> list[str]:
        """Wait until the server shows this round's replies, likes and votes; what it never
        showed (an empty list once it shows everything)."""
        deadline = time.monotonic() + timeout_s
        while True:
            missing = self.unseen(rnd)
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(0.3)

    def unseen(self, rnd: OpenRound) -> list[str]:
        """What the followers did in ``rnd`` that the server does not show (or shows wrong)."""
        ledger, world = self.ledger, self.world
        mine = {r: p for r, p in ledger.parents.items() if ledger.replies[r] == rnd.round_id}
        shown = {s.id: s for s in world.replies_to([rnd.clip_id, rnd.poll_id])}
        problems = []
        for reply_id, parent in mine.items():
            status = shown.get(reply_id)
            if status is None or status.in_reply_to != parent:
                problems.append(f"reply {reply_id} to {parent} is not on the server")
            elif status.likes != ledger.likes.get(reply_id, 0):
                problems.append(
                    f"reply {reply_id} shows {status.likes} likes, given {ledger.likes[reply_id]}"
                )
        poll = next((s for s in world.bot_statuses() if s.id == rnd.poll_id), None)
        cast = Counter(ledger.votes.get(rnd.poll_id, {}).values())
        want = tuple(cast.get(i, 0) for i in range(1, rnd.options + 1))
        if poll is None or poll.votes != want:
            problems.append(f"poll {rnd.poll_id} shows {poll and poll.votes}, cast {want}")
        return problems

    def make_due(self, rnd: OpenRound) -> None:
        """The round's time is up, as if round_minutes had passed: the runner closes it."""
        with session_scope(self.factory) as session:
            row = session.get(Round, rnd.round_id)
            if row is not None and row.status is RoundStatus.OPEN:
                row.closes_at = row.opens_at


def perform(world: World, rnd: OpenRound, acts: list[Act]) -> list[str]:
    """Do ``acts`` in ``rnd`` on ``world``; returns the reply ids, in order."""
    mine: list[str] = []
    for act in acts:
        if act.kind == "reply":
            target = rnd.clip_id if act.target == "clip" else rnd.poll_id
            mine.append(world.reply(act.actor, target, act.text))
        elif act.kind == "like":
            world.like(act.actor, mine[int(act.target)])
        else:
            world.vote(act.actor, rnd.poll_id, act.position)
    return mine
