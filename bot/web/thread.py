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
from bot.operator.export import poster_for
from bot.web.verdict import READ_STATES
from story_state.db import session_scope
from story_state.lifecycle import PostState, RoundStatus
from story_state.models import Episode, LocalPost, Post, Round, Story

# How the clip caption credits the people whose ideas shaped the episode (bot/loop/captions.py).
CREDIT_LINE = "Story ideas from "


def _relative(root: Path, path: str) -> str | None:
    """``path`` (as the bot posted it) relative to the media root, or None if outside it."""
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = root / candidate
    try:
        return candidate.resolve().relative_to(root).as_posix()
    except (ValueError, OSError):
        return None


def _poster(root: Path, rel: str) -> str | None:
    """The poster frame the clip assembler wrote beside a posted clip, if it is there."""
    poster = poster_for(root / rel)
    return _relative(root, str(poster)) if poster is not None else None


def posted_media(app: App) -> dict[str, Path]:
    """Every file the bot posted and its poster, by path under the media root: all /media
    may serve."""
    root = app.runner.media_root.resolve()
    found: dict[str, Path] = {}
    with session_scope(app.factory) as session:
        for media in session.scalars(select(LocalPost.media).where(LocalPost.is_bot.is_(True))):
            for item in media or []:
                rel = _relative(root, str(item.get("path", "")))
                if rel is not None:
                    found[rel] = root / rel
                    poster = _poster(root, rel)
                    if poster is not None:
                        found[poster] = root / poster
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
                "read": episode.state in READ_STATES,  # replies to it become ideas
            }
    return out


def _now(posts: list[dict[str, Any]], meta: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What the top of the page offers: the newest episode, the open poll, and the post the
    reply box answers (the open poll, else the newest episode, else the newest bot post)."""
    bot = [p for p in posts if p["is_bot"]]
    clips = [p for p in bot if p["episode"] is not None]
    episode = clips[-1] if clips else None
    poll = next((p for p in reversed(bot) if p["poll"] and p["poll"]["open"]), None)
    target = poll or episode or (bot[-1] if bot else None)
    answer = None
    if target is not None:
        info = meta.get(target["id"], {})
        number = info.get("number")
        if target is poll and number is not None:
            what = f"the poll after episode {number}"
        elif target is poll:
            what = "the open poll"
        elif number is not None:
            what = f"episode {number}"
        else:
            what = "the bot's newest post"
        answer = {"post": target["id"], "what": what, "counts": bool(info.get("read"))}
    return {
        "episode": {"post": episode["id"], **episode["episode"]} if episode is not None else None,
        "poll": (
            {"post": poll["id"], "closes_at": poll["poll"]["closes_at"]}
            if poll is not None
            else None
        ),
        "answer": answer,
    }


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
                poster = _poster(root, rel)
                media.append(
                    {
                        "url": "/media/" + quote(rel),
                        "poster": "/media/" + quote(poster) if poster else None,
                        "alt": str(m.get("alt_text", "")),
                    }
                )
        poll = None
        if p["poll"]:
            closes = p["poll"]["closes_at"]
            still_open = closes is not None and datetime.fromisoformat(closes) > now
            winner = p["poll"].get("winner")
            options = [
                {
                    "position": i,
                    # The whole option: a label fitted to the strictest platform loses words.
                    "label": o.get("text") or o["label"],
                    "votes": o["votes"],
                    "winner": i == winner,
                }
                for i, o in enumerate(p["poll"]["options"], start=1)
            ]
            poll = {
                "options": options,
                "total": sum(o["votes"] for o in options),
                "closes_at": closes,
                "open": p["id"] == newest_poll and still_open and info.get("round_open", True),
                "winner": winner,
            }
        lines = [line for line in p["text"].split("\n") if line.strip()]
        episode = None
        if info.get("kind") == "clip":
            episode = {k: info[k] for k in ("number", "title", "credits")}
            if any(CREDIT_LINE in line for line in lines):
                episode["credits"] = []  # the caption thanks them already: once is enough
        posts.append(
            {
                "id": p["id"],
                "author": p["author"],
                "is_bot": p["is_bot"],
                "parent": p["in_reply_to"],
                "lines": lines,
                "created_at": p["created_at"],
                "likes": p["likes"],
                "media": media,
                "episode": episode,
                "poll": poll,
            }
        )
    story = story_line(app)
    current = _now(posts, meta)
    digest = hashlib.sha256(
        json.dumps([posts, story, current], sort_keys=True).encode()
    ).hexdigest()
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
        "now": current,
        "empty": not any(p["is_bot"] for p in posts),
    }
