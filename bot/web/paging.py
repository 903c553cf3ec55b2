"""Reading the sandbox a page at a time, with work that does not grow with the replies.

The bot's posts are found through the idempotency-key index (followers' replies carry no
key), each post's newest replies through the in_reply_to index with a LIMIT of their own,
and the thread's version from max ids and counts, before any post is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, union_all
from sqlalchemy.orm import Session

from bot.app import App
from bot.platforms.local import LocalPlatform
from story_state.db import session_scope
from story_state.lifecycle import PostState
from story_state.models import (
    Credit,
    Episode,
    LocalLike,
    LocalPost,
    LocalVote,
    PollTally,
    Post,
    Round,
    Story,
)

# ">= ''" and not "IS NOT NULL": SQLite's planner uses the unique index only for a range.
BOT_POSTS: ColumnElement[bool] = LocalPost.idempotency_key >= ""
UNION_CHUNK = 50  # parents per statement when reading each one's newest replies


@dataclass
class ReplyPage:
    """The newest replies to some posts, oldest first under each parent; ``more``: the
    parents that have older replies than those shown (or any, where none were asked for)."""

    by_parent: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    more: set[str] = field(default_factory=set)


def bot_posts(app: App) -> list[dict[str, Any]]:
    """Every post the bot made, in id order, shaped as LocalPlatform.thread() shapes them."""
    local = app.local
    if local is None:
        return []
    with session_scope(app.factory) as session:
        rows = session.scalars(select(LocalPost).where(BOT_POSTS)).all()
        return local.shape(session, sorted((p for p in rows if p.is_bot), key=_id))


def bot_media(app: App) -> list[str]:
    """The path of every file the bot posted, as it posted it."""
    with session_scope(app.factory) as session:
        rows = session.execute(select(LocalPost.is_bot, LocalPost.media).where(BOT_POSTS))
        return [str(m.get("path", "")) for is_bot, media in rows if is_bot for m in media or []]


def one_post(app: App, post_id: int) -> dict[str, Any] | None:
    if app.local is None:
        return None
    with session_scope(app.factory) as session:
        row = session.get(LocalPost, post_id)
        return app.local.shape(session, [row])[0] if row is not None else None


def replies(app: App, parents: Sequence[str], limit: int, before: int | None = None) -> ReplyPage:
    """The newest ``limit`` follower replies to each of ``parents`` (older than reply
    ``before`` if given). Each parent is read through the in_reply_to index under its own
    LIMIT, so a post with 10,000 replies costs what one with ``limit + 1`` does."""
    ids = [int(p) for p in dict.fromkeys(parents)]
    if app.local is None or not ids:
        return ReplyPage()
    with session_scope(app.factory) as session:
        rows: list[LocalPost] = []
        for start in range(0, len(ids), UNION_CHUNK):
            rows += _newest(session, ids[start : start + UNION_CHUNK], limit + 1, before)
        return _page(app.local, session, rows, limit)


def nested(app: App, parents: Sequence[str], limit: int) -> ReplyPage:
    """The newest ``limit`` replies to each of ``parents`` in one statement, ranked by a
    window over their replies: for replies to replies, which the page itself never makes
    (only `storybot local`), so there are few to rank."""
    ids = [int(p) for p in dict.fromkeys(parents)]
    if app.local is None or not ids:
        return ReplyPage()
    rank = func.row_number().over(partition_by=LocalPost.in_reply_to, order_by=LocalPost.id.desc())
    ranked = (
        select(LocalPost.id, rank.label("rank"))
        .where(LocalPost.in_reply_to.in_(ids), LocalPost.is_bot.is_(False))
        .subquery()
    )
    with session_scope(app.factory) as session:
        rows = session.scalars(
            select(LocalPost)
            .join(ranked, ranked.c.id == LocalPost.id)
            .where(ranked.c.rank <= limit + 1)
        ).all()
        return _page(app.local, session, list(rows), limit)


def marks(app: App, now: datetime) -> tuple[Any, ...]:
    """Numbers that change whenever anything the page shows does, read in one statement
    from indexes and small tables: the newest post, like and vote; the bot's posts and
    how many of its polls have closed by ``now``; episodes, rounds, the sent outbox, the
    credits, the story's own line and the other platforms' stored poll readings. No reply is
    read to get them."""
    bot = select(LocalPost.poll_closes_at).where(BOT_POSTS).subquery()
    sent = select(Post.sent_at).where(Post.platform == "local", Post.state == PostState.SENT)
    story = select(Story.status, Story.title).where(Story.slug == app.config.story.slug)

    def one(query: Select[Any]) -> Any:
        return query.scalar_subquery()

    columns = [
        one(select(func.max(LocalPost.id))),
        one(select(func.max(LocalLike.id))),
        one(select(func.max(LocalVote.id))),
        one(select(func.count()).select_from(bot)),
        one(select(func.max(bot.c.poll_closes_at))),
        one(select(func.count()).select_from(bot).where(bot.c.poll_closes_at <= now)),
        one(select(func.count(Episode.id))),
        one(select(func.max(Episode.updated_at))),
        one(select(func.count(Round.id))),
        one(select(func.count(Round.closed_at))),
        one(select(func.max(Round.closed_at))),
        one(select(func.count()).select_from(sent.subquery())),
        one(select(func.count(Credit.id))),
        one(story.with_only_columns(Story.status)),
        one(story.with_only_columns(Story.title)),
        # Votes read from the other platforms (a like moved from one option to another too).
        *(
            one(select(agg).where(PollTally.platform != "local"))
            for agg in (
                func.count(PollTally.id),
                func.sum(PollTally.votes),
                func.sum(PollTally.votes * PollTally.position),
            )
        ),
    ]
    with session_scope(app.factory) as session:
        return tuple(session.execute(select(*columns)).one())


def _id(post: LocalPost) -> int:
    return post.id


def _newest(session: Session, parents: list[int], n: int, before: int | None) -> list[LocalPost]:
    parts: list[Select[Any]] = []
    for parent in parents:
        q = select(LocalPost.id).where(LocalPost.in_reply_to == parent, LocalPost.is_bot.is_(False))
        if before is not None:
            q = q.where(LocalPost.id < before)
        # Wrapped: SQLite allows ORDER BY and LIMIT only on a whole compound SELECT.
        parts.append(select(q.order_by(LocalPost.id.desc()).limit(n).subquery().c.id))
    wanted = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery()
    return list(session.scalars(select(LocalPost).join(wanted, wanted.c.id == LocalPost.id)))


def _page(local: LocalPlatform, session: Session, rows: list[LocalPost], limit: int) -> ReplyPage:
    page = ReplyPage()
    grouped: dict[int, list[LocalPost]] = {}
    for row in sorted(rows, key=_id, reverse=True):
        if row.in_reply_to is not None:
            grouped.setdefault(row.in_reply_to, []).append(row)
    kept: list[LocalPost] = []
    for parent, newest in grouped.items():
        if len(newest) > limit:
            page.more.add(str(parent))
        kept += newest[:limit]
    for shaped in local.shape(session, sorted(kept, key=_id)):
        page.by_parent.setdefault(str(shaped["in_reply_to"]), []).append(shaped)
    return page
