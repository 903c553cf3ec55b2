"""`storybot demo`: a whole offline story with a simulated audience, written to a folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select

from bot.app import App, build_app
from bot.config import Config, parse_config
from bot.demo.audience import Audience
from bot.operator.export import copy_videos, story_document, thread_html
from story_state.db import session_scope
from story_state.lifecycle import EpisodeState
from story_state.models import Episode, Story

DEFAULT_PREMISE = (
    "On the salt flats of a dying moon, a crew of miners finds a derelict ship "
    "that should not exist."
)


def demo_config(base: Config | None, out_dir: Path, seed: int, rounds: int) -> Config:
    data: dict[str, Any] = (
        base.model_dump(exclude={"source"}) if base else {"story": {"premise": DEFAULT_PREMISE}}
    )
    story = dict(data["story"])
    story["seed"] = seed
    story["episode_cap"] = max(rounds + 1, int(story.get("episode_cap", 0)))
    data["story"] = story
    data["database"] = {"url": f"sqlite:///{(out_dir / 'storybot-demo.db').resolve()}"}
    data["media"] = {"root": str((out_dir / "media").resolve())}
    data["platforms"] = {"local": {"enabled": True}}
    return parse_config(data)


def run_demo(base: Config | None, *, rounds: int, out_dir: Path, seed: int, audience: int) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("storybot-demo.db*"):
        stale.unlink()  # same seed → same story: always start from an empty sandbox
    config = demo_config(base, out_dir, seed, rounds)
    app = build_app(config)
    crowd = Audience(audience, seed)
    console = Console(stderr=True)
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("starting", total=rounds * 5)
            for number in range(1, rounds + 1):
                while True:
                    result = app.runner.step(app.runner.ensure_story())
                    progress.update(task, description=result.note or "working")
                    if not result.progressed:
                        raise RuntimeError(f"the story stalled: {result.note}")
                    progress.advance(task)
                    if _state(app, number) is EpisodeState.POLLING:
                        break
                report = crowd.play_round(app.local, number) if app.local else None
                if report:
                    progress.update(
                        task,
                        description=(
                            f"round {number}: {report.replies} replies, {report.likes} likes, "
                            f"{report.votes} votes"
                        ),
                    )
                note = app.runner.close_round_now()
                progress.update(task, description=note)
                progress.advance(task)
        with session_scope(app.factory) as session:
            story = session.get(Story, app.runner.ensure_story())
            assert story is not None
            doc = story_document(session, story, app.runner.media_root)
            title = story.title
        # The thread names each clip by its media path; the page names the copy beside it.
        sources = {e["source_video"]: e["video"] for e in doc["episodes"]}
        copy_videos(doc, out_dir)
        (out_dir / "story.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False))
        thread = app.local.thread() if app.local else {"posts": []}
        (out_dir / "thread.html").write_text(thread_html(title, thread, sources))
        console.print(
            f"[bold]{rounds} episode(s)[/] written to {out_dir}: "
            "episode-*.mp4, story.json, thread.html"
        )
    finally:
        app.close()


def _state(app: App, number: int) -> EpisodeState | None:
    with session_scope(app.factory) as session:
        episode = session.scalars(select(Episode).where(Episode.number == number)).first()
        return episode.state if episode else None
