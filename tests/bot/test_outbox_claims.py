"""Outbox claims: one conditional UPDATE decides which runner sends a row, on both databases."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.app import App
from bot.loop.outbox import Outbox, ensure_post, runner_identity
from bot.platforms.base import OutgoingPost, Platform, PostRef
from story_state.db import session_scope
from story_state.lifecycle import EpisodeState, PostState
from story_state.models import Episode, Post
from tests.bot.conftest import Clock


class Counting:
    """The sandbox platform, counting how often it is asked to publish."""

    def __init__(self, inner: Platform, before: Callable[[], None] | None = None) -> None:
        self.inner, self.name, self.calls, self.before = inner, inner.name, 0, before

    def publish(self, post: OutgoingPost) -> PostRef:
        self.calls += 1
        if self.before is not None:
            self.before()
        return self.inner.publish(post)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def pending_row(app: App, clock: Clock) -> int:
    story_id = app.runner.ensure_story()
    with session_scope(app.factory) as session:
        episode = Episode(
            story_id=story_id,
            branch="main",
            number=1,
            state=EpisodeState.RENDERED,
            beat="b",
            ideas=[],
            seed=1,
            created_at=clock(),
        )
        session.add(episode)
        session.flush()
        row = ensure_post(
            session,
            episode_id=episode.id,
            platform="local",
            kind="clip",
            key="claims:1:clip:local",
            post=OutgoingPost("", "Episode 1: the claim"),
            parent_post_id=None,
        )
        return row.id


def outbox(app: App, platform: Counting, owner: str) -> Outbox:
    return Outbox(app.factory, {"local": platform}, timedelta(seconds=5), 3, owner=owner)


def claim_as(app: App, owner: str, until: Callable[[], Any]) -> None:
    with session_scope(app.factory) as session:
        row = session.scalars(select(Post)).one()
        row.claimed_by, row.claimed_until = owner, until()


def test_a_row_claimed_by_a_live_runner_is_left_to_it(
    make_app: Callable[..., App], db_url: str, clock: Clock
) -> None:
    app = make_app(db_url)
    post_id = pending_row(app, clock)
    assert app.local is not None
    platform = Counting(app.local)
    # Another runner on another host claimed it a minute ago; its lease runs 15 minutes.
    claim_as(app, "elsewhere pid=1 run=abc", lambda: clock() + timedelta(minutes=14))
    mine = outbox(app, platform, runner_identity())
    mine.send([post_id], clock())
    assert platform.calls == 0
    clock.now += timedelta(minutes=15)  # the lease ran out: that runner is gone
    mine.send([post_id], clock())
    assert platform.calls == 1
    with session_scope(app.factory) as session:
        row = session.get(Post, post_id)
        assert row is not None and row.state is PostState.SENT and row.claimed_by is None


def test_a_claim_by_a_dead_process_on_this_host_is_taken_over_at_once(
    make_app: Callable[..., App], db_url: str, clock: Clock
) -> None:
    app = make_app(db_url)
    post_id = pending_row(app, clock)
    assert app.local is not None
    platform = Counting(app.local)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    host = runner_identity().partition(" pid=")[0]
    claim_as(
        app, f"{host} pid={gone.stdout.strip()} run=old", lambda: clock() + timedelta(minutes=14)
    )
    outbox(app, platform, runner_identity()).send([post_id], clock())
    assert platform.calls == 1  # a kill -9 on this host does not stall the story for the lease


def test_two_outboxes_racing_for_one_row_send_it_once(
    make_app: Callable[..., App], db_url: str, clock: Clock
) -> None:
    app = make_app(db_url)
    post_id = pending_row(app, clock)
    assert app.local is not None
    late = Counting(app.local)
    second = outbox(app, late, runner_identity())
    # The second runner tries the same row while the first is inside the platform call.
    early = Counting(app.local, before=lambda: second.send([post_id], clock()))
    outbox(app, early, runner_identity()).send([post_id], clock())
    assert (early.calls, late.calls) == (1, 0)
