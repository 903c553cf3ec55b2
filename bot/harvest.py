"""Replies in, suggestions stored (accepted or rejected with a reason), clusters out."""

from __future__ import annotations

import random
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from re import Pattern

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import ModerationSettings
from bot.platforms.base import Reply
from generation.pipeline import derive_seed
from story_state import engine
from story_state.errors import ConfigError
from story_state.models import Contributor, Episode, Round, Suggestion
from story_state.text import clean_text, compile_blocklist, reject_reason


@lru_cache(maxsize=8)
def _blocklist(path: Path | None, mtime: float) -> tuple[Pattern[str], ...]:
    if path is None:
        return ()
    try:
        return compile_blocklist(path.read_text(encoding="utf-8").splitlines())
    except OSError as exc:
        raise ConfigError(f"moderation.blocklist_file: cannot read {path}: {exc}") from None


def blocklist(settings: ModerationSettings) -> tuple[Pattern[str], ...]:
    path = settings.blocklist_file
    mtime = path.stat().st_mtime if path is not None and path.exists() else 0.0
    return _blocklist(path, mtime)


def contributor(session: Session, platform: str, handle: str, name: str) -> Contributor:
    found = session.scalars(
        select(Contributor).where(Contributor.platform == platform, Contributor.handle == handle)
    ).first()
    if found is None:
        found = Contributor(platform=platform, handle=handle, display_name=name or handle)
        session.add(found)
        session.flush()
    return found


def harvest(
    session: Session,
    episode_id: int,
    replies: list[Reply],
    settings: ModerationSettings,
    now: datetime,
) -> int:
    """Store new replies as suggestions of the episode's round; refresh likes on old ones."""
    episode = session.get(Episode, episode_id)
    if episode is None or episode.round is None:
        return 0
    patterns = blocklist(settings)
    added = 0
    for reply in replies:
        existing = session.scalars(
            select(Suggestion).where(
                Suggestion.platform == reply.platform, Suggestion.remote_id == reply.remote_id
            )
        ).first()
        if existing is not None:
            existing.likes, existing.boosts = reply.likes, reply.boosts
            continue
        person = contributor(session, reply.platform, reply.author_handle, reply.author_name)
        is_html = reply.platform == "mastodon"
        cleaned = clean_text(reply.text, is_html=is_html, max_length=settings.max_length)
        reason = (
            "blocked account"
            if person.blocked
            else reject_reason(
                reply.text, cleaned, blocklist=patterns, max_length=settings.max_length
            )
        )
        session.add(
            Suggestion(
                round_id=episode.round.id,
                contributor_id=person.id,
                platform=reply.platform,
                remote_id=reply.remote_id,
                raw_text=reply.text,
                text=cleaned,
                likes=reply.likes,
                boosts=reply.boosts,
                accepted=reason is None,
                reject_reason=reason,
                posted_at=reply.posted_at,
            )
        )
        added += 1
    session.flush()
    return added


def round_clusters(session: Session, rnd: Round, seed: int) -> list[engine.Cluster]:
    """The round's accepted ideas, each person counted once (their best-supported reply)."""
    rows = session.scalars(
        select(Suggestion).where(Suggestion.round_id == rnd.id, Suggestion.accepted.is_(True))
    ).all()
    best: dict[int, Suggestion] = {}
    for s in rows:
        held = best.get(s.contributor_id)
        if held is None or (s.likes + s.boosts, -s.id) > (held.likes + held.boosts, -held.id):
            best[s.contributor_id] = s
    ideas = [
        engine.SuggestionIn(s.id, str(s.contributor_id), s.text, s.likes, s.boosts)
        for s in sorted(best.values(), key=lambda s: s.id)
    ]
    return engine.cluster_suggestions(ideas, random.Random(derive_seed(seed, "rank", rnd.id)))


def leftover_clusters(episode: Episode) -> list[engine.Cluster]:
    """Popular ideas of the round before ``episode`` that were not woven into it."""
    previous = next((e for e in episode.story.episodes if e.number == episode.number - 1), None)
    if previous is None or previous.round is None or not previous.round.decision:
        return []
    decision = previous.round.decision
    woven = set(decision.get("woven", ()))
    return [
        engine.Cluster(
            key=c["key"],
            suggestion_ids=(),
            authors=tuple(c["authors"]),
            support=int(c["support"]),
            why=c["why"],
        )
        for c in decision.get("clusters", ())
        if c["key"] not in woven and c["key"] != episode.beat
    ]
