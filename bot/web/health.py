"""/healthz for container checks and /metrics in the Prometheus text format."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import distinct, func, select, text
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bot.app import App
from bot.web.context import WebContext
from story_state.db import session_scope
from story_state.lifecycle import EpisodeState, PostState, RoundStatus
from story_state.models import Episode, Post, Round, Suggestion

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_ERROR_KIND = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):")

Sample = tuple[dict[str, str], float]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(name: str, kind: str, help_text: str, samples: list[Sample]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        shown = ",".join(f'{k}="{_label(v)}"' for k, v in sorted(labels.items()))
        number = repr(float(value)) if not float(value).is_integer() else str(int(value))
        lines.append(f"{name}{{{shown}}} {number}" if shown else f"{name} {number}")
    return lines


def metrics_text(app: App) -> str:
    with session_scope(app.factory) as session:
        posted = session.scalar(
            select(func.count(distinct(Post.episode_id))).where(
                Post.kind == "clip", Post.state == PostState.SENT
            )
        )
        rounds_open = session.scalar(
            select(func.count()).select_from(Round).where(Round.status == RoundStatus.OPEN)
        )
        clip_seconds = session.scalar(
            select(func.coalesce(func.sum(Episode.duration_s), 0.0)).where(
                Episode.video_path.is_not(None)
            )
        )
        held = session.scalar(
            select(func.count()).select_from(Episode).where(Episode.state == EpisodeState.FAILED)
        )
        errors: dict[tuple[str, str], int] = {}
        for platform, last_error in session.execute(
            select(Post.platform, Post.last_error).where(Post.last_error.is_not(None))
        ):
            match = _ERROR_KIND.match(last_error or "")
            key = (platform, match.group(1) if match else "Unknown")
            errors[key] = errors.get(key, 0) + 1
        suggestions = {True: 0, False: 0}
        for accepted, n in session.execute(
            select(Suggestion.accepted, func.count()).group_by(Suggestion.accepted)
        ):
            suggestions[bool(accepted)] = int(n)
        outbox = session.execute(
            select(Post.platform, Post.state, func.count()).group_by(Post.platform, Post.state)
        ).all()
    lines = [
        *_family(
            "storybot_episodes_posted_total",
            "counter",
            "Episodes whose clip was posted on at least one platform.",
            [({}, posted or 0)],
        ),
        *_family(
            "storybot_rounds_open", "gauge", "Rounds open for votes.", [({}, rounds_open or 0)]
        ),
        *_family(
            "storybot_clip_seconds_total",
            "counter",
            "Seconds of clip rendered (render time itself is not stored).",
            [({}, float(clip_seconds or 0.0))],
        ),
        *_family(
            "storybot_episodes_held", "gauge", "Episodes held for the operator.", [({}, held or 0)]
        ),
        *_family(
            "storybot_platform_errors_total",
            "gauge",
            "Outbox posts whose last attempt failed, by platform and error class.",
            [({"platform": p, "kind": k}, n) for (p, k), n in sorted(errors.items())],
        ),
        *_family(
            "storybot_suggestions_total",
            "gauge",
            "Suggestions stored, by whether they count (moderation can move one).",
            [({"accepted": "true" if a else "false"}, n) for a, n in suggestions.items()],
        ),
        *_family(
            "storybot_outbox_posts",
            "gauge",
            "Outbox rows by platform and state.",
            [({"platform": p, "state": str(s)}, int(n)) for p, s, n in outbox],
        ),
    ]
    if app.heartbeat is not None:
        lines += _family(
            "storybot_last_tick_timestamp_seconds",
            "gauge",
            "When the scheduler last finished a tick.",
            [({}, app.heartbeat.timestamp())],
        )
    return "\n".join(lines) + "\n"


def routes(ctx: WebContext) -> list[BaseRoute]:
    app = ctx.app

    def probe() -> None:
        with app.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    async def healthz(_request: Request) -> Response:
        body: dict[str, Any] = {"status": "ok", "database": "ok"}
        try:
            await run_in_threadpool(probe)
        except Exception as exc:  # any driver error means "not healthy"
            body.update(status="error", database=type(exc).__name__)
            return JSONResponse(body, status_code=503)
        body["last_tick"] = app.heartbeat.isoformat() if app.heartbeat else None
        return JSONResponse(body)

    async def metrics(_request: Request) -> Response:
        body = await run_in_threadpool(metrics_text, app)
        return PlainTextResponse(body, media_type=PROMETHEUS_TYPE)

    return [Route("/healthz", healthz), Route("/metrics", metrics)]
