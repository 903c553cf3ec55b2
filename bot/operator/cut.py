"""The Community's Cut: every rendered episode along a branch as one film, credits at the end."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from bot.app import App
from bot.loop.runner import path_to
from generation.clip.ffmpeg import FfmpegAssembler
from generation.cut import Chapter, CutInfo, render_cut
from story_state.db import session_scope
from story_state.errors import ConfigError, StateError
from story_state.models import Credit, Episode


def chapters_and_credits(app: App, branch: str) -> tuple[list[Chapter], list[str], str]:
    """The branch's rendered episodes, re-rendered where their files are gone."""
    story_id = app.runner.ensure_story()
    with session_scope(app.factory) as session:
        head = session.scalars(
            select(Episode)
            .where(Episode.story_id == story_id, Episode.branch == branch)
            .order_by(Episode.number.desc())
        ).first()
        if head is None:
            raise StateError(f"branch {branch!r} has no episodes")
        episodes = [e for e in path_to(head) if e.video_path]
        if not episodes:
            raise StateError("no episode has been rendered yet")
        root = app.runner.media_root
        missing = [e.id for e in episodes if not (root / (e.video_path or "")).is_file()]
        title = head.story.title
    for episode_id in missing:
        app.runner.rerender(episode_id)
    with session_scope(app.factory) as session:
        rows = [session.get(Episode, e.id) for e in episodes]
        chapters = [
            Chapter(
                e.number, e.title or f"Episode {e.number}", app.runner.media_root / e.video_path
            )
            for e in rows
            if e is not None and e.video_path
        ]
        credits = session.scalars(
            select(Credit)
            .where(Credit.episode_id.in_([e.id for e in episodes]))
            .order_by(Credit.id)
        ).all()
        names = list(dict.fromkeys(c.contributor.display_name for c in credits))
    return chapters, names, title


def render_story_cut(
    app: App, branch: str, out: Path, when: datetime, *, make_folder: bool = True
) -> CutInfo:
    """The branch's Community's Cut at ``out``, framed like the story's clips.

    ``make_folder`` creates ``out``'s folder (the dashboard writes into the media root);
    without it a missing folder is an error before anything is rendered (a typo on the
    command line should not make folders).
    """
    if not make_folder and not out.parent.is_dir():
        raise ConfigError(f"--out: the folder {out.parent} does not exist")
    clip = app.config.generation.clip
    chapters, names, title = chapters_and_credits(app, branch)
    out.parent.mkdir(parents=True, exist_ok=True)
    return render_cut(
        chapters,
        title=title,
        credits=names,
        out=out,
        width=clip.width,
        height=clip.height,
        fps=clip.fps,
        date=f"{when:%d %B %Y}",
        assembler=FfmpegAssembler(preset=clip.preset),
    )


__all__ = ["chapters_and_credits", "render_story_cut"]
