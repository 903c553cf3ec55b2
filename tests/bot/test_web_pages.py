"""The sandbox tells the truth, over real HTTP on loopback: reply verdicts, names bound to
a browser, posters, whole poll options, credits once, winners, and the demo's thread.html."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.ideas.harvest import round_clusters
from bot.operator.export import copy_videos, story_document, thread_html
from bot.platforms.local import LocalAction
from story_state.db import session_scope
from story_state.lifecycle import RoundStatus
from story_state.models import Contributor, Round, Story, Suggestion
from tests.bot.websupport import TOKEN, Follower, Site, csrf_of, lengthen_option, serve

pytestmark = pytest.mark.timeout(240)
LONG_BEAT = "The radio wakes up and calls Mara by the name of her drowned sister"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with serve(tmp_path_factory.mktemp("pages")) as running:
        yield running


def posts(site: Site) -> list[dict[str, Any]]:
    assert site.app.local is not None
    return list(site.app.local.thread()["posts"])


def suggestions_of(site: Site, handle: str) -> list[Suggestion]:
    with session_scope(site.app.factory) as session:
        return list(
            session.scalars(
                select(Suggestion)
                .join(Contributor)
                .where(Contributor.handle == handle)
                .order_by(Suggestion.id)
            )
        )


def with_cookie(site: Site, name_cookie: str, path: str, **form: str) -> httpx.Response:
    """POST as a browser whose name cookie is exactly ``name_cookie`` (a forged one)."""
    with site.client() as fresh:
        page = fresh.get("/")
        token = csrf_of(page.text)
    with site.client() as bare:  # no cookie jar of its own: only what is sent here
        return bare.post(
            path,
            data={"csrf": token, **form},
            headers={
                "Origin": site.base,
                "Accept": "application/json",
                "Cookie": f"storybot_csrf={token}; storybot_name={name_cookie}",
            },
        )


# -- what a reply is told ------------------------------------------------------------------


def test_reply_verdicts_match_what_the_harvest_decides(site: Site) -> None:
    ana, ben = Follower(site, "verdict_ana"), Follower(site, "verdict_ben")
    try:
        first = ana.post("/reply", text="The miners find a second ship under the salt")
        assert first.status_code == 200, first.text
        assert first.json()["verdict"] == "counts"
        assert "Your idea counts in the round after episode 1" in first.json()["message"]

        second = ana.post("/reply", text="The radio starts to sing")
        assert second.status_code == 200 and second.json()["verdict"] == "second"
        assert "Your first idea this round is the one that counts" in second.json()["message"]

        markup = ben.post("/reply", text="<script>alert(1)</script> open the hatch")
        assert markup.status_code == 200 and markup.json()["verdict"] == "rejected"
        assert markup.json()["message"] == "Posted, but not accepted as an idea: markup or code."
        assert "counts" not in markup.json()["message"]

        # The rejected one is not an idea, so ben's next reply is his first that counts.
        plain = ben.post("/reply", text="Ben hides the map in his boot")
        assert plain.json()["verdict"] == "counts"

        # A reply to a follower's reply is not read by the harvest at all.
        mine = [p for p in posts(site) if p["author"] == "verdict_ana"]
        nested = ben.post("/reply", text="Yes, and the ship is alive", to=mine[0]["id"])
        assert nested.status_code == 200 and nested.json()["verdict"] == "closed"
        assert "will not count" in nested.json()["message"]
    finally:
        ana.close()
        ben.close()

    site.app.runner.tick()  # the harvest: the same rules, later
    a1, a2 = suggestions_of(site, "verdict_ana")
    b1, b2 = suggestions_of(site, "verdict_ben")  # the nested reply was never harvested
    assert (b1.accepted, b1.reject_reason) == (False, "markup or code")
    assert a1.accepted and a2.accepted and b2.accepted
    with session_scope(site.app.factory) as session:
        rnd = session.scalars(select(Round).where(Round.status == RoundStatus.OPEN)).one()
        story = session.scalars(select(Story)).one()
        clusters = round_clusters(session, rnd, story.seed)
        counted = [s for c in clusters for s in c.suggestion_ids]
    assert a1.id in counted and a2.id not in counted  # one idea per person: ana's first


def test_a_too_long_reply_is_refused_whole_with_the_reason(site: Site) -> None:
    cy = Follower(site, "length_cy")
    try:
        page = cy.http.get("/").text
        assert 'maxlength="400"' in page and 'data-max="400"' in page  # moderation's limit
        text = ("salt " * 90).strip()  # 449 characters
        refused = cy.post("/reply", text=text)
        assert refused.status_code == 400
        body = refused.json()
        assert body["verdict"] == "too_long" and not body["ok"]
        assert "Not accepted: too long (449 characters; 400 max)" in body["message"]
        assert not [p for p in posts(site) if p["author"] == "length_cy"]  # nothing posted, or cut

        # Exactly the limit passes; a browser's CRLF line break counts as one character.
        edge = "a" * 200 + "\r\n" + "b" * 199
        fits = cy.post("/reply", text=edge)
        assert fits.status_code == 200 and fits.json()["verdict"] == "counts", fits.text
        assert [p["text"] for p in posts(site) if p["author"] == "length_cy"] == [
            "a" * 200 + "\n" + "b" * 199
        ]
    finally:
        cy.close()


def test_held_for_review_when_the_operator_approves_ideas(tmp_path: Path) -> None:
    with serve(tmp_path, sections={"moderation": {"approval_mode": True}}) as running:
        dee = Follower(running, "held_dee")
        try:
            held = dee.post("/reply", text="Dee opens the cargo hold")
            assert held.status_code == 200 and held.json()["verdict"] == "held"
            assert "held for review" in held.json()["message"]
            assert "counts" in held.json()["message"]  # … if the operator approves it
        finally:
            dee.close()
        running.app.runner.tick()
        (s,) = suggestions_of(running, "held_dee")
        assert s.pending and not s.accepted


# -- names -----------------------------------------------------------------------------------


@pytest.fixture
def own_site(tmp_path: Path) -> Iterator[Site]:
    """A site of its own: name changes are rate-limited per address (10 a minute)."""
    with serve(tmp_path) as running:
        yield running


def test_a_name_belongs_to_the_browser_that_claimed_it(own_site: Site) -> None:
    site = own_site
    mara, other = Follower(site, "Mara"), Follower(site)
    try:
        for attempt in ("Mara", " MARA ", "Маrа"):  # the last with Cyrillic М and а
            taken = other.post("/name", name=attempt)
            assert taken.status_code == 409, attempt
            assert "taken by another follower" in taken.json()["message"]
        refused = other.post("/reply", text="I am Mara now")
        assert refused.status_code == 400 and "display name" in refused.json()["message"]

        # The same browser keeps its name, even after switching away.
        assert mara.post("/name", name="Mara").status_code == 200
        assert mara.post("/name", name="Mara Two").status_code == 200
        assert mara.post("/name", name="Mara").status_code == 200
        assert mara.post("/reply", text="Mara seals the airlock").status_code == 200
        assert [p["text"] for p in posts(site) if p["author"] == "Mara"] == [
            "Mara seals the airlock"
        ]

        # Forged cookies: an old unsigned one, another name on Mara's cookie, a made-up one.
        real = mara.http.cookies["storybot_name"]
        _, browser, sig = real.split(".")
        ben = base64.urlsafe_b64encode(b"Ben").decode().rstrip("=")
        # One character of the signature changed (to another character: "0" would be no
        # change at all for the one signature in 64 that ends in "0").
        tampered = real[:-1] + ("1" if real.endswith("0") else "0")
        for forged in ("Mara", f"{ben}.{browser}.{sig}", tampered, "a.b.c"):
            answer = with_cookie(site, forged, "/vote", poll="1", option="1")
            assert answer.status_code == 400 and "display name" in answer.json()["message"]
        assert with_cookie(site, real, "/like", post="1").status_code == 200  # the real one works

        # A name already used in the thread (here from the command line) is taken too.
        assert site.app.local is not None
        site.app.local.act(LocalAction("cli_kim", like="1"))
        assert other.post("/name", name="cli_kim").status_code == 409
        assert other.post("/name", name="Kim").status_code == 200
    finally:
        mara.close()
        other.close()


# -- what the page shows ---------------------------------------------------------------------


def test_every_clip_has_a_poster_that_is_served(site: Site) -> None:
    with site.client() as http:
        page = http.get("/").text
        videos = re.findall(r"<video [^>]*>", page)
        posters = [re.search(r'poster="([^"]+)"', v) for v in videos]
        assert videos and all(posters), videos
        for found in posters:
            assert found is not None
            image = http.get(html.unescape(found.group(1)))
            assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
            assert image.content[:3] == b"\xff\xd8\xff"


def test_the_top_panel_names_the_newest_episode_the_poll_and_the_reply_target(
    site: Site,
) -> None:
    poll = [p for p in posts(site) if p["poll"]][-1]
    clip = [p for p in posts(site) if p["is_bot"] and p["media"]][-1]
    with site.client() as http:
        page = http.get("/").text
    now = page[page.index('id="now"') : page.index('id="thread"')]
    assert "Now: Episode 1" in now
    assert f'id="now-watch" href="#p{clip["id"]}"' in now
    assert f'id="now-vote" href="#p{poll["id"]}"' in now
    assert 'id="reply-form"' in now and f'name="to" value="{poll["id"]}"' in now
    assert f'Your reply answers <a href="#p{poll["id"]}">the poll after episode 1' in now
    with site.client() as http:
        live = http.get("/api/thread").json()["now"]
    assert live["answer"] == {
        "post": poll["id"],
        "what": "the poll after episode 1",
        "counts": True,
    }


def test_poll_buttons_show_the_whole_option(site: Site) -> None:
    label = lengthen_option(site, 3, LONG_BEAT)
    assert label != LONG_BEAT and "and" not in label.split()  # the fitted label lost words
    voter = Follower(site, "whole_label_voter")
    try:
        page = voter.http.get("/").text
        item = re.search(
            r'<li data-position="3"[^>]*>.*?<button type="submit"[^>]*>(.*?)</button>', page, re.S
        )
        assert item is not None and html.unescape(item.group(1)) == LONG_BEAT
        poll = [p for p in posts(site) if p["poll"]][-1]
        vote = voter.post("/vote", poll=poll["id"], option="3")
        assert vote.status_code == 200 and vote.json()["message"] == f"Vote counted: {LONG_BEAT}."
    finally:
        voter.close()


def test_the_dashboard_title_is_not_doubled_and_log_out_needs_a_login(site: Site) -> None:
    with site.client() as http:
        page = http.get("/admin", headers={"Authorization": f"Bearer {TOKEN}"}).text
    summaries = re.findall(r"<summary>(.*?)</summary>", page)
    episode = [s for s in summaries if s.startswith("Episode 1")]
    assert episode and not re.search(r"Episode 1: Episode 1", page), episode
    assert "Log out" not in page  # a bearer token is not a session to log out of
    operator = Follower(site)
    try:
        assert operator.post("/admin/login", json=False, token=TOKEN).status_code == 303
        assert "Log out" in operator.http.get("/admin").text
        assert "Log out" in operator.http.get("/admin/branches").text
    finally:
        operator.close()


def test_no_log_out_where_no_login_exists(tmp_path: Path) -> None:
    with serve(tmp_path, token=None, first_tick=False) as running, running.client() as http:
        page = http.get("/admin")
        assert page.status_code == 200 and "Log out" not in page.text
        assert "Log out" not in http.get("/admin/bible").text


# -- after a round: credits once, the winner marked, the demo's thread.html -----------------


def test_after_a_round_credits_once_winner_marked_and_exported(tmp_path: Path) -> None:
    with serve(tmp_path) as running:
        ana, ben = Follower(running, "credit_ana"), Follower(running, "credit_ben")
        try:
            assert ana.post("/reply", text="A stowaway hides in the ore hopper").status_code == 200
            poll = [p for p in posts(running) if p["poll"]][-1]
            assert ben.post("/vote", poll=poll["id"], option="2").status_code == 200
        finally:
            ana.close()
            ben.close()
        running.app.runner.tick()  # harvest
        running.app.runner.close_round_now()
        running.app.runner.tick()  # episode 2, crediting ana
        with running.client() as http:
            page = http.get("/").text
        second = [p for p in posts(running) if p["is_bot"] and p["media"]][-1]
        article = page[page.index(f'id="p{second["id"]}"') :]
        article = article[: article.index("</article>")]
        assert "credit_ana" in article
        shown = article[article.index("</figure>") :]  # the clip's description aside
        assert shown.count("Story ideas from") == 1
        closed = page[page.index(f'id="p{poll["id"]}"') :]
        closed = closed[: closed.index("</ol>")]
        assert re.search(r'<li data-position="2" class="winner">', closed)
        assert closed.count('class="winner"') == 1

        out = tmp_path / "demo"
        out.mkdir()
        with session_scope(running.app.factory) as session:
            story = session.scalars(select(Story)).one()
            doc = story_document(session, story, running.app.runner.media_root)
        sources = {e["source_video"]: e["video"] for e in doc["episodes"]}
        copy_videos(doc, out)
        assert running.app.local is not None
        exported = thread_html(story.title, running.app.local.thread(), sources)
    for e in doc["episodes"]:
        assert e["poster"] == f"episode-{e['number']:03d}.jpg"
        assert (out / e["poster"]).read_bytes()[:3] == b"\xff\xd8\xff"
        assert f'src="{e["video"]}" poster="{e["poster"]}"' in exported
    assert exported.count('<li class="winner">') == 1
    assert "★ chosen" in exported
