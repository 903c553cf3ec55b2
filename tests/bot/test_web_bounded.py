"""The public page stays cheap: with 10,000 replies the sandbox page, its live refresh and
/media read a bounded number of rows, through indexes, and an unchanged thread is a 304.

Rows are counted where SQLite hands them to SQLAlchemy (a row factory on every pooled
connection), statements where they are sent, and each statement's plan is asked of SQLite:
none may scan the reply, like or vote tables. Timings are printed, and held only to a
generous bound: the machine is shared.
"""

from __future__ import annotations

import re
import sqlite3
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import event, insert, select

from bot.platforms.local import LocalAction
from bot.web.thread import NESTED, REPLIES_PAGE
from story_state.db import session_scope
from story_state.models import LocalLike, LocalPost, LocalVote
from tests.bot.test_web_browser import ARGS, CHROMIUM, WAIT_MS
from tests.bot.websupport import Site, serve

pytestmark = pytest.mark.timeout(600)

REPLIES = 10_000
TO_CLIP = 1_000  # the rest answer the poll
NESTED_REPLIES = 50  # replies to one reply (only `storybot local` makes these)
TARGET_S = 0.200  # the target for a page load with 10,000 replies
GENEROUS_S = 1.0  # what the test holds it to on a shared, loaded machine
MAX_ROWS = 150  # rows one page load may read (about 90 today: 2 bot posts, 2 × 21 replies…)
MAX_STATEMENTS = 15
REPLY_TABLES = ("local_posts", "local_likes", "local_votes")


@dataclass
class Meter:
    """What the database did while it was on: statements (with their parameters) and rows."""

    on: bool = False
    rows: int = 0
    statements: list[tuple[str, Any]] = field(default_factory=list)


def instrument(site: Site) -> Meter:
    meter = Meter()

    def count_rows(_cursor: Any, row: tuple[Any, ...]) -> tuple[Any, ...]:
        if meter.on:
            meter.rows += 1
        return row

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        dbapi_connection.row_factory = count_rows

    def sent(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if meter.on:
            meter.statements.append((statement, parameters))

    event.listen(site.app.engine.pool, "checkout", checkout)
    event.listen(site.app.engine, "before_cursor_execute", sent)
    return meter


@contextmanager
def measuring(meter: Meter) -> Iterator[Meter]:
    meter.rows, meter.statements = 0, []
    meter.on = True
    try:
        yield meter
    finally:
        meter.on = False


def seed(site: Site, replies: int = REPLIES, start: int = 0) -> dict[str, Any]:
    """Bulk-insert follower replies (and likes and votes), as many as a busy round gets."""
    with session_scope(site.app.factory) as session:
        bots = session.execute(
            select(LocalPost.id, LocalPost.poll_options, LocalPost.created_at)
            .where(LocalPost.is_bot.is_(True))
            .order_by(LocalPost.id)
        ).all()
        clip, poll = bots[0], [b for b in bots if b.poll_options][-1]
        t0 = clip.created_at + timedelta(seconds=1)
        rows = [
            {
                "author": f"follower{start + i}",
                "is_bot": False,
                "in_reply_to": clip.id if i % (replies // TO_CLIP) == 0 else poll.id,
                "text": f"idea {start + i}: the ship's radio wakes up",
                "media": [],
                "created_at": t0 + timedelta(seconds=start + i),
            }
            for i in range(replies)
        ]
        session.execute(insert(LocalPost), rows)
        first = session.scalars(
            select(LocalPost.id).where(LocalPost.author == f"follower{start}")
        ).one()
        session.execute(
            insert(LocalLike),
            [
                {"post_id": first + i, "liker": f"liker{start + i}", "created_at": t0}
                for i in range(0, replies, 2)
            ],
        )
        session.execute(
            insert(LocalVote),
            [
                {
                    "post_id": poll.id,
                    "voter": f"voter{start + i}",
                    "position": 1 + i % 3,
                    "created_at": t0,
                }
                for i in range(replies // 3)
            ],
        )
    return {"clip": str(clip.id), "poll": str(poll.id)}


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Meter, dict[str, Any]]]:
    with serve(tmp_path_factory.mktemp("busy")) as site:
        started = time.perf_counter()
        ids = seed(site)
        # A reply that `storybot local` answered 50 times, and one of those answered again.
        assert site.app.local is not None
        target = newest_reply_to(site, ids["poll"])
        for i in range(NESTED_REPLIES):
            site.app.local.act(LocalAction(f"nester{i}", reply=f"re {i}", to=target))
        nested = newest_reply_to(site, target)
        site.app.local.act(LocalAction("deep", reply="deeper still", to=nested))
        print(f"\nseeded {REPLIES} replies in {time.perf_counter() - started:.1f} s")
        yield site, instrument(site), {**ids, "target": target, "nested": nested}


def newest_reply_to(site: Site, post: str) -> str:
    with session_scope(site.app.factory) as session:
        found = session.scalars(
            select(LocalPost.id)
            .where(LocalPost.in_reply_to == int(post))
            .order_by(LocalPost.id.desc())
            .limit(1)
        ).one()
    return str(found)


def reply_ids(site: Site, post: str) -> list[str]:
    with session_scope(site.app.factory) as session:
        rows = session.scalars(
            select(LocalPost.id)
            .where(LocalPost.in_reply_to == int(post), LocalPost.is_bot.is_(False))
            .order_by(LocalPost.id)
        ).all()
    return [str(i) for i in rows]


def scans(site: Site, statements: list[tuple[str, Any]]) -> list[str]:
    """Plan lines that read a whole reply, like or vote table (or a whole index of one)."""
    bad = []
    with sqlite3.connect(site.root / "bot.db") as db:
        for sql, params in statements:
            for *_, detail in db.execute(f"EXPLAIN QUERY PLAN {sql}", params or ()):
                words = detail.split()
                if words[:1] == ["SCAN"] and len(words) > 1 and words[1] in REPLY_TABLES:
                    bad.append(f"{detail}  <-  {sql[:200]}")
    return bad


def ids_in(html: str) -> list[str]:
    return re.findall(r'<article class="post reply" id="p(\d+)"', html)


def test_page_and_live_view_read_few_rows_through_indexes(
    busy: tuple[Site, Meter, dict[str, Any]],
) -> None:
    site, meter, ids = busy
    with site.client() as http:
        http.get("/")  # warm: templates compiled, connections open
        seen: dict[str, tuple[int, int]] = {}
        for path in ("/", "/api/thread"):
            with measuring(meter):
                response = http.get(path)
            assert response.status_code == 200
            assert len(meter.statements) <= MAX_STATEMENTS, [s for s, _ in meter.statements]
            assert meter.rows <= MAX_ROWS, meter.rows
            assert scans(site, meter.statements) == []
            seen[path] = (len(meter.statements), meter.rows)
        page = http.get("/").text
    print(f"\nrows and statements per request with {REPLIES} replies: {seen}")
    # The newest page of the poll's replies, oldest of them first, and a link to the rest.
    newest = reply_ids(site, ids["poll"])[-REPLIES_PAGE:]
    shown = ids_in(page)
    assert [i for i in shown if i in newest] == newest
    assert f'href="/replies/{ids["poll"]}?before={newest[0]}"' in page
    assert (
        f'href="/replies/{ids["clip"]}?before={reply_ids(site, ids["clip"])[-REPLIES_PAGE]}"'
        in page
    )
    # Under the much-answered reply: its newest NESTED replies and a link to the older ones.
    under = reply_ids(site, ids["target"])
    assert [i for i in shown if i in under] == under[-NESTED:]
    assert f'href="/replies/{ids["target"]}?before={under[-NESTED]}"' in page
    assert f'href="/replies/{ids["nested"]}"' in page  # one level further: a link alone


def test_work_does_not_grow_with_the_replies(busy: tuple[Site, Meter, dict[str, Any]]) -> None:
    site, meter, _ = busy
    counts = []
    with site.client() as http:
        for _round in range(2):
            with measuring(meter):
                assert http.get("/api/thread").status_code == 200
            counts.append((len(meter.statements), meter.rows))
            seed(site, 2_000, start=REPLIES + 100_000 * (_round + 1))
    # Fewer, if anything: the much-answered reply has left the newest page of the poll.
    assert counts[1][0] <= counts[0][0] and counts[1][1] <= counts[0][1], counts


def test_an_unchanged_thread_is_a_304_before_any_post_is_read(
    busy: tuple[Site, Meter, dict[str, Any]],
) -> None:
    site, meter, ids = busy
    assert site.app.local is not None
    with site.client() as http:
        tag = http.get("/api/thread").headers["etag"]
        with measuring(meter):
            again = http.get("/api/thread", headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.headers["etag"] == tag
        assert len(meter.statements) == 1 and meter.rows == 1  # one row of aggregates
        assert scans(site, meter.statements) == []

        def changed(action: LocalAction) -> str:
            nonlocal tag
            site.app.local.act(action)  # type: ignore[union-attr]
            fresh = http.get("/api/thread", headers={"If-None-Match": tag})
            assert fresh.status_code == 200, action
            tag = fresh.headers["etag"]
            return fresh.text

        assert "a brand new idea" in changed(LocalAction("etag1", reply="a brand new idea"))
        changed(LocalAction("etag2", like=newest_reply_to(site, ids["poll"])))
        changed(LocalAction("etag3", vote=1))
        assert http.get("/api/thread", headers={"If-None-Match": tag}).status_code == 304


def test_media_is_found_without_reading_the_replies(
    busy: tuple[Site, Meter, dict[str, Any]],
) -> None:
    site, meter, _ = busy
    with session_scope(site.app.factory) as session:
        media = session.scalars(
            select(LocalPost.media).where(LocalPost.is_bot.is_(True)).order_by(LocalPost.id)
        ).first()
    assert media
    rel = Path(media[0]["path"]).relative_to(site.root / "media").as_posix()
    with site.client() as http:
        http.get(f"/media/{rel}", headers={"Range": "bytes=0-9"})
        with measuring(meter):
            part = http.get(f"/media/{rel}", headers={"Range": "bytes=0-9"})
        assert part.status_code == 206 and len(part.content) == 10
        assert len(meter.statements) == 1 and meter.rows <= 2  # the bot's two posts
        assert scans(site, meter.statements) == []
        assert http.get("/media/salt-flats/episode-001/still.png").status_code == 404


def test_older_replies_page_back_to_the_first(busy: tuple[Site, Meter, dict[str, Any]]) -> None:
    site, meter, ids = busy
    seen: list[str] = []
    api: str | None = f"/api/replies/{ids['clip']}"
    pages = 0
    with site.client() as http:
        while api is not None:
            with measuring(meter):
                page = http.get(api)
            assert page.status_code == 200, page.text
            assert meter.rows <= MAX_ROWS and scans(site, meter.statements) == []
            doc = page.json()
            seen = ids_in(doc["html"]) + seen
            api = doc["more"]["api"] if doc["more"] else None
            pages += 1
        every = reply_ids(site, ids["clip"])
        assert seen == every  # each reply once, in order, back to the very first
        assert pages == -(-len(every) // REPLIES_PAGE)
        # The same pages as plain HTML, for a browser without the script.
        html = http.get(f"/replies/{ids['clip']}?before={every[-1]}").text
        assert ids_in(html) == every[-REPLIES_PAGE - 1 : -1]
        assert f'href="/replies/{ids["clip"]}?before={every[-REPLIES_PAGE - 1]}"' in html
        assert http.get("/replies/999999999").status_code == 404
        assert http.get(f"/replies/{ids['clip']}?before=x").status_code == 400
        assert http.get("/replies/99999999999999999999999").status_code == 404


def test_a_page_load_with_10000_replies_stays_quick(
    busy: tuple[Site, Meter, dict[str, Any]],
) -> None:
    site, _, _ = busy
    timings: dict[str, float] = {}
    with site.client() as http:
        tag = http.get("/api/thread").headers["etag"]
        for name, path, headers in [
            ("page", "/", {}),
            ("live", "/api/thread", {}),
            ("304", "/api/thread", {"If-None-Match": tag}),
        ]:
            runs = []
            for _ in range(7):
                started = time.perf_counter()
                response = http.get(path, headers=headers)
                runs.append(time.perf_counter() - started)
                assert response.status_code in (200, 304)
            timings[name] = statistics.median(runs)
    print(
        f"\nmedian with {REPLIES} replies: "
        + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in timings.items())
        + f" (target {TARGET_S * 1000:.0f} ms)"
    )
    assert max(timings.values()) < GENEROUS_S, timings


@pytest.mark.timeout(180)
def test_older_replies_load_in_place_in_a_real_browser(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)
    with serve(tmp_path) as site, sync_playwright() as pw:
        poll = seed_few(site, 45)
        every = reply_ids(site, poll)
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(WAIT_MS)
            page.goto(site.base + "/")
            page.evaluate("() => { window.__stayed = 42; }")
            replies = page.locator(f"#r{poll} > article.reply")
            expect(replies).to_have_count(REPLIES_PAGE, timeout=WAIT_MS)
            more = page.locator(f"#r{poll} > p.more a")
            more.click()
            expect(replies).to_have_count(2 * REPLIES_PAGE, timeout=WAIT_MS)
            more.click()
            expect(replies).to_have_count(len(every), timeout=WAIT_MS)
            expect(more).to_have_count(0, timeout=WAIT_MS)  # the first reply is shown: no older
            shown = replies.evaluate_all("els => els.map(e => e.dataset.id)")
            assert shown == every  # oldest first, each once
            assert site.app.local is not None
            site.app.local.act(LocalAction("late", reply="arrives while the page is open"))
            expect(replies).to_have_count(len(every) + 1, timeout=WAIT_MS)
            expect(replies.last).to_contain_text("arrives while the page is open", timeout=WAIT_MS)
            assert page.evaluate("() => window.__stayed") == 42  # never reloaded
        finally:
            browser.close()


def seed_few(site: Site, n: int) -> str:
    """``n`` replies to the open poll; returns its id."""
    with session_scope(site.app.factory) as session:
        poll = session.scalars(
            select(LocalPost)
            .where(LocalPost.is_bot.is_(True), LocalPost.poll_options.is_not(None))
            .order_by(LocalPost.id.desc())
        ).first()
        assert poll is not None
        session.execute(
            insert(LocalPost),
            [
                {
                    "author": f"few{i}",
                    "is_bot": False,
                    "in_reply_to": poll.id,
                    "text": f"few {i}",
                    "media": [],
                    "created_at": poll.created_at + timedelta(seconds=i + 1),
                }
                for i in range(n)
            ],
        )
        return str(poll.id)
