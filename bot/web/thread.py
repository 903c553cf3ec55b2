"""The sandbox thread as the page shows it: the bot's posts, a page of replies under each,
clips by URL, polls and their state, and the version the live view is tagged with."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from bot.app import App
from bot.loop import rounds
from bot.operator.export import poster_for
from bot.web import paging
from bot.web.verdict import READ_STATES
from story_state.branches import inside
from story_state.db import session_scope
from story_state.errors import StateError
from story_state.lifecycle import PostState, RoundStatus
from story_state.models import Credit, Episode, Post, Round, Story

# How the clip caption credits the people whose ideas shaped the episode (bot/loop/captions.py).
CREDIT_LINE = "Story ideas from "
REPLIES_PAGE = 20  # replies shown under a post, the newest; older ones are a link away
NESTED = 3  # replies shown under a reply (only `storybot local` replies to replies)
# Part of the version: a change to what the page shows from the same rows changes it too.
LAYOUT = "thread-v2"


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


def media_file(app: App, rel: str) -> Path | None:
    """The file /media/``rel`` may serve: a clip the bot posted or its poster, and only
    inside the media root (symlinks followed). Only the bot's posts are read, by index."""
    root = app.runner.media_root.resolve()
    posted = [r for r in (_relative(root, p) for p in paging.bot_media(app)) if r is not None]
    if rel not in posted and rel not in (_poster(root, r) for r in posted):
        return None
    try:
        return inside(root, root / rel)
    except StateError:
        return None


def _episodes_by_post(app: App) -> dict[str, dict[str, Any]]:
    """Local post id → what the bot's post stands for (episode clip or round poll)."""
    out: dict[str, dict[str, Any]] = {}
    with session_scope(app.factory) as session:
        rows = session.execute(
            select(Post.remote_id, Post.kind, Episode, Round.status, Round.id)
            .join(Episode, Post.episode_id == Episode.id)
            .outerjoin(Round, Round.episode_id == Episode.id)
            .where(Post.platform == "local", Post.state == PostState.SENT)
            .options(selectinload(Episode.credits).selectinload(Credit.contributor))
        ).all()
        for remote_id, kind, episode, round_status, round_id in rows:
            out[str(remote_id)] = {
                "round_id": round_id,
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


def thread_version(app: App, now: datetime) -> str:
    """What the live view is tagged with (its ETag): from counts and newest ids alone, so
    an unchanged thread is answered before any post is read."""
    marks = json.dumps([LAYOUT, *paging.marks(app, now)], default=str)
    return hashlib.sha256(marks.encode()).hexdigest()[:20]


def _shape(
    p: dict[str, Any],
    info: dict[str, Any],
    root: Path,
    newest_poll: str | None,
    now: datetime,
    elsewhere: Elsewhere | None = None,
) -> dict[str, Any]:
    """One post (the bot's or a reply) with what the page needs; a poll's votes add up the
    sandbox's and those read from the other platforms (``elsewhere``)."""
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
        other = elsewhere or Elsewhere()
        options = []
        for i, o in enumerate(p["poll"]["options"], start=1):
            split = [("sandbox", o["votes"], "")] + [
                (name, counts[i - 1] if i <= len(counts) else 0, f" ({at})" if at else "")
                for name, counts, at in other.platforms
            ]
            options.append(
                {
                    "position": i,
                    # The whole option: a label fitted to the strictest platform loses words.
                    "label": o.get("text") or o["label"],
                    "votes": sum(n for _, n, _ in split),
                    "here": o["votes"],
                    "split": " · ".join(f"{name} {n}{at}" for name, n, at in split)
                    if other.platforms
                    else "",
                    "winner": i == winner,
                }
            )
        poll = {
            "options": options,
            "total": sum(o["votes"] for o in options),
            "closes_at": closes,
            "open": p["id"] == newest_poll and still_open and info.get("round_open", True),
            "winner": winner,
            "not_counted": other.not_counted,
        }
    lines = [line for line in p["text"].split("\n") if line.strip()]
    episode = None
    if info.get("kind") == "clip":
        episode = {k: info[k] for k in ("number", "title", "credits")}
        if any(CREDIT_LINE in line for line in lines):
            episode["credits"] = []  # the caption thanks them already: once is enough
    return {
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


@dataclass(frozen=True)
class Elsewhere:
    """A round's votes on the platforms other than the sandbox: (platform, votes per option,
    when they were read, "" once the round has closed), and those whose votes do not count."""

    platforms: tuple[tuple[str, tuple[int, ...], str], ...] = ()
    not_counted: tuple[str, ...] = ()


def _elsewhere(app: App, meta: dict[str, dict[str, Any]]) -> dict[str, Elsewhere]:
    """Local poll post id → the round's votes elsewhere: an open round's as the runner last
    read them (stored, with their time; no platform is called), a closed one's as counted."""
    round_ids = [m["round_id"] for m in meta.values() if m["kind"] == "poll" and m["round_id"]]
    others = [name for name in app.platforms if name != "local"]
    if not round_ids or not others:
        return {}
    with session_scope(app.factory) as session:
        found = session.scalars(
            select(Round)
            .where(Round.id.in_(round_ids))
            .options(selectinload(Round.tallies), selectinload(Round.options))
        ).all()
        by_round: dict[int, Elsewhere] = {}
        for rnd in found:
            stored = rounds.readings(rnd)
            if rnd.status is RoundStatus.OPEN:
                read = [
                    (name, counts, rounds.read_at(at))
                    for name, (counts, at) in stored.items()
                    if name != "local"
                ]
            else:
                counted = (rnd.decision or {}).get("per_platform") or {}
                read = [(n, tuple(c), "") for n, c in counted.items() if n != "local"]
            # Only a platform with no reading is asked whether it can read (its own limits).
            silent = [n for n in others if n not in stored and n not in {r[0] for r in read}]
            unread = [n for n in silent if not app.platforms[n].limits().can_read]
            by_round[rnd.id] = Elsewhere(
                tuple(sorted(read)), tuple(rounds.not_counted(n) for n in unread)
            )
    return {
        post_id: by_round[m["round_id"]]
        for post_id, m in meta.items()
        if m["kind"] == "poll" and m["round_id"] in by_round
    }


def bot_view(app: App, now: datetime) -> dict[str, Any]:
    """The bot's posts and the top of the page, without a single reply: what a vote or a
    reply needs to know, and the frame the page hangs the replies in."""
    raw = paging.bot_posts(app)
    meta = _episodes_by_post(app)
    elsewhere = _elsewhere(app, meta)
    root = app.runner.media_root.resolve()
    polls = [p["id"] for p in raw if p["poll"]]
    newest_poll = polls[-1] if polls else None
    posts = [
        _shape(p, meta.get(p["id"], {}), root, newest_poll, now, elsewhere.get(p["id"]))
        for p in raw
    ]
    return {
        "story": story_line(app),
        "posts": posts,
        "open_poll": next((p["id"] for p in posts if p["poll"] and p["poll"]["open"]), None),
        "now": _now(posts, meta),
        "empty": not posts,
    }


def _more(post_id: str, before: str | None, label: str) -> dict[str, str]:
    query = f"?before={before}" if before is not None else ""
    return {
        "href": f"/replies/{post_id}{query}",
        "api": f"/api/replies/{post_id}{query}",
        "label": label,
    }


def _tree(app: App, first: paging.ReplyPage, now: datetime) -> dict[str, Any]:
    """Under a page of replies: up to NESTED replies to each, and a link where there are
    more (or, one level further down, where there are any)."""
    root = app.runner.media_root.resolve()
    children: dict[str, list[dict[str, Any]]] = {}
    more: dict[str, dict[str, str]] = {}

    def add(page: paging.ReplyPage) -> list[str]:
        for parent, replies in page.by_parent.items():
            children[parent] = [_shape(r, {}, root, None, now) for r in replies]
        for parent in page.more:
            shown = children.get(parent)
            oldest = shown[0]["id"] if shown else None
            more[parent] = _more(parent, oldest, "Show older replies" if shown else "Show replies")
        return [r["id"] for replies in page.by_parent.values() for r in replies]

    second = paging.nested(app, add(first), NESTED)
    add(paging.nested(app, add(second), 0))  # only whether each has replies of its own
    return {"children": children, "more": more}


def thread_view(app: App, now: datetime, version: str | None = None) -> dict[str, Any]:
    """The page: the bot's posts in id order, each with its newest replies; ``version``
    is thread_version's (pass it in when it was worked out already)."""
    view = bot_view(app, now)
    first = paging.replies(app, [p["id"] for p in view["posts"]], REPLIES_PAGE)
    tree = _tree(app, first, now)
    replies = [r for rs in tree["children"].values() for r in rs]
    return {
        **view,
        "version": version or thread_version(app, now),
        "top": view["posts"],
        "posts": sorted([*view["posts"], *replies], key=lambda p: int(p["id"])),
        **tree,
    }


def replies_view(
    app: App, post_id: int, before: int | None, now: datetime
) -> dict[str, Any] | None:
    """One page of the replies to post ``post_id`` (older than ``before``), each with its
    own; None if there is no such post."""
    parent = paging.one_post(app, post_id)
    if parent is None:
        return None
    first = paging.replies(app, [str(post_id)], REPLIES_PAGE, before)
    tree = _tree(app, first, now)
    page = tree["children"].pop(str(post_id), [])
    older = tree["more"].pop(str(post_id), None)
    return {"parent": parent, "posts": page, "older": older, **tree}
