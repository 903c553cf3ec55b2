"""`storybot cut`: the Community's Cut — every episode along a branch as one film."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from sqlalchemy import select

from bot.app import App
from bot.runner import MAIN, path_to
from generation.clip.ffmpeg import FfmpegAssembler
from generation.cut import Chapter, CutInfo, render_cut
from story_state.db import session_scope
from story_state.errors import StateError, StorybotError
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


def render_story_cut(app: App, branch: str, out: Path, when: datetime) -> CutInfo:
    """The branch's Community's Cut at ``out``, framed like the story's clips."""
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


@click.command()
@click.option("--out", "out", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option("--branch", default=MAIN, show_default=True, help="Which line of the story.")
@click.pass_context
def cut(ctx: click.Context, out: Path, branch: str) -> None:
    """Render the Community's Cut: title card, chapter cards, every episode, end credits."""
    from bot.cli import _app

    app: App = ctx.with_resource(_app(ctx))
    try:
        click.echo(f"cutting branch {branch!r}…", err=True)
        info = render_story_cut(app, branch, out, datetime.now(UTC))
    except StorybotError as exc:
        raise click.ClickException(str(exc)) from None
    for mark in info.chapters:
        click.echo(f"{mark.start_s:8.1f}s  {mark.title}")
    more = f" (+{info.left_out} counted, not shown)" if info.left_out else ""
    click.echo(
        f"wrote {out}: {info.duration_s:.1f} s, {info.size_bytes / 1e6:.1f} MB, "
        f"{info.credited} name(s) in the credits{more}"
    )
