"""The web server over real HTTP on loopback: sandbox, safety, dashboard, media, health."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.web import start_server
from story_state.db import session_scope
from story_state.errors import ConfigError
from story_state.lifecycle import EpisodeState, StoryStatus
from story_state.models import Contributor, Episode, Story, Suggestion
from tests.bot.websupport import TOKEN, Follower, Site, serve

pytestmark = pytest.mark.timeout(180)
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with serve(tmp_path_factory.mktemp("web")) as running:
        yield running


@pytest.fixture
def follower(site: Site, request: pytest.FixtureRequest) -> Iterator[Follower]:
    name = request.node.name.removeprefix("test_")[:40]
    visitor = Follower(site, name)
    yield visitor
    visitor.close()


def posts(site: Site) -> list[dict[str, Any]]:
    assert site.app.local is not None
    return list(site.app.local.thread()["posts"])


def poll_post(site: Site) -> dict[str, Any]:
    return [p for p in posts(site) if p["poll"]][-1]


def suggestions_by(site: Site, handle: str) -> list[Suggestion]:
    with session_scope(site.app.factory) as session:
        return list(
            session.scalars(
                select(Suggestion).join(Contributor).where(Contributor.handle == handle)
            )
        )


def test_thread_page_shows_the_clip_the_poll_and_safety_headers(site: Site) -> None:
    with site.client() as http:
        page = http.get("/")
    assert page.status_code == 200
    clip = posts(site)[0]
    assert (
        clip["media"] and '<video controls playsinline preload="metadata" src="/media/' in page.text
    )
    assert "Description of the clip" in page.text
    for option in poll_post(site)["poll"]["options"]:
        assert option["label"] in page.text
    assert 'action="/vote"' in page.text and "Voting closes" in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "media-src 'self'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"
    cookie = page.headers["set-cookie"].lower()
    assert "storybot_csrf=" in cookie and "httponly" in cookie and "samesite=lax" in cookie


def test_reply_vote_and_like_go_through_the_local_platform(site: Site, follower: Follower) -> None:
    name = "reply_vote_and_like_go_through_the_local_platform"[:40]
    reply = follower.post("/reply", text="The miners rebel")
    assert reply.status_code == 200 and reply.json()["ok"], reply.text
    mine = [p for p in posts(site) if p["author"] == name]
    assert [p["text"] for p in mine] == ["The miners rebel"]
    assert mine[0]["in_reply_to"] == poll_post(site)["id"]  # the open round's poll

    poll = poll_post(site)
    vote = follower.post("/vote", poll=poll["id"], option="2")
    assert vote.status_code == 200, vote.text
    assert vote.json()["message"] == f"Vote counted: {poll['poll']['options'][1]['label']}."
    assert poll_post(site)["poll"]["options"][1]["votes"] >= 1
    again = follower.post("/vote", poll=poll["id"], option="1")
    assert again.status_code == 400 and "already voted" in again.json()["message"]

    like = follower.post("/like", post=mine[0]["id"])
    assert like.status_code == 200
    assert [p["likes"] for p in posts(site) if p["id"] == mine[0]["id"]] == [1]
    twice = follower.post("/like", post=mine[0]["id"])
    assert twice.status_code == 400 and "already liked" in twice.json()["message"]

    # Without the page's script: a plain form post comes back to the page with a note.
    plain = follower.post("/like", json=False, post="99999")
    assert plain.status_code == 303 and plain.headers["location"] == "/"
    assert "there is no post 99999" in follower.http.get("/").text


def test_actions_need_a_name_and_a_valid_one(site: Site) -> None:
    anon = Follower(site)
    try:
        response = anon.post("/reply", text="hello")
        assert response.status_code == 400 and "display name" in response.json()["message"]
        assert anon.post("/name", name="storybot").status_code == 400  # the bot's own name
        assert anon.post("/name", name="x" * 65).status_code == 400
        assert anon.post("/name", name="two\nlines").status_code == 400
    finally:
        anon.close()


def test_missing_or_wrong_csrf_or_origin_is_refused(site: Site, follower: Follower) -> None:
    before = len(posts(site))
    http = follower.http
    assert http.post("/reply", data={"text": "no token"}).status_code == 403
    assert http.post("/reply", data={"text": "bad", "csrf": "0" * 64}).status_code == 403
    evil = {"Origin": "http://evil.example"}
    forged = http.post("/reply", data={"text": "x", "csrf": follower.token}, headers=evil)
    assert forged.status_code == 403
    bare = http.build_request("POST", "/reply", data={"text": "x", "csrf": follower.token})
    del bare.headers["Origin"]
    assert http.send(bare).status_code == 403  # neither Origin nor Referer
    assert len(posts(site)) == before


def test_hostile_reply_is_shown_escaped(site: Site, follower: Follower) -> None:
    assert follower.post("/reply", text=HOSTILE).status_code == 200
    page = follower.http.get("/").text
    assert HOSTILE not in page and "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    live = follower.http.get("/api/thread").json()
    html = "".join(p["html"] for p in live["posts"])
    assert "<script>alert" not in html and "&lt;img src=x" in html
    site.app.runner.tick()  # harvest: the dashboard shows the raw reply too
    admin = follower.http.get("/admin", headers={"Authorization": f"Bearer {TOKEN}"}).text
    assert "<script>alert" not in admin and "&lt;script&gt;alert(1)" in admin


def test_admin_needs_the_token(site: Site) -> None:
    with site.client() as http:
        page = http.get("/admin")
        assert page.status_code == 401 and 'action="/admin/login"' in page.text
        assert page.headers["www-authenticate"].startswith("Bearer")
        assert http.get("/admin", headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = http.get("/admin", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and "Moderation queue" in ok.text
        assert ok.headers["cache-control"] == "no-store"
    operator = Follower(site)
    try:
        assert operator.post("/admin/login", json=False, token="wrong").status_code == 401
        login = operator.post("/admin/login", json=False, token=TOKEN)
        assert login.status_code == 303
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and TOKEN not in cookie
        assert operator.http.get("/admin").status_code == 200
        operator.post("/admin/logout", json=False)
        assert operator.http.get("/admin").status_code == 401
    finally:
        operator.close()


def test_operator_moderates_and_blocks(site: Site) -> None:
    ids = {}
    for handle, text in [("mod_cy", "A stowaway is found"), ("mod_dara", "The radio wakes up")]:
        visitor = Follower(site, handle)
        assert visitor.post("/reply", text=text).status_code == 200
        visitor.close()
    site.app.runner.tick()  # the runner harvests the replies into suggestions
    ids = {h: suggestions_by(site, h)[0].id for h in ("mod_cy", "mod_dara")}
    operator = Follower(site)
    operator.http.headers["Authorization"] = f"Bearer {TOKEN}"
    try:
        page = operator.http.get("/admin").text
        assert "A stowaway is found" in page and "Votes per option" in page and "<svg" in page

        assert (
            operator.post(
                f"/admin/suggestions/{ids['mod_cy']}/reject", reason="off topic"
            ).status_code
            == 200
        )
        (s,) = suggestions_by(site, "mod_cy")
        assert (s.accepted, s.reject_reason) == (False, "off topic")
        assert operator.post(f"/admin/suggestions/{ids['mod_cy']}/approve").status_code == 200
        (s,) = suggestions_by(site, "mod_cy")
        assert (s.accepted, s.reject_reason) == (True, None)

        author = suggestions_by(site, "mod_dara")[0].contributor_id
        assert operator.post(f"/admin/contributors/{author}/block").status_code == 200
        (s,) = suggestions_by(site, "mod_dara")
        assert (s.accepted, s.reject_reason) == (False, "blocked account")
        refused = operator.post(f"/admin/suggestions/{s.id}/approve")
        assert refused.status_code == 409 and "unblock" in refused.json()["message"]
        assert operator.post(f"/admin/contributors/{author}/unblock").status_code == 200
        (s,) = suggestions_by(site, "mod_dara")
        assert s.accepted and s.reject_reason is None

        assert operator.post("/admin/suggestions/99999/approve").status_code == 409
        # The bearer token does not excuse a form from its CSRF token.
        bare = operator.http.post(f"/admin/suggestions/{s.id}/reject", data={"reason": "x"})
        assert bare.status_code == 403

        assert operator.post("/admin/story/pause").status_code == 200
        with session_scope(site.app.factory) as session:
            assert session.scalars(select(Story.status)).one() is StoryStatus.PAUSED
        assert operator.post("/admin/story/resume").status_code == 200
        with session_scope(site.app.factory) as session:
            assert session.scalars(select(Story.status)).one() is StoryStatus.ACTIVE
    finally:
        operator.close()


def test_replies_are_rate_limited_per_name(site: Site, follower: Follower) -> None:
    for i in range(5):
        assert follower.post("/reply", text=f"idea {i}").status_code == 200
    sixth = follower.post("/reply", text="idea 6")
    assert sixth.status_code == 429
    assert "5 replies a minute" in sixth.json()["message"]
    assert int(sixth.headers["retry-after"]) >= 1


def test_clip_is_served_with_ranges(site: Site) -> None:
    url = posts(site)[0]["media"][0]["path"]
    rel = Path(url).relative_to(site.root / "media").as_posix()
    with site.client() as http:
        part = http.get(f"/media/{rel}", headers={"Range": "bytes=0-99"})
        size = (site.root / "media" / rel).stat().st_size
        assert part.status_code == 206 and len(part.content) == 100
        assert part.headers["content-range"] == f"bytes 0-99/{size}"
        assert part.headers["content-type"] == "video/mp4"
        assert http.get(f"/media/{rel}").headers["accept-ranges"] == "bytes"


@pytest.mark.parametrize(
    "path",
    [
        "/media/../config.toml",
        "/media/..%2Fconfig.toml",
        "/media/%2e%2e/config.toml",
        "/media/%2e%2e%2fconfig.toml",
        "/media/%252e%252e%252fconfig.toml",
        "/media/salt-flats/../../config.toml",
        "/media//etc/passwd",
        "/media/salt-flats/episode-001/still.png",  # rendered, but never posted
        "/media/salt-flats/episode-001/",
    ],
)
def test_media_outside_what_was_posted_is_404(site: Site, path: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", site.server.port, timeout=10)
    try:
        conn.request("GET", path)  # sent as written: no client-side path normalisation
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 404
    assert b"must never be served" not in body


def test_healthz_and_metrics(site: Site) -> None:
    with site.client() as http:
        health = http.get("/healthz")
        assert health.status_code == 200 and health.json()["database"] == "ok"
        metrics = http.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    for name in (
        "storybot_episodes_posted_total 1",
        "storybot_rounds_open 1",
        "storybot_clip_seconds_total ",
        "# TYPE storybot_platform_errors_total",
        'storybot_suggestions_total{accepted="true"}',
        'storybot_suggestions_total{accepted="false"}',
    ):
        assert name in metrics.text


def test_public_host_without_token_refuses_to_start(tmp_path: Path) -> None:
    with (
        pytest.raises(ConfigError, match="STORYBOT_ADMIN_TOKEN"),
        serve(tmp_path, token=None, first_tick=False, host="0.0.0.0"),
    ):
        pass


def test_without_token_the_dashboard_is_for_this_machine_only(tmp_path: Path) -> None:
    with serve(tmp_path, token=None, first_tick=False) as running, running.client() as http:
        assert http.get("/").status_code == 200
        assert "first episode is being made" in http.get("/").text
        assert http.get("/admin").status_code == 200
        rebound = http.get("/admin", headers={"Host": f"evil.example:{running.server.port}"})
        assert rebound.status_code == 403


def test_close_round_now_from_the_dashboard(tmp_path: Path) -> None:
    with serve(tmp_path) as running:
        operator = Follower(running)
        operator.http.headers["Authorization"] = f"Bearer {TOKEN}"
        try:
            closed = operator.post("/admin/story/close")
            assert closed.status_code == 200 and "closed round 1" in closed.json()["message"]
            with session_scope(running.app.factory) as session:
                states = list(session.scalars(select(Episode.state).order_by(Episode.id)))
            assert states == [EpisodeState.CLOSED, EpisodeState.PLANNED]
            again = operator.post("/admin/story/close")
            assert again.status_code == 409 and "no open round" in again.json()["message"]
        finally:
            operator.close()


def test_start_server_keeps_its_api(tmp_path: Path) -> None:
    with serve(tmp_path, first_tick=False) as running:
        assert running.server.port > 0
        second = start_server(running.app)
        try:
            assert second.port not in (0, running.server.port)
        finally:
            second.stop()
