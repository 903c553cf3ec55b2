"""After the chaos, the database's own checks: the story ended, one outbox row per post, the
winners became the beats, and the same beats and winners as an uninterrupted run."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from chaos.audience import Ledger
from story_state.lifecycle import EpisodeState, PostState, RoundStatus, StoryStatus
from story_state.models import Episode, Post, Story


@dataclass
class Verdict:
    passed: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def check(self, name: str, problems: list[str]) -> None:
        if problems:
            self.violations += [f"{name}: {p}" for p in problems]
        else:
            self.passed.append(name)


def check_story(
    session: Session, slug: str, episodes: int, platform: str, ledger: Ledger, media_root: Path
) -> Verdict:
    """The database's own checks; a violation names what was expected and what it holds.

    What the platform shows is compared with the database in chaos/record.py.
    """
    verdict = Verdict()
    story = session.scalars(select(Story).where(Story.slug == slug)).first()
    if story is None:
        verdict.check("story completed", [f"story {slug} was never created"])
        return verdict
    eps = sorted(story.episodes, key=lambda e: e.number)
    want_states = [EpisodeState.CLOSED] * (episodes - 1) + [EpisodeState.ENDED]
    problems = []
    if story.status is not StoryStatus.ENDED:
        problems.append(f"story is {story.status}, not ended")
    if [(e.branch, e.number) for e in eps] != [("main", n) for n in range(1, episodes + 1)]:
        problems.append(f"episodes {[(e.branch, e.number) for e in eps]}, want 1..{episodes}")
    if [e.state for e in eps] != want_states[: len(eps)]:
        problems.append(f"states {[str(e.state) for e in eps]}")
    verdict.check("story completed", problems)

    posts = list(session.scalars(select(Post).where(Post.episode_id.in_([e.id for e in eps]))))
    verdict.check("outbox: one row per post, all sent", _outbox(slug, eps, posts, platform))
    verdict.check("media: every episode's clip is on disk", _media(eps, media_root))
    verdict.check("rounds: the winner became the next beat", _rounds(eps, ledger))
    return verdict


def _outbox(slug: str, eps: list[Episode], posts: list[Post], platform: str) -> list[str]:
    problems = []
    want = {f"{slug}:{e.number}:clip:{platform}" for e in eps}
    want |= {f"{slug}:{e.number}:poll:{platform}" for e in eps if not e.is_final}
    keys = Counter(p.idempotency_key for p in posts)
    problems += [f"key {k} has {n} rows" for k, n in keys.items() if n != 1]
    if set(keys) != want:
        problems.append(
            f"keys missing {sorted(want - set(keys))}, extra {sorted(set(keys) - want)}"
        )
    problems += [
        f"{p.idempotency_key} is {p.state}" for p in posts if p.state is not PostState.SENT
    ]
    remote = Counter(p.remote_id for p in posts)
    problems += [f"remote id {r} stored {n} times" for r, n in remote.items() if r is None or n > 1]
    return problems


def _media(eps: list[Episode], root: Path) -> list[str]:
    problems = []
    for e in eps:
        video = root / (e.video_path or "missing")
        if not video.is_file() or video.stat().st_size == 0:
            problems.append(f"episode {e.number}: no clip at {video}")
    return problems


def _rounds(eps: list[Episode], ledger: Ledger) -> list[str]:
    problems = []
    for e, nxt in pairwise(eps):
        rnd = e.round
        if rnd is None or rnd.status is not RoundStatus.CLOSED or not rnd.winner_position:
            problems.append(f"round {e.number} is not closed with a winner")
            continue
        if rnd.id not in ledger.acted:
            problems.append(f"round {e.number} never reached the followers")
        winner = rnd.options[rnd.winner_position - 1]
        totals = list((rnd.decision or {}).get("totals", []))
        if nxt.beat != winner.beat or nxt.parent_id != e.id:
            problems.append(f"episode {nxt.number} tells {nxt.beat!r}, not {winner.beat!r}")
        if totals and totals[rnd.winner_position - 1] != max(totals):
            problems.append(f"round {e.number}: option {rnd.winner_position} won with {totals}")
    return problems


@dataclass
class Outcome:
    """What a story told: each main-line episode's beat and its round's winning option."""

    beats: dict[int, str] = field(default_factory=dict)
    winners: dict[int, int | None] = field(default_factory=dict)


def outcome(session: Session, slug: str) -> Outcome:
    found = Outcome()
    story = session.scalars(select(Story).where(Story.slug == slug)).first()
    for e in story.episodes if story is not None else []:
        if e.branch != "main":
            continue
        found.beats[e.number] = e.beat
        found.winners[e.number] = e.round.winner_position if e.round is not None else None
    return found


def diverged(reference: Outcome, chaotic: Outcome) -> list[str]:
    """Episodes whose beat or winner differs from the uninterrupted run's (or is missing)."""
    problems = []
    for n in sorted(set(reference.beats) | set(chaotic.beats)):
        want, got = reference.beats.get(n), chaotic.beats.get(n)
        if want != got:
            problems.append(f"episode {n} tells {got!r}, the uninterrupted run {want!r}")
        elif reference.winners.get(n) != chaotic.winners.get(n):
            w, g = reference.winners.get(n), chaotic.winners.get(n)
            problems.append(f"episode {n}: option {g} won, in the uninterrupted run {w}")
    return problems
