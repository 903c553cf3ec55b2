"""After the chaos: the story, the outbox and the sandbox must agree, each thing exactly once."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from chaos.audience import Ledger
from story_state.lifecycle import EpisodeState, PostState, RoundStatus, StoryStatus
from story_state.models import Episode, LocalPost, LocalVote, Post, Story, Suggestion


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
    session: Session, slug: str, episodes: int, ledger: Ledger, media_root: Path
) -> Verdict:
    """Every check; a violation names what was expected and what the database holds."""
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
    by_kind = {(p.episode_id, p.kind): p for p in posts}
    verdict.check("outbox: one row per post, all sent", _outbox(slug, eps, posts))
    verdict.check("sandbox: each post published exactly once", _published_once(session, posts))
    verdict.check("thread: each post answers the one before", _thread(session, eps, by_kind))
    verdict.check(
        "media: clips exist, polls show the round", _media(session, eps, by_kind, media_root)
    )
    verdict.check("replies: each recorded once, in its round", _replies(session, eps, ledger))
    verdict.check("votes: each recorded once, tallied once", _votes(session, eps, ledger))
    verdict.check("rounds: the winner became the next beat", _rounds(eps, ledger))
    return verdict


def _outbox(slug: str, eps: list[Episode], posts: list[Post]) -> list[str]:
    problems = []
    want = {f"{slug}:{e.number}:clip:local" for e in eps}
    want |= {f"{slug}:{e.number}:poll:local" for e in eps if not e.is_final}
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


def _published_once(session: Session, posts: list[Post]) -> list[str]:
    bot = session.scalars(select(LocalPost).where(LocalPost.is_bot.is_(True))).all()
    problems = [f"sandbox post {p.id} has no idempotency key" for p in bot if not p.idempotency_key]
    keys = Counter(p.idempotency_key for p in bot)
    problems += [f"{k} published {n} times" for k, n in keys.items() if n > 1]
    by_id = {str(p.id): p for p in bot}
    for row in posts:
        found = by_id.get(row.remote_id or "")
        if found is None or found.idempotency_key != row.idempotency_key:
            problems.append(f"{row.idempotency_key}: remote id {row.remote_id} is not that post")
    if len(bot) != len(posts):
        problems.append(f"{len(bot)} bot posts in the sandbox for {len(posts)} outbox rows")
    return problems


def _thread(
    session: Session, eps: list[Episode], by_kind: dict[tuple[int, str], Post]
) -> list[str]:
    problems = []
    parent: Post | None = None
    for e in eps:
        for kind in ("clip", "poll"):
            row = by_kind.get((e.id, kind))
            if row is None:
                continue
            local = session.get(LocalPost, int(row.remote_id or 0))
            want = int(parent.remote_id or 0) if parent else None
            got = local.in_reply_to if local else "missing"
            if got != want or row.in_reply_to != (parent.remote_id if parent else None):
                problems.append(f"{row.idempotency_key} answers {got}, want {want}")
            parent = row
    return problems


def _media(
    session: Session, eps: list[Episode], by_kind: dict[tuple[int, str], Post], root: Path
) -> list[str]:
    problems = []
    for e in eps:
        video = root / (e.video_path or "missing")
        if not video.is_file() or video.stat().st_size == 0:
            problems.append(f"episode {e.number}: no clip at {video}")
        clip = by_kind.get((e.id, "clip"))
        local = session.get(LocalPost, int(clip.remote_id or 0)) if clip else None
        if local is None or [m["path"] for m in local.media] != [str(video)]:
            problems.append(f"episode {e.number}: the clip post does not carry {video}")
        poll = by_kind.get((e.id, "poll"))
        if poll is not None and e.round is not None:
            local = session.get(LocalPost, int(poll.remote_id or 0))
            labels = [o.label for o in e.round.options]
            if local is None or local.poll_options != labels:
                problems.append(f"episode {e.number}: poll shows {local and local.poll_options}")
    return problems


def _replies(session: Session, eps: list[Episode], ledger: Ledger) -> list[str]:
    rounds = {e.round.id for e in eps if e.round is not None}
    rows = session.scalars(select(Suggestion).where(Suggestion.round_id.in_(rounds))).all()
    seen = Counter((s.platform, s.remote_id) for s in rows)
    problems = [f"reply {r} stored {n} times" for (_, r), n in seen.items() if n > 1]
    stored = {s.remote_id: s.round_id for s in rows if s.platform == "local"}
    for reply_id, round_id in ledger.replies.items():
        if stored.get(str(reply_id)) != round_id:
            where = stored.get(str(reply_id))
            problems.append(f"reply {reply_id} of round {round_id} stored in round {where}")
    unknown = set(stored) - {str(r) for r in ledger.replies}
    problems += [f"suggestion from unknown reply {r}" for r in sorted(unknown)]
    return problems


def _votes(session: Session, eps: list[Episode], ledger: Ledger) -> list[str]:
    problems = []
    for e in eps:
        rnd = e.round
        if rnd is None:
            continue
        poll_id = ledger.poll_of_round.get(rnd.id)
        if poll_id is None:
            problems.append(f"round {e.number} closed before the followers voted")
            continue
        want = ledger.votes.get(poll_id, {})
        rows = session.scalars(select(LocalVote).where(LocalVote.post_id == poll_id)).all()
        if {v.voter: v.position for v in rows} != want or len(rows) != len(want):
            problems.append(f"round {e.number}: votes stored {len(rows)}, cast {len(want)}")
        counts = Counter(want.values())
        tallies = [t for t in rnd.tallies if t.platform == "local"]
        positions = Counter(t.position for t in tallies)
        if any(n != 1 for n in positions.values()) or len(tallies) != len(rnd.options):
            problems.append(f"round {e.number}: tally rows {sorted(positions.elements())}")
        got = {t.position: t.votes for t in tallies}
        expected = {o.position: counts.get(o.position, 0) for o in rnd.options}
        if got != expected:
            problems.append(f"round {e.number}: tallied {got}, cast {expected}")
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


def count_duplicates(session: Session, slug: str) -> int:
    """Posts published (or outbox rows, or replies stored) more than once."""
    story = session.scalars(select(Story).where(Story.slug == slug)).first()
    if story is None:
        return 0
    ids = [e.id for e in story.episodes]
    posts = session.scalars(select(Post).where(Post.episode_id.in_(ids))).all()
    bot = session.scalars(select(LocalPost).where(LocalPost.is_bot.is_(True))).all()
    rounds = [e.round.id for e in story.episodes if e.round is not None]
    rows = session.scalars(select(Suggestion).where(Suggestion.round_id.in_(rounds))).all()
    extra = 0
    for keys in (
        Counter(p.idempotency_key for p in posts),
        Counter(p.idempotency_key for p in bot),
        Counter((s.platform, s.remote_id) for s in rows),
    ):
        extra += sum(n - 1 for n in keys.values() if n > 1)
    return extra


def count_lost(session: Session, ledger: Ledger) -> int:
    """The followers' replies not stored in their round, and their votes not recorded."""
    stored = {
        s.remote_id: s.round_id
        for s in session.scalars(select(Suggestion).where(Suggestion.platform == "local"))
    }
    lost = sum(1 for r, rnd in ledger.replies.items() if stored.get(str(r)) != rnd)
    for poll_id, cast in ledger.votes.items():
        rows = session.scalars(select(LocalVote).where(LocalVote.post_id == poll_id)).all()
        got = {v.voter: v.position for v in rows}
        lost += sum(1 for voter, pos in cast.items() if got.get(voter) != pos)
    return lost
