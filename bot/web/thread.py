"""The sandbox thread as the page shows it: posts in a tree, clips by URL, polls and their state."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import select

from bot.app import App
from story_state.db import session_scope
from story_state.lifecycle import PostState, RoundStatus
from story_state.models import Episode, LocalPost, Post, Round, Story


def _relative(root: Path, path: str) -> str | None:
    """``path`` (as the bot posted it) relative to the media root, or None if outside it."""
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = root / candidate
    try:
        return candidate.resolve().relative_to(root).as_posix()
    except (ValueError, OSError):
        return None


def posted_media(app: App) -> dict[str, Path]:
    """Every file the bot posted, by its path under the media root: all /media may serve."""
    root = app.runner.media_root.resolve()
    found: dict[str, Path] = {}
    with session_scope(app.factory) as session:
        for media in session.scalars(select(LocalPost.media).where(LocalPost.is_bot.is_(True))):
            for item in media or []:
                rel = _relative(root, str(item.get("path", "")))
                if rel is not None:
                    found[rel] = root / rel
    return found


def _episodes_by_post(app: App) -> dict[str, dict[str, Any]]:
    """Local post id → what the bot's post stands for (episode clip or round poll)."""
    out: dict[str, dict[str, Any]] = {}
    with session_scope(app.factory) as session:
        rows = session.execute(
            select(Post.remote_id, Post.kind, Episode, Round.status)
            .join(Episode, Post.episode_id == Episode.id)
            .outerjoin(Round, Round.episode_id == Episode.id)
            .where(Post.platform == "local", Post.state == PostState.SENT)
        ).all()
        for remote_id, kind, episode, round_status in rows:
            out[str(remote_id)] = {
                "kind": kind,
                "number": episode.number,
                "title": episode.title,
                "credits": [c.contributor.display_name for c in episode.credits],
                "round_open": round_status is None or round_status is RoundStatus.OPEN,
            }
    return out


def story_line(app: App) -> dict[str, Any]:
    with session_scope(app.factory) as session:
        story = session.scalars(select(Story).where(Story.slug == app.config.story.slug)).first()
        if story is None:
            return {"title": app.config.story.title, "status": "starting"}
        return {"title": story.title, "status": str(story.status)}


def thread_view(app: App, now: datetime) -> dict[str, Any]:
    """Posts in id order, each with what the page needs; ``version`` changes when any does."""
    raw = app.local.thread()["posts"] if app.local is not None else []
    meta = _episodes_by_post(app)
    root = app.runner.media_root.resolve()
    polls = [p["id"] for p in raw if p["is_bot"] and p["poll"]]
    newest_poll = polls[-1] if polls else None
    posts: list[dict[str, Any]] = []
    for p in raw:
        info = meta.get(p["id"], {})
        media = []
        for m in p["media"]:
            rel = _relative(root, str(m.get("path", "")))
            if rel is not None:
                media.append({"url": "/media/" + quote(rel), "alt": str(m.get("alt_text", ""))})
        poll = None
        if p["poll"]:
            closes = p["poll"]["closes_at"]
            still_open = closes is not None and datetime.fromisoformat(closes) > now
            options = [
                {"position": i, "label": o["label"], "votes": o["votes"]}
                for i, o in enumerate(p["poll"]["options"], start=1)
            ]
            poll = {
                "options": options,
                "total": sum(o["votes"] for o in options),
                "closes_at": closes,
                "open": p["id"] == newest_poll and still_open and info.get("round_open", True),
            }
        episode = None
        if info.get("kind") == "clip":
            episode = {k: info[k] for k in ("number", "title", "credits")}
        posts.append(
            {
                "id": p["id"],
                "author": p["author"],
                "is_bot": p["is_bot"],
                "parent": p["in_reply_to"],
                "lines": [line for line in p["text"].split("\n") if line.strip()],
                "created_at": p["created_at"],
                "likes": p["likes"],
                "media": media,
                "episode": episode,
                "poll": poll,
            }
        )
    story = story_line(app)
    digest = hashlib.sha256(json.dumps([posts, story], sort_keys=True).encode()).hexdigest()
    by_id = {p["id"]: p for p in posts}
    children: dict[str, list[dict[str, Any]]] = {}
    for p in posts:
        if not p["is_bot"] and p["parent"] in by_id:
            children.setdefault(p["parent"], []).append(p)
    return {
        "version": digest[:20],
        "story": story,
        "posts": posts,
        "top": [p for p in posts if p["is_bot"] or p["parent"] not in by_id],
        "children": children,
        "open_poll": next((p["id"] for p in posts if p["poll"] and p["poll"]["open"]), None),
        "empty": not any(p["is_bot"] for p in posts),
    }
