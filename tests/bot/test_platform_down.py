"""One platform down, the others go on; operators are never kept waiting by a slow step."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select

from bot.app import App
from bot.doctor.checks import Status
from bot.doctor.report import run_doctor
from bot.operator.status import render_text, story_status
from bot.platforms.base import OutgoingPost, PollTally, PostRef, Reply
from bot.platforms.local import LocalAction, LocalPlatform
from bot.web.dashboard import dashboard
from generation.pipeline import Generators
from generation.writer.base import Script, WriteRequest
from story_state.db import session_scope
from story_state.errors import TransientError
from story_state.lifecycle import EpisodeState, PostState
from story_state.models import Episode, Post
from tests.bot.conftest import Clock

MakeApp = Callable[..., App]


class Down(LocalPlatform):
    """A second platform in the same sandbox tables; while ``down``, every call fails."""

    name = "mirror"

    def __init__(self, inner: LocalPlatform) -> None:
        super().__init__(inner._factory, "mirrorbot", inner._clock)
        self.down = True
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise TransientError("503 Service Unavailable from the mirror")

    def publish(self, post: OutgoingPost) -> PostRef:
        self._check()
        return PostRef(self.name, super().publish(post).remote_id)

    def fetch_replies(self, posts: tuple[PostRef, ...]) -> list[Reply]:
        self._check()
        local = tuple(PostRef("local", p.remote_id) for p in posts)
        return [r for r in super().fetch_replies(local)]

    def fetch_tally(self, poll: PostRef) -> PollTally:
        self._check()
        return super().fetch_tally(PostRef("local", poll.remote_id))


def heads(app: App) -> list[Episode]:
    with session_scope(app.factory) as session:
        rows = list(session.scalars(select(Episode).order_by(Episode.number)))
        session.expunge_all()
        return rows


def test_a_platform_down_for_three_rounds_does_not_stop_the_story(
    sqlite_url: str, make_app: MakeApp, clock: Clock
) -> None:
    probe = make_app(sqlite_url)
    assert probe.local is not None
    mirror = Down(probe.local)
    app = make_app(sqlite_url, platforms={"local": probe.local, "mirror": mirror})
    mirror.down = False  # it posts the first clip and poll, then goes down: reads fail too
    for number in (1, 2, 3):
        for _ in range(6):
            app.runner.tick()
            clock.now += timedelta(minutes=1)
            if heads(app)[-1].state is EpisodeState.POLLING:
                mirror.down = True
        assert heads(app)[-1].state is EpisodeState.POLLING, heads(app)[-1].failure_reason
        probe.local.act(LocalAction("ana", reply=f"The miners dig deeper, round {number}"))
        app.runner.close_round_now()
    assert [e.number for e in heads(app)] == [1, 2, 3, 4]
    assert not [e for e in heads(app) if e.state is EpisodeState.FAILED]
    with session_scope(app.factory) as session:
        doc = story_status(session)
    (failing,) = doc["failing_platforms"]
    assert failing["platform"] == "mirror" and failing["posts_waiting"] >= 1
    assert "503 Service Unavailable" in failing["last_error"]
    assert "! mirror failing since" in render_text(doc)
    (shown,) = dashboard(app)["health"]["failing"]  # /admin's health panel
    assert shown["platform"] == "mirror"
    rows = [c for c in run_doctor(app.config).checks if c.area == "mirror"]
    assert [(c.item, c.status) for c in rows] == [("recent calls", Status.WARN)]

    mirror.down = False  # it recovers: everything it missed goes out, in thread order
    for _ in range(12):
        clock.now += timedelta(minutes=31)
        app.runner.tick()
    with session_scope(app.factory) as session:
        rows = session.scalars(
            select(Post).where(Post.platform == "mirror").order_by(Post.sent_at, Post.id)
        ).all()
        assert rows and all(r.state is PostState.SENT for r in rows)
        by_id = {r.id: r for r in rows}
        for row in rows:  # each answers its parent there, which went out first
            if row.parent_post_id is not None:
                parent = by_id[row.parent_post_id]
                assert row.in_reply_to == parent.remote_id
                assert parent.sent_at is not None and row.sent_at is not None
                assert parent.sent_at <= row.sent_at
        assert story_status(session)["failing_platforms"] == []


class SlowWriter:
    """The offline writer, after a long think (as an LLM behind a busy endpoint)."""

    def __init__(self, inner: object, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds
        self.started = threading.Event()

    def write(self, request: WriteRequest) -> Script:
        self.started.set()
        time.sleep(self.seconds)
        script: Script = self.inner.write(request)  # type: ignore[attr-defined]
        return script


def test_a_dashboard_action_does_not_wait_for_a_slow_writer(
    sqlite_url: str, make_app: MakeApp
) -> None:
    base = make_app(sqlite_url)
    gens = base.runner.generators
    writer = SlowWriter(gens.writer, 4.0)
    app = make_app(sqlite_url, generators=Generators(writer, gens.image, gens.voice, gens.clip))
    app.runner.tick(max_steps=1)  # plans episode 1
    ticking = threading.Thread(target=app.runner.tick, kwargs={"max_steps": 1})
    ticking.start()
    try:
        assert writer.started.wait(10)
        began = time.monotonic()
        app.runner.set_paused(True)  # what the dashboard's pause button calls
        waited = time.monotonic() - began
    finally:
        ticking.join(30)
    assert waited < 1.0, f"the pause waited {waited:.1f} s behind the writer"
    # The writer's work was stored: pausing stops the next step, not the one in hand.
    assert heads(app)[0].state is EpisodeState.WRITTEN
