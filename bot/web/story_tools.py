"""The dashboard's story tools: the bible, the branch tree, and the Community's Cut job."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.app import App
from bot.loop.runner import MAIN
from bot.operator.cut import render_story_cut
from story_state.branches import check_branch, inside
from story_state.db import session_scope
from story_state.errors import StorybotError
from story_state.lifecycle import RoundStatus
from story_state.models import Episode, Story

log = logging.getLogger(__name__)

CUTS = "cuts"  # the folder under the media root that cuts are written to
CUT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.mp4$")
KIND_ORDER = {"character": 0, "place": 1, "fact": 2}


def bible(app: App) -> dict[str, Any]:
    """Every lore entry of this bot's story, grouped by kind, proposed ones first."""
    with session_scope(app.factory) as session:
        story = session.scalars(select(Story).where(Story.slug == app.config.story.slug)).first()
        entries = [] if story is None else list(story.lore)
        rows = [
            {
                "id": e.id,
                "kind": e.kind,
                "name": e.name,
                "status": e.status,
                "description": e.description,
                "visual": e.visual,
                "contradictions": list(e.contradictions or []),
            }
            for e in sorted(
                entries,
                key=lambda e: (KIND_ORDER.get(e.kind, 3), e.status != "proposed", e.name),
            )
        ]
        return {"story": story.title if story else None, "entries": rows}


def tree(app: App) -> dict[str, Any]:
    """The episode tree, each branch's episodes in order; closed main-line rounds can fork."""
    with session_scope(app.factory) as session:
        story = session.scalars(select(Story).where(Story.slug == app.config.story.slug)).first()
        if story is None:
            return {"story": None, "branches": []}
        episodes = session.scalars(
            select(Episode).where(Episode.story_id == story.id).order_by(Episode.id)
        ).all()
        numbers = {e.id: (e.branch, e.number) for e in episodes}
        branches: dict[str, list[dict[str, Any]]] = {}
        for e in episodes:
            rnd = e.round
            forkable: list[dict[str, Any]] = []
            if e.branch == MAIN and rnd is not None and rnd.status is RoundStatus.CLOSED:
                forkable = [
                    {"position": o.position, "label": o.label}
                    for o in sorted(rnd.options, key=lambda o: o.position)
                    if o.position != rnd.winner_position
                ]
            parent = numbers.get(e.parent_id) if e.parent_id is not None else None
            branches.setdefault(e.branch, []).append(
                {
                    "id": e.id,
                    "branch": e.branch,
                    "number": e.number,
                    "state": str(e.state),
                    "beat": e.beat,
                    "title": e.title,
                    "parent": parent,
                    "round": str(rnd.status) if rnd is not None else None,
                    "winner": rnd.winner_label if rnd is not None else None,
                    "forkable": forkable,
                }
            )
        ordered = sorted(branches.items(), key=lambda item: item[0] != MAIN)
        return {
            "story": story.title,
            "branches": [{"name": name, "episodes": eps} for name, eps in ordered],
        }


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", part).strip("_") or "x"


@dataclass(frozen=True)
class CutState:
    state: str  # "idle" | "running" | "done" | "failed"
    branch: str = MAIN
    started: str | None = None
    message: str = ""
    name: str | None = None  # the file under <media root>/cuts/ once done
    path: str | None = None


class CutJob:
    """At most one Community's Cut rendering at a time, in a background thread."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._state = CutState("idle")
        self._thread: threading.Thread | None = None

    @property
    def folder(self) -> Path:
        return self.app.runner.media_root / CUTS

    def snapshot(self) -> CutState:
        with self._lock:
            return self._state

    def start(self, branch: str) -> str:
        """Start a cut of ``branch``; says so if one is running already."""
        branch = check_branch(branch.strip() or MAIN)  # part of the file's name
        now = datetime.now(UTC)
        name = f"{_safe(self.app.config.story.slug)}-{_safe(branch)}-{now:%Y%m%d-%H%M%S}.mp4"
        with self._lock:
            if self._state.state == "running":
                return f"The Community's Cut of {self._state.branch!r} is already running."
            self._state = CutState("running", branch, f"{now:%Y-%m-%d %H:%M:%S UTC}", "", name)
            self._thread = threading.Thread(
                target=self._run, args=(branch, name, now), name="storybot-cut", daemon=True
            )
            self._thread.start()
        return f"Started the Community's Cut of {branch!r}."

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _finish(self, **changes: Any) -> None:
        with self._lock:
            self._state = replace(self._state, **changes)

    def _run(self, branch: str, name: str, now: datetime) -> None:
        try:
            out = inside(self.app.runner.media_root, self.folder / name)
            info = render_story_cut(self.app, branch, out, now)
        except StorybotError as exc:
            self._finish(state="failed", message=str(exc))
            return
        except Exception as exc:  # a thread must say why it stopped, not die silently
            log.exception("the Community's Cut failed")
            self._finish(state="failed", message=f"{type(exc).__name__}: {exc}")
            return
        self._finish(
            state="done",
            path=str(out),
            message=(
                f"{len(info.chapters)} chapter(s), {info.duration_s:.1f} s, "
                f"{info.size_bytes / 1e6:.1f} MB, {info.credited} name(s) in the credits"
            ),
        )
        log.info("wrote the Community's Cut to %s", out)
