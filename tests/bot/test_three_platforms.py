"""One story on Mastodon (a real Takahe), X (the adapter against a scripted X on loopback)
and Bluesky (the reference PDS and AppView) at once.

Followers vote in Takahe's poll and like Bluesky's option replies; X's free tier cannot read,
so votes there do not count. While the round is open /admin shows each platform's reading
with its time; the round's decision adds them up; each next clip answers the poll on every
platform; and X, answering 503 for a whole round, catches up in thread order. Every thread
is judged on the servers' own records, never on our database.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from bot.app import App, build_app
from bot.config import parse_config
from bot.platforms.bluesky.adapter import BlueskyPlatform
from bot.platforms.mastodon.adapter import MastodonPlatform
from bot.platforms.x.adapter import XPlatform
from bot.web import start_server
from story_state.db import session_scope
from story_state.lifecycle import EpisodeState
from story_state.models import Episode, Post
from tests.bot.bluesky import BOT as BLUESKY_BOT
from tests.bot.bluesky import Bluesky
from tests.bot.conftest import Clock, small_config
from tests.bot.platform_harness import BOT_ID, WorldSession, XWorld
from tests.bot.takahe import Takahe
from tests.bot.websupport import TOKEN_ENV, Site
from tests.bot.x_fixtures import UNAVAILABLE, Answer, FakeX, SpecSession

pytestmark = pytest.mark.timeout(600)

PREMISE = "A lighthouse keeper on a tidally locked moon hears knocking from under the sea ice."


class Outage(dict[tuple[str, str], list[Answer]]):
    """The fake X's routes while X is down: every request is answered 503."""

    def get(self, key: Any, default: Any = None) -> list[Answer]:
        return [Answer(503, UNAVAILABLE)]


class XSession(WorldSession):
    """Spec-checked requests to the small X; while ``down`` nothing reaches its world."""

    def __init__(self, world: XWorld) -> None:
        super().__init__(world)
        self.down = False

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if self.down:
            return SpecSession.send(self, request, **kwargs)
        return super().send(request, **kwargs)


class Story:
    def __init__(self, app: App, clock: Clock, world: XWorld, session: XSession) -> None:
        self.app, self.clock, self.world, self.session = app, clock, world, session
        self.routes = world.fake.routes

    def tick(self, minutes: float = 1) -> None:
        self.clock.now += timedelta(minutes=minutes)
        self.app.runner.tick()

    def head(self) -> Episode:
        with session_scope(self.app.factory) as session:
            row = session.scalars(select(Episode).order_by(Episode.id.desc())).first()
            assert row is not None
            session.expunge(row)
            return row

    def until(self, number: int, state: EpisodeState, ticks: int = 12) -> None:
        for _ in range(ticks):
            self.tick()
            head = self.head()
            if head.number == number and head.state is state:
                return
        raise AssertionError(f"episode {self.head().number} is {self.head().state}")

    def ids(self, platform: str) -> dict[tuple[int, str], str]:
        """(episode number, kind) → the post's id on ``platform``, as the outbox stored it."""
        with session_scope(self.app.factory) as session:
            rows = session.execute(
                select(Episode.number, Post.kind, Post.remote_id)
                .join(Episode, Post.episode_id == Episode.id)
                .where(Post.platform == platform, Post.remote_id.is_not(None))
            ).all()
        return {(n, kind): str(remote) for n, kind, remote in rows}

    def x_down(self, down: bool) -> None:
        self.session.down = down
        self.world.fake.routes = Outage() if down else self.routes


@pytest.fixture
def story(
    tmp_path: Path,
    takahe: Takahe,
    bluesky: Bluesky,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Story]:
    bluesky.reset((BLUESKY_BOT, "ana", "ben", "cyd", "bob", "carol"))
    # The server is shared: an earlier story's posts with the same text would be taken for
    # this one's earlier attempts (Takahe ignores Idempotency-Key), so the bot starts empty.
    takahe.delete_all("storybot")
    monkeypatch.delenv(TOKEN_ENV, raising=False)  # /admin is then served to loopback only
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    data = small_config(tmp_path, f"sqlite:///{tmp_path / 'story.db'}")
    data["story"] |= {
        "premise": PREMISE,
        "slug": f"three-{time.time_ns() % 16**8:08x}",
        "seed": time.time_ns() % 2**31,
        "episode_cap": 3,
        "offer_ending_within": 0,
    }
    data["platforms"] = {"local": {"enabled": False}}
    fake = FakeX()
    world = XWorld(fake)
    session = XSession(world)
    platforms: dict[str, Any] = {
        "mastodon": MastodonPlatform(takahe.url, takahe.token("storybot"), clock=clock),
        "bluesky": BlueskyPlatform(
            bluesky.pds,
            bluesky.handle(BLUESKY_BOT),
            bluesky.app_password(BLUESKY_BOT),
            session_file=tmp_path / "bluesky.session",
            clock=clock,
        ),
        # The free tier: it posts (text, polls, video) and cannot read replies or polls.
        "x": XPlatform("ck", "cs", "at", "as", api_base=fake.base, session=session, clock=clock),
    }
    app = build_app(parse_config(data), platforms=platforms, clock=clock)
    try:
        yield Story(app, clock, world, session)
    finally:
        app.close()
        platforms["bluesky"].close()
        platforms["x"].close()
        fake.close()


def admin_table(site: Site) -> list[list[str]]:
    """The open round's tally on /admin, as its cells read: the header row first."""
    with site.client() as http:
        page = http.get("/admin")
    assert page.status_code == 200, page.text[:500]
    section = page.text.split('<section id="round"', 1)[1].split("</section>", 1)[0]
    table = section.split('<table class="tally">', 1)[1].split("</table>", 1)[0]
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd]>(.*?)</t[hd]>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)
    ]


def test_one_story_on_mastodon_x_and_bluesky(
    story: Story, takahe: Takahe, bluesky: Bluesky, tmp_path: Path
) -> None:
    net, world = bluesky, story.world
    story.until(1, EpisodeState.POLLING)
    masto, blue, x = (story.ids(name) for name in ("mastodon", "bluesky", "x"))
    assert {(1, "clip"), (1, "poll")} <= set(masto) & set(blue) & set(x)
    with session_scope(story.app.factory) as session:
        first = session.scalars(select(Episode).where(Episode.number == 1)).one()
        assert first.round is not None
        options = len(first.round.options)
    assert options >= 3

    # The votes: no platform alone would pick option 3, together they do; X's are not read.
    voter = takahe.client("ana")
    poll = voter.status(masto[1, "poll"])["poll"]
    for name, choice in (("ana", 1), ("ben", 1), ("cy", 1), ("bob", 3), ("carol", 3)):
        takahe.client(name).poll_vote(poll["id"], [choice - 1])
    question = blue[1, "poll"]
    for name, choice in (("ana", 2), ("ben", 2), ("cyd", 2), ("bob", 3), ("carol", 3)):
        net.like(name, net.option_uri(name, question, choice))
    for name in ("bob", "carol"):
        world.vote(name, x[1, "poll"], 1)  # would make option 1 win if X's counted

    story.tick()  # the runner reads each platform's poll while the round is open
    read_at = f"{story.clock.now:%H:%M} UTC"
    server = start_server(story.app)
    site = Site(story.app, server, f"http://127.0.0.1:{server.port}", tmp_path)
    try:
        header, *rows = admin_table(site)
        assert header == [
            "#",
            "Option",
            f"mastodon ({read_at})",
            f"bluesky ({read_at})",
            "x (not counted)",
            "Total",
        ]
        expected = {1: ("3", "0", "—", "3"), 2: ("0", "3", "—", "3"), 3: ("2", "2", "—", "4")}
        for row in rows:
            assert tuple(row[2:]) == expected.get(int(row[0]), ("0", "0", "—", "0")), rows
        with site.client() as http:
            page = http.get("/admin").text
        assert "Votes on x are not counted: X&#39;s free API tier only posts." in page

        story.x_down(True)  # X answers 503 from here until the next round has closed
        story.tick(minutes=31)  # past the round's end: it closes on every platform's votes
    finally:
        server.stop()
    with session_scope(story.app.factory) as session:
        first = session.scalars(select(Episode).where(Episode.number == 1)).one()
        assert first.round is not None and first.round.decision is not None
        decision = first.round.decision
        assert first.round.winner_position == 3, decision
        assert decision["per_platform"]["mastodon"][:3] == [3, 0, 2]
        assert decision["per_platform"]["bluesky"][:3] == [0, 3, 2]
        assert "x" not in decision["per_platform"]
        assert decision["totals"][:3] == [3, 3, 4] and decision["voters"] == 10

    story.until(2, EpisodeState.POLLING)  # on Mastodon and Bluesky; X is down
    assert (2, "clip") not in story.ids("x")
    story.tick(minutes=31)  # round 2 closes without X
    story.until(3, EpisodeState.ENDED)
    assert (3, "clip") not in story.ids("x")
    story.x_down(False)
    for _ in range(8):  # X answers again: what it missed goes out, in thread order
        story.tick(minutes=10)
        if {(2, "clip"), (2, "poll"), (3, "clip")} <= set(story.ids("x")):
            break

    # The servers' own records: each next clip answers the poll before it, everywhere.
    masto, blue, x = (story.ids(name) for name in ("mastodon", "bluesky", "x"))
    statuses = {str(s["id"]): s for s in takahe.statuses_of("storybot")}
    records = {r.uri: r.value for r in net.records(BLUESKY_BOT)}
    timeline = requests.get(f"{world.fake.base}/2/users/{BOT_ID}/tweets", timeout=10).json()
    tweets = {p["id"]: p for p in timeline["data"]}

    def parent(platform: str, remote_id: str) -> str | None:
        if platform == "mastodon":
            found = statuses[remote_id]["in_reply_to_id"]
            return None if found is None else str(found)
        if platform == "bluesky":
            reply = records[remote_id].reply
            return None if reply is None else str(reply.parent.uri)
        refs = tweets[remote_id].get("referenced_posts") or []
        return next((r["id"] for r in refs if r["type"] == "replied_to"), None)

    for platform, ids in (("mastodon", masto), ("bluesky", blue), ("x", x)):
        assert parent(platform, ids[1, "clip"]) is None, platform
        for n in (1, 2):
            assert parent(platform, ids[n, "poll"]) == ids[n, "clip"], (platform, n)
            assert parent(platform, ids[n + 1, "clip"]) == ids[n, "poll"], (platform, n)
    # On X the posts it missed went out in thread order once it answered again.
    order = [x[1, "poll"], x[2, "clip"], x[2, "poll"], x[3, "clip"]]
    assert sorted(order, key=int) == order
    assert len(tweets) == len(statuses) == 5  # nothing twice
    assert len([r for r in records.values() if r.reply is None]) == 1  # one thread there too
