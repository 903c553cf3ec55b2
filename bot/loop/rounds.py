"""A round's decisions with the database at hand: its options, its close, forks and memory."""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import Config
from bot.ideas.harvest import leftover_clusters, round_clusters
from bot.loop import failpoints
from bot.platforms.base import Limits
from bot.platforms.base import PollTally as TallyIn
from generation.pipeline import derive_seed
from generation.writer.base import Script
from story_state import engine
from story_state.errors import StateError
from story_state.lifecycle import EpisodeState, RoundStatus
from story_state.memory import Lore, update_summary
from story_state.models import (
    Contributor,
    Credit,
    Episode,
    LoreEntry,
    PollOption,
    PollTally,
    Round,
)

ENDING_LABEL = "End the story here"
ENDING_BEAT = "The story comes to its end"


def add_options(
    session: Session, episode: Episode, rnd: Round, limits: Limits, config: Config
) -> None:
    """The poll: writer beats, the idea the most people asked for, and near the cap an ending."""
    remaining = episode.story.episode_cap - episode.number
    ending = 1 < remaining <= config.story.offer_ending_within
    specs = engine.build_options(
        episode.next_options or [],
        leftover_clusters(episode),
        max_options=limits.max_poll_options - (1 if ending else 0),
        max_chars=limits.max_option_chars,
        current_beat=episode.beat,
    )
    if ending:
        label = engine.fit_label(ENDING_LABEL, limits.max_option_chars)
        specs.append(engine.OptionSpec(label, ENDING_BEAT, "ending"))
    for position, spec in enumerate(specs, start=1):
        session.add(
            PollOption(
                round_id=rnd.id,
                position=position,
                label=spec.label,
                beat=spec.beat,
                source=spec.source,
                contributor_ids=[int(a) for a in spec.authors],
            )
        )


def _names(session: Session, author_ids: tuple[str, ...]) -> list[str]:
    found = (session.get(Contributor, int(a)) for a in author_ids)
    return [c.display_name for c in found if c is not None]


def store_tally(
    session: Session, round_id: int, platform: str, counts: Sequence[int], now: datetime
) -> None:
    """Keep ``counts`` as ``platform``'s reading of the round's poll at ``now``: the rows of an
    earlier reading are updated in place (one row per option, unique), missing ones added."""
    rows = {
        r.position: r
        for r in session.scalars(
            select(PollTally).where(PollTally.round_id == round_id, PollTally.platform == platform)
        )
    }
    for position, votes in enumerate(counts, start=1):
        row = rows.pop(position, None)
        if row is None:
            session.add(
                PollTally(
                    round_id=round_id,
                    platform=platform,
                    position=position,
                    votes=int(votes),
                    fetched_at=now,
                )
            )
        else:
            row.votes, row.fetched_at = int(votes), now
    for row in rows.values():  # the poll has fewer options than an earlier reading said
        session.delete(row)


def stored_tally(
    session: Session, round_id: int, platform: str, options: int
) -> tuple[tuple[int, ...], datetime] | None:
    """``platform``'s last stored reading of the round's poll: votes per option and when it
    was read; None if it was never read."""
    rows = session.scalars(
        select(PollTally).where(PollTally.round_id == round_id, PollTally.platform == platform)
    ).all()
    return _reading(rows, options) if rows else None


def _reading(rows: Sequence[PollTally], options: int) -> tuple[tuple[int, ...], datetime]:
    votes = dict.fromkeys(range(1, options + 1), 0) | {r.position: r.votes for r in rows}
    return tuple(votes[p] for p in range(1, options + 1)), max(r.fetched_at for r in rows)


def readings(rnd: Round) -> dict[str, tuple[tuple[int, ...], datetime]]:
    """Each platform's stored reading of the round's poll (live while it is open, final once
    closed): votes per option and when they were read. No platform is called."""
    by_platform: dict[str, list[PollTally]] = {}
    for row in rnd.tallies:
        by_platform.setdefault(row.platform, []).append(row)
    return {name: _reading(rows, len(rnd.options)) for name, rows in by_platform.items()}


def close(
    session: Session,
    episode: Episode,
    tallies: Mapping[str, TallyIn],
    now: datetime,
    vector_threshold: float = 0.8,
    unread: Collection[str] = (),
) -> str:
    """Tally, pick the winner, plan the next episode with its ideas and credits.

    ``unread``: platforms whose poll could not be read now. Each counts with its last live
    reading (stored by the runner while the round was open) and the decision's reason says
    so: a platform that is down at the last minute should not lose every vote cast there. One
    never read counts for nothing, as before.
    """
    rnd = episode.round
    assert rnd is not None
    story = episode.story
    counts: dict[str, tuple[int, ...]] = {}
    for name, tally in tallies.items():
        counts[name] = tally.counts
        store_tally(session, rnd.id, name, tally.counts, now)
    voters = sum(t.voters for t in tallies.values())
    stale: dict[str, str] = {}
    for name in unread:
        earlier = None if name in tallies else stored_tally(session, rnd.id, name, len(rnd.options))
        if earlier is not None:
            counts[name] = earlier[0]
            # One vote a person on every platform we read (single-choice polls, one like).
            voters += sum(earlier[0])
            stale[name] = earlier[1].isoformat()
    specs = [
        engine.OptionSpec(o.label, o.beat, o.source, tuple(map(str, o.contributor_ids)))
        for o in rnd.options
    ]
    rng = random.Random(derive_seed(story.seed, episode.branch, "decide", episode.number))
    decision = engine.decide(specs, counts, rng)
    clusters = round_clusters(session, rnd, story.seed, vector_threshold)
    winner = rnd.options[decision.position - 1]
    ideas = (
        []
        if winner.source == "ending"
        else engine.ideas_for(clusters, specs[decision.position - 1])
    )
    rnd.status = RoundStatus.CLOSED
    rnd.closed_at = now
    rnd.winner_position = decision.position
    rnd.winner_label = winner.label
    why = decision.reason
    if stale:
        read = ", ".join(f"{n} as read at {read_at(at)}" for n, at in sorted(stale.items()))
        why += f"; unreadable at close, counted from the last reading: {read}"
    rnd.decision = {
        "reason": why,
        "totals": list(decision.totals),
        "per_platform": {k: list(v) for k, v in decision.per_platform.items()},
        "stale": stale,
        "voters": voters,
        "clusters": [
            {"key": c.key, "authors": list(c.authors), "support": c.support, "why": c.why}
            for c in clusters
        ],
        "woven": [c.key for c in ideas],
    }
    episode.state = EpisodeState.CLOSED
    failpoints.hit("in_close")  # inside the closing transaction, before the next episode
    number = episode.number + 1
    nxt = Episode(
        story_id=story.id,
        branch=episode.branch,
        parent_id=episode.id,
        number=number,
        state=EpisodeState.PLANNED,
        beat=winner.beat,
        ideas=[{"text": c.key, "authors": _names(session, c.authors)} for c in ideas],
        is_final=number >= story.episode_cap or winner.source == "ending",
        seed=derive_seed(story.seed, story.slug, episode.branch, number),
        created_at=now,
    )
    session.add(nxt)
    session.flush()
    credited = list(winner.contributor_ids)
    for cluster in ideas:
        credited += [int(a) for a in cluster.authors]
    for position, contributor_id in enumerate(dict.fromkeys(credited), start=1):
        reason = "poll option" if contributor_id in winner.contributor_ids else "idea"
        session.add(
            Credit(
                episode_id=nxt.id, contributor_id=contributor_id, position=position, reason=reason
            )
        )
    return f"closed round {episode.number}: {winner.label!r} ({decision.reason})"


def read_at(moment: datetime | str) -> str:
    """When a platform's poll was read, as columns and reasons say it: "14:05 UTC"."""
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return when.astimezone(UTC).strftime("%H:%M UTC")


def not_counted(platform: str) -> str:
    """What the pages say of a platform whose poll results this account cannot read."""
    why = "X's free API tier only posts" if platform == "x" else "this account cannot read them"
    return f"Votes on {platform} are not counted: {why}."


def fork(session: Session, episode: Episode, position: int, branch: str, now: datetime) -> Episode:
    """Start branch ``branch`` from a closed round as if option ``position`` had won."""
    rnd = episode.round
    if rnd is None or rnd.status is not RoundStatus.CLOSED:
        raise StateError(f"episode {episode.number}'s round is not closed: nothing to fork from")
    option = next((o for o in rnd.options if o.position == position), None)
    if option is None:
        raise StateError(f"episode {episode.number}'s poll has no option {position}")
    if position == rnd.winner_position:
        raise StateError(f"option {position} already won on branch {episode.branch!r}")
    taken = session.scalars(
        select(Episode).where(Episode.story_id == episode.story_id, Episode.branch == branch)
    ).first()
    if taken is not None:
        raise StateError(f"branch {branch!r} already exists")
    story = episode.story
    number = episode.number + 1
    child = Episode(
        story_id=story.id,
        branch=branch,
        parent_id=episode.id,
        number=number,
        state=EpisodeState.PLANNED,
        beat=option.beat,
        ideas=[],
        is_final=number >= story.episode_cap or option.source == "ending",
        seed=derive_seed(story.seed, story.slug, branch, number),
        created_at=now,
    )
    session.add(child)
    session.flush()
    return child


def lore_of(session: Session, story_id: int) -> list[Lore]:
    rows = session.scalars(
        select(LoreEntry).where(LoreEntry.story_id == story_id, LoreEntry.status == "canon")
    )
    return [
        Lore(r.kind, r.name, r.description, r.visual, r.image_seed, tuple(r.keywords)) for r in rows
    ]


def remember(session: Session, episode: Episode, script: Script, review: bool) -> None:
    """Fold an episode into the story's memory: the summary and new bible entries."""
    story = episode.story
    if episode.branch == "main":
        story.summary = update_summary(story.summary, episode.number, episode.beat)
    known = {(e.kind, e.name.lower()) for e in story.lore}
    for item in script.lore:
        if (item.kind, item.name.lower()) in known or item.kind not in (
            "character",
            "place",
            "fact",
        ):
            continue
        known.add((item.kind, item.name.lower()))
        session.add(
            LoreEntry(
                story_id=story.id,
                kind=item.kind,
                name=item.name[:200],
                description=item.description,
                visual=item.visual,
                image_seed=derive_seed(story.seed, "character", item.name.lower())
                if item.kind == "character"
                else None,
                keywords=list(item.keywords),
                contradictions=[],
                status="proposed" if review else "canon",
                source_episode_id=episode.id,
            )
        )
