"""What the operator dashboard shows, read from the database in one go."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.app import App
from bot.ideas.harvest import round_clusters
from bot.loop import rounds
from bot.loop.health import failing
from bot.operator import audit
from bot.platforms.base import PostRef
from story_state.db import session_scope
from story_state.errors import StorybotError
from story_state.lifecycle import EpisodeState, PostState, RoundStatus
from story_state.models import Contributor, Episode, Post, Round, Story


def _number(value: float) -> float | int:
    """2.0 reads as 2; 1.2345 as 1.23."""
    return int(value) if float(value).is_integer() else round(float(value), 2)


def _names(session: Session, ids: tuple[str, ...] | list[str]) -> list[str]:
    names = []
    for raw in ids:
        person = session.get(Contributor, int(raw))
        names.append(person.display_name if person else f"#{raw}")
    return names


def heading(number: int, title: str | None) -> str:
    """ "Episode 2: The Hatch", whether or not the writer's title already says "Episode 2"."""
    if not title:
        return f"Episode {number} (not written yet)"
    if re.match(rf"episode\s+{number}\b", title, re.IGNORECASE):
        return title
    return f"Episode {number}: {title}"


def _local_poll(session: Session, episode_id: int) -> str | None:
    return session.scalars(
        select(Post.remote_id).where(
            Post.episode_id == episode_id,
            Post.platform == "local",
            Post.kind == "poll",
            Post.state == PostState.SENT,
        )
    ).first()


def _live_columns(
    session: Session, app: App, rnd: Round, can_read: dict[str, bool | None]
) -> tuple[list[tuple[str, dict[int, int] | None]], list[str]]:
    """The open round's columns, one per platform: (label, votes per option, None where
    votes are not counted), and the notes under the table. Only the sandbox is read live
    (a query); every other platform shows the reading the runner stored, with its time: a
    page load never calls a remote platform."""
    stored = rounds.readings(rnd)
    columns: list[tuple[str, dict[int, int] | None]] = []
    notes = []
    for name in dict.fromkeys([*app.platforms, *stored]):
        local_id = _local_poll(session, rnd.episode_id) if name == "local" else None
        if name == "local" and app.local is not None and local_id is not None:
            try:
                live = app.local.fetch_tally(PostRef("local", local_id))
                columns.append(("local (live)", dict(enumerate(live.counts, start=1))))
            except StorybotError as exc:
                columns.append((f"local ({exc})", {}))
        elif can_read.get(name) is False:
            columns.append((f"{name} (not counted)", None))
            notes.append(rounds.not_counted(name))
        elif name in stored:
            counts, at = stored[name]
            columns.append((f"{name} ({rounds.read_at(at)})", dict(enumerate(counts, start=1))))
        else:
            columns.append((f"{name} (not read yet)", {}))
    return columns, notes


def _open_round(
    session: Session, app: App, story: Story, rnd: Round, can_read: dict[str, bool | None]
) -> dict[str, Any]:
    columns, notes = _live_columns(session, app, rnd, can_read)
    options = []
    for o in rnd.options:
        votes = {
            label: None if counts is None else counts.get(o.position, 0)
            for label, counts in columns
        }
        options.append(
            {
                "position": o.position,
                "label": o.label,
                "beat": o.beat,
                "source": o.source,
                "votes": votes,
                "total": sum(n for n in votes.values() if n is not None),
            }
        )
    clusters = [
        {
            "rank": rank,
            "key": c.key,
            "authors": _names(session, c.authors),
            "support": _number(c.support),
            "why": c.why,
        }
        for rank, c in enumerate(
            round_clusters(session, rnd, story.seed, app.config.clustering.threshold), start=1
        )
    ]
    queue = [
        {
            "id": s.id,
            "author": s.contributor.display_name,
            "contributor_id": s.contributor_id,
            "blocked": s.contributor.blocked,
            "platform": s.platform,
            "text": s.text,
            "raw_text": s.raw_text,
            "likes": s.likes + s.boosts,
            "accepted": s.accepted,
            "pending": s.pending,
            "flag": s.flag,
            "reason": s.reject_reason,
            "posted_at": s.posted_at,
        }
        for s in sorted(rnd.suggestions, key=lambda s: s.id)
    ]
    return {
        "episode": rnd.episode.number,
        "closes_at": rnd.closes_at,
        "platforms": [label for label, _ in columns],
        "notes": notes,
        "options": options,
        "clusters": clusters,
        "queue": queue,
        "vote_bars": [{"label": o["label"], "value": o["total"]} for o in options],
        "cluster_bars": [{"label": c["key"], "value": c["support"]} for c in clusters],
    }


def _making_of(session: Session, episode: Episode) -> dict[str, Any]:
    poll = None
    rnd = episode.round
    if rnd is not None:
        decision = rnd.decision or {}
        totals = decision.get("totals") or []
        stored = rounds.readings(rnd)
        stale = decision.get("stale") or {}
        # Closed: the votes the decision counted, per platform ("at close", or the last live
        # reading for one that could not be read then). Open: see the round panel.
        per_platform: dict[str, list[int]] = decision.get("per_platform") or {}
        columns = {
            (
                f"{name} (read at {rounds.read_at(stale[name])})"
                if name in stale
                else f"{name} (at close)"
            ): counts
            for name, counts in per_platform.items()
        }
        options = []
        for o in rnd.options:
            if o.position <= len(totals):
                votes = int(totals[o.position - 1])
            else:
                votes = sum(c[0][o.position - 1] for c in stored.values())
            split = {
                label: int(counts[o.position - 1]) if o.position <= len(counts) else 0
                for label, counts in columns.items()
            }
            options.append({"label": o.label, "value": votes, "source": o.source, "split": split})
        poll = {
            "status": str(rnd.status),
            "columns": list(columns),
            "options": options,
            "winner": rnd.winner_label,
            "reason": decision.get("reason"),
            "per_platform": decision.get("per_platform", {}),
            "woven": decision.get("woven", []),
            "suggestions": len(rnd.suggestions),
        }
    return {
        "id": episode.id,
        "number": episode.number,
        "branch": episode.branch,
        "state": str(episode.state),
        "title": episode.title,
        "heading": heading(episode.number, episode.title),
        "beat": episode.beat,
        "ideas": episode.ideas,
        "narration": episode.narration,
        "image_prompt": episode.image_prompt,
        "seed": episode.seed,
        "still": episode.still_path is not None,
        "clip": episode.video_path is not None,
        "duration_s": episode.duration_s,
        "credits": [c.contributor.display_name for c in episode.credits],
        "failure": episode.failure_reason,
        "poll": poll,
    }


def _can_read(app: App) -> dict[str, bool | None]:
    """Whether each configured platform's replies and polls can be read (asked once a page)."""
    return {name: platform.limits().can_read for name, platform in app.platforms.items()}


def _health(session: Session, app: App, can_read: dict[str, bool | None]) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = {name: {} for name in app.platforms}
    for name, state, n in session.execute(
        select(Post.platform, Post.state, func.count()).group_by(Post.platform, Post.state)
    ):
        counts.setdefault(name, {})[str(state)] = int(n)
    errors = session.scalars(
        select(Post).where(Post.last_error.is_not(None)).order_by(Post.id.desc()).limit(20)
    ).all()
    held = session.scalars(select(Episode).where(Episode.state == EpisodeState.FAILED)).all()
    platforms = []
    for name, found in counts.items():
        platform = app.platforms.get(name)
        states = {s.value: found.get(s.value, 0) for s in PostState}
        platforms.append(
            {
                "name": name,
                "configured": platform is not None,
                "can_read": can_read.get(name) if platform is not None else None,
                "outbox": states,
            }
        )
    return {
        "platforms": platforms,
        "errors": [
            {"platform": p.platform, "kind": p.kind, "state": str(p.state), "error": p.last_error}
            for p in errors
        ],
        "held": [
            {"number": e.number, "from": str(e.failed_from), "reason": e.failure_reason}
            for e in held
        ],
        "heartbeat": app.heartbeat,
        "failing": failing(session),
    }


def dashboard(app: App) -> dict[str, Any]:
    can_read = _can_read(app)
    with session_scope(app.factory) as session:
        stories = [
            {
                "slug": s.slug,
                "title": s.title,
                "status": str(s.status),
                "episodes": len(s.episodes),
                "cap": s.episode_cap,
                "configured": s.slug == app.config.story.slug,
            }
            for s in session.scalars(select(Story).order_by(Story.id))
        ]
        story = session.scalars(select(Story).where(Story.slug == app.config.story.slug)).first()
        current: dict[str, Any] | None = None
        if story is not None:
            rnd = session.scalars(
                select(Round)
                .join(Episode, Round.episode_id == Episode.id)
                .where(Episode.story_id == story.id, Round.status == RoundStatus.OPEN)
            ).first()
            current = {
                "title": story.title,
                "status": str(story.status),
                "round": _open_round(session, app, story, rnd, can_read) if rnd else None,
                "episodes": [_making_of(session, e) for e in reversed(story.episodes)],
            }
        health = _health(session, app, can_read)
    return {
        "stories": stories,
        "story": current,
        "health": health,
        "actions": audit.recent(app.factory, 15),
    }


def episode_file(app: App, episode_id: int, kind: str) -> str | None:
    """The stored media path (relative to the media root) of one episode's still or clip."""
    with session_scope(app.factory) as session:
        episode = session.get(Episode, episode_id)
        if episode is None:
            return None
        return episode.still_path if kind == "still" else episode.video_path
