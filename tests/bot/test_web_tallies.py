"""Live votes from every readable platform: the runner reads them while the round is open and
keeps the reading; /admin, the sandbox page and `storybot status` show it with its time and
never call a platform themselves; a platform that cannot be read at close counts with its
last reading, and the decision says so."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.app import App
from bot.operator.status import render_text, story_status
from bot.platforms.base import Limits, OutgoingPost, PollTally, PostRef, Reply
from bot.platforms.local import LocalAction
from bot.web import start_server
from bot.web.dashboard import dashboard
from story_state.db import session_scope
from story_state.errors import TransientError
from story_state.lifecycle import EpisodeState
from story_state.models import Episode, PlatformHealth
from story_state.models import PollTally as TallyRow
from tests.bot.conftest import Clock
from tests.bot.websupport import TOKEN_ENV, Site

pytestmark = pytest.mark.timeout(240)
MakeApp = Callable[..., App]


class Scripted:
    """A remote platform whose poll says what the test says; counts every read."""

    def __init__(self, name: str, can_read: bool = True) -> None:
        self.name = name
        self.can_read = can_read
        self.counts: tuple[int, ...] = ()
        self.down = False
        self.reads = 0
        self.made = 0

    def limits(self) -> Limits:
        return Limits(can_read=self.can_read)

    def publish(self, post: OutgoingPost) -> PostRef:
        self.made += 1
        return PostRef(self.name, str(self.made))

    def fetch_replies(self, posts: tuple[PostRef, ...]) -> list[Reply]:
        if self.down:
            raise TransientError(f"503 from {self.name}")
        return []

    def fetch_tally(self, poll: PostRef) -> PollTally:
        self.reads += 1
        if self.down:
            raise TransientError(f"503 from {self.name}")
        return PollTally(self.name, self.counts, voters=sum(self.counts))


def head(app: App) -> Episode:
    with session_scope(app.factory) as session:
        row = session.scalars(select(Episode).order_by(Episode.id.desc())).first()
        assert row is not None
        session.expunge(row)
        return row


def rows(app: App, platform: str) -> list[tuple[int, int]]:
    with session_scope(app.factory) as session:
        found = session.scalars(
            select(TallyRow).where(TallyRow.platform == platform).order_by(TallyRow.position)
        ).all()
        return [(r.position, r.votes) for r in found]


def test_live_votes_from_other_platforms_on_every_page(
    sqlite_url: str,
    make_app: MakeApp,
    clock: Clock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    probe = make_app(sqlite_url)
    local = probe.local
    assert local is not None
    remote, x = Scripted("mastodon"), Scripted("x", can_read=False)
    app = make_app(sqlite_url, platforms={"local": local, "mastodon": remote, "x": x})
    for _ in range(6):
        app.runner.tick()
        if head(app).state is EpisodeState.POLLING:
            break
    with session_scope(app.factory) as session:
        options = len(session.scalars(select(Episode)).one().round.options)  # type: ignore[union-attr]
    assert options >= 2
    local.act(LocalAction("zoe", vote=1))
    remote.counts = (2, 5) + (0,) * (options - 2)
    clock.now += timedelta(minutes=1)
    app.runner.tick()
    first_read = f"{clock.now:%H:%M} UTC"
    assert rows(app, "mastodon")[:2] == [(1, 2), (2, 5)]
    assert x.reads == 0  # post-only: never asked
    reads = remote.reads
    app.runner.tick()  # the same moment again: not read twice within a tick
    assert remote.reads == reads

    server = start_server(app)
    site = Site(app, server, f"http://127.0.0.1:{server.port}", tmp_path)
    try:
        with site.client() as http:
            tag = http.get("/api/thread").headers["etag"]
            admin = http.get("/admin").text
            page = html.unescape(http.get("/").text)
            thread = http.get("/api/thread").json()
        assert remote.reads == reads  # no page load calls a remote platform
        for column in ("local (live)", f"mastodon ({first_read})", "x (not counted)"):
            assert f"<th>{column}</th>" in admin, column
        assert "Votes on x are not counted" in admin
        # The sandbox page: every platform's votes, merged, each labelled.
        assert f"sandbox 1 · mastodon 2 ({first_read})" in page
        assert f"sandbox 0 · mastodon 5 ({first_read})" in page
        assert "Votes on x are not counted: X's free API tier only posts." in page
        (poll,) = [p["poll"] for p in thread["posts"] if p["poll"]]
        assert [o["votes"] for o in poll["options"]][:2] == [3, 5]
        assert poll["total"] == 8

        # New votes elsewhere change the live view's version (the page refreshes itself).
        remote.counts = (2, 6) + (0,) * (options - 2)
        clock.now += timedelta(minutes=1)
        app.runner.tick()
        with site.client() as http:
            fresh = http.get("/api/thread", headers={"If-None-Match": tag})
        assert fresh.status_code == 200
        last_read = f"{clock.now:%H:%M} UTC"

        # Down while open: the step goes on, the health mark says so, the reading stays.
        remote.down = True
        clock.now += timedelta(minutes=1)
        app.runner.tick()
        assert head(app).state is EpisodeState.POLLING and head(app).attempts == 0
        with session_scope(app.factory) as session:
            mark = session.get(PlatformHealth, "mastodon")
            assert mark is not None and mark.failing_since is not None
            doc = story_status(session)
        assert rows(app, "mastodon")[:2] == [(1, 2), (2, 6)]
        text = render_text(doc)
        assert "mastodon 6" in text and f"mastodon {last_read}" in text, text

        # Still down at close: its last reading counts, and the reason says so.
        clock.now += timedelta(minutes=31)
        app.runner.tick()
        with session_scope(app.factory) as session:
            closed = session.scalars(select(Episode).where(Episode.number == 1)).one()
            assert closed.round is not None and closed.round.decision is not None
            decision = closed.round.decision
            assert decision["per_platform"]["mastodon"][:2] == [2, 6]
            assert decision["per_platform"]["local"][:2] == [1, 0]
            assert closed.round.winner_position == 2
            why = f"counted from the last reading: mastodon as read at {last_read}"
            assert why in decision["reason"]
            assert decision["voters"] == 9
            count = session.scalar(select(func.count()).where(TallyRow.round_id == closed.round.id))
            assert count == 2 * options  # one row per option and platform, updated in place
        poll_after = dashboard(app)["story"]["episodes"][-1]["poll"]
        assert poll_after["columns"] == ["local (at close)", f"mastodon (read at {last_read})"]
        with site.client() as http:
            after = html.unescape(http.get("/").text)
        assert re.search(r"sandbox 1 · mastodon 2(?! \()", after), "closed: no reading time"
    finally:
        server.stop()
