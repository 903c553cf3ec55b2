"""What will become of a follower's reply, told when it is sent.

The harvest judges replies later, on a tick; this runs the same rules now (the moderation
rules with this install's settings, the one-idea-per-person rule, which posts a round reads)
so the page can tell the truth instead of thanking every reply alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.app import App
from bot.ideas.harvest import rules_for
from story_state.db import session_scope
from story_state.lifecycle import EpisodeState, PostState
from story_state.models import Contributor, Episode, LocalPost, Post, Story, Suggestion
from story_state.moderation import Rules, moderate

Kind = Literal["counts", "held", "rejected", "second", "closed", "too_long"]
# Replies to these episodes' clip and poll are harvested into their round.
READ_STATES = (EpisodeState.PUBLISHED, EpisodeState.POLLING)


@dataclass(frozen=True)
class Outlook:
    kind: Kind
    message: str


@dataclass(frozen=True)
class RoundPosts:
    """The posts whose replies one round reads (the episode's clip and poll here)."""

    story_id: int
    number: int
    post_ids: frozenset[int]


def normalise(text: str) -> str:
    """The reply as stored: a browser sends CRLF line breaks; the text box counts LF."""
    return text.replace("\r\n", "\n").strip()


def too_long(text: str, max_length: int) -> Outlook | None:
    """Refused before posting: the page's limit is moderation's, and nothing is cut."""
    if len(text) <= max_length:
        return None
    return Outlook(
        "too_long",
        f"Not accepted: too long ({len(text)} characters; {max_length} max). "
        "Nothing was posted: shorten it and send it again.",
    )


def counting_posts(session: Session, app: App) -> dict[int, RoundPosts]:
    """Local post id → the round that will read replies to it."""
    rows = session.execute(
        select(Post.remote_id, Episode.id, Episode.number, Episode.story_id)
        .join(Episode, Post.episode_id == Episode.id)
        .join(Story, Episode.story_id == Story.id)
        .where(
            Story.slug == app.config.story.slug,
            Post.platform == "local",
            Post.state == PostState.SENT,
            Post.kind.in_(("clip", "poll")),
            Episode.state.in_(READ_STATES),
        )
    ).all()
    ids: dict[int, set[int]] = {}
    meta: dict[int, tuple[int, int]] = {}
    for remote_id, episode_id, number, story_id in rows:
        if remote_id is not None and str(remote_id).isdigit():
            ids.setdefault(episode_id, set()).add(int(remote_id))
            meta[episode_id] = (story_id, number)
    out: dict[int, RoundPosts] = {}
    for episode_id, posts in ids.items():
        story_id, number = meta[episode_id]
        info = RoundPosts(story_id, number, frozenset(posts))
        out.update(dict.fromkeys(posts, info))
    return out


def _counts(session: Session, post: LocalPost, actor: str, rules: Rules) -> bool:
    """Whether an earlier reply is (or will be) one of the round's ideas."""
    stored = session.scalars(
        select(Suggestion).where(
            Suggestion.platform == "local", Suggestion.remote_id == str(post.id)
        )
    ).first()
    if stored is not None:  # harvested: the operator may have decided on it since
        return stored.accepted or stored.pending
    verdict = moderate(post.text, actor, rules)
    return verdict.accepted or verdict.pending


def predict(app: App, actor: str, text: str, target: int) -> Outlook:
    """The verdict the harvest will give ``text`` from ``actor`` in reply to post ``target``."""
    thanks = f"Thanks, {actor}!"
    with session_scope(app.factory) as session:
        info = counting_posts(session, app).get(target)
        if info is None:
            return Outlook(
                "closed",
                f"Posted, but it will not count: post #{target} is not read for ideas (only "
                "direct replies to the newest episode or its open poll are).",
            )
        settings = app.config.moderation
        # The sandbox's own bot name, as the harvest is given it (its mention is not spam).
        own = (app.config.platforms.local.bot_name,)
        rules = rules_for(session, info.story_id, settings, own)
        person = session.scalars(
            select(Contributor).where(Contributor.platform == "local", Contributor.handle == actor)
        ).first()
        verdict = moderate(text, actor, rules)
        reason = "blocked account" if person is not None and person.blocked else verdict.reason
        if reason is not None or not (verdict.accepted or verdict.pending):
            return Outlook("rejected", f"Posted, but not accepted as an idea: {reason}.")
        earlier = session.scalars(
            select(LocalPost).where(
                LocalPost.author == actor,
                LocalPost.is_bot.is_(False),
                LocalPost.in_reply_to.in_(info.post_ids),
            )
        ).all()
        if any(_counts(session, post, actor, rules) for post in earlier):
            return Outlook(
                "second",
                f"Posted. Your first idea this round is the one that counts (one idea per "
                f"person after episode {info.number}; a later one only if it gets more likes).",
            )
        if verdict.pending:
            why = "" if verdict.flag == "awaiting approval" else f" ({verdict.flag})"
            return Outlook(
                "held",
                f"{thanks} Your idea is held for review{why}: it counts if the operator "
                "approves it.",
            )
        if settings.backend == "openai":
            return Outlook(
                "held",
                f"{thanks} Your idea is held for review by the moderation service; it counts "
                "once that passes.",
            )
        return Outlook(
            "counts", f"{thanks} Your idea counts in the round after episode {info.number}."
        )
