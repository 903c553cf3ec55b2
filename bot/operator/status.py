"""What `storybot status` reports: each story, its episodes and the open round."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.loop import rounds
from bot.loop.health import failing
from story_state.lifecycle import PostState
from story_state.models import Post, Story


def story_status(session: Session) -> dict[str, Any]:
    stories = []
    for story in session.scalars(select(Story).order_by(Story.id)):
        episodes = []
        open_round = None
        for e in story.episodes:
            posts = session.scalars(select(Post).where(Post.episode_id == e.id)).all()
            episodes.append(
                {
                    "number": e.number,
                    "branch": e.branch,
                    "state": str(e.state),
                    "title": e.title,
                    "beat": e.beat,
                    "video": e.video_path,
                    "duration_s": e.duration_s,
                    "failure": e.failure_reason,
                    "failed_from": str(e.failed_from) if e.failed_from else None,
                    "next_attempt_at": e.next_attempt_at.isoformat() if e.next_attempt_at else None,
                    "worker_job": e.job_id,
                    "worker_since": e.job_submitted_at.isoformat() if e.job_submitted_at else None,
                    "credits": [c.contributor.display_name for c in e.credits],
                    "posts": [
                        {
                            "platform": p.platform,
                            "kind": p.kind,
                            "state": str(p.state),
                            "remote_id": p.remote_id,
                        }
                        for p in posts
                    ],
                }
            )
            r = e.round
            if r is not None and r.status == "open" and e.branch == "main":
                # Votes as the runner last read them on each platform (no platform is called).
                read = rounds.readings(r)
                open_round = {
                    "episode": e.number,
                    "closes_at": r.closes_at.isoformat(),
                    "read_at": {name: at.isoformat() for name, (_, at) in read.items()},
                    "options": [
                        {
                            "position": o.position,
                            "label": o.label,
                            "votes": {name: c[o.position - 1] for name, (c, _) in read.items()},
                            "total": sum(c[o.position - 1] for c, _ in read.values()),
                        }
                        for o in r.options
                    ],
                    "suggestions": len(r.suggestions),
                }
        stories.append(
            {
                "slug": story.slug,
                "title": story.title,
                "status": str(story.status),
                "episode_cap": story.episode_cap,
                "episodes": episodes,
                "open_round": open_round,
            }
        )
    waiting = dict(
        session.execute(
            select(Post.platform, func.count())
            .where(Post.state == PostState.PENDING)
            .group_by(Post.platform)
        ).all()
    )
    platforms = [
        {**row, "posts_waiting": waiting.get(row["platform"], 0)} for row in failing(session)
    ]
    return {"stories": stories, "failing_platforms": platforms}


def render_text(doc: dict[str, Any]) -> str:
    lines = [
        f"! {p['platform']} failing since {p['failing_since']}: {p['last_error']} "
        f"({p['posts_waiting']} post(s) waiting; the story goes on elsewhere)"
        for p in doc.get("failing_platforms", ())
    ]
    if not doc["stories"]:
        return "no stories yet: `storybot tick` or `storybot run` starts the one in config.toml"
    for s in doc["stories"]:
        lines.append(
            f"{s['title']} [{s['slug']}] — {s['status']}, "
            f"{len(s['episodes'])}/{s['episode_cap']} episodes"
        )
        for e in s["episodes"]:
            branch = "" if e["branch"] == "main" else f" [{e['branch']}]"
            line = f"  #{e['number']:>3}{branch} {e['state']:<9} {e['title'] or e['beat'][:60]}"
            if e["worker_job"]:
                line += f"  (rendering on a worker since {e['worker_since']})"
            if e["failure"]:
                line += f"  ! {e['failure']}"
            lines.append(line)
        r = s["open_round"]
        if r:
            lines.append(
                f"  open round after #{r['episode']}, closes {r['closes_at']}, "
                f"{r['suggestions']} suggestion(s):"
            )
            for o in r["options"]:
                split = ", ".join(f"{name} {n}" for name, n in o["votes"].items())
                votes = f" — {o['total']} vote(s) ({split})" if split else ""
                lines.append(f"    {o['position']}. {o['label']}{votes}")
            if r["read_at"]:
                read = ", ".join(f"{n} {rounds.read_at(at)}" for n, at in r["read_at"].items())
                lines.append(f"    votes as last read: {read}")
    return "\n".join(lines)
