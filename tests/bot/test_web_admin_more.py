"""The operator's story tools over real HTTP on loopback: bible, branch tree, Community's Cut."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.loop.runner import MAIN
from story_state.db import session_scope
from story_state.models import Episode, LoreEntry, OperatorAction
from tests.bot.websupport import TOKEN, Follower, Site, serve

pytestmark = pytest.mark.timeout(300)
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with serve(tmp_path_factory.mktemp("web-more")) as running:
        yield running


@pytest.fixture
def operator(site: Site) -> Iterator[Follower]:
    visitor = Follower(site)
    visitor.http.headers["Authorization"] = f"Bearer {TOKEN}"
    yield visitor
    visitor.close()


def lore(site: Site, name: str) -> LoreEntry:
    with session_scope(site.app.factory) as session:
        entry = session.scalars(select(LoreEntry).where(LoreEntry.name == name)).one()
        session.expunge(entry)
        return entry


def proposed(site: Site, name: str) -> int:
    story_id = site.app.runner.ensure_story()
    with session_scope(site.app.factory) as session:
        entry = LoreEntry(
            story_id=story_id,
            kind="character",
            name=name,
            description="a proposed one",
            visual="",
            keywords=[],
            contradictions=[],
            status="proposed",
        )
        session.add(entry)
        session.flush()
        return entry.id


def test_pages_need_the_token_and_are_linked(site: Site, operator: Follower) -> None:
    with site.client() as http:
        for path in ("/admin/bible", "/admin/branches", "/admin/cut"):
            assert http.get(path).status_code == 401
    page = operator.http.get("/admin").text
    for link in ('href="/admin/bible"', 'href="/admin/branches"', 'action="/admin/cut"'):
        assert link in page


def test_bible_accept_reject_edit_add(site: Site, operator: Follower) -> None:
    first, second = proposed(site, "Proposed Pia"), proposed(site, "Proposed Quin")
    page = operator.http.get("/admin/bible")
    assert page.status_code == 200 and "Proposed Pia" in page.text
    assert page.headers["cache-control"] == "no-store"

    assert operator.post(f"/admin/bible/{first}/accept").status_code == 200
    assert lore(site, "Proposed Pia").status == "canon"
    assert operator.post(f"/admin/bible/{second}/reject").status_code == 200
    assert lore(site, "Proposed Quin").status == "rejected"

    edited = operator.post(f"/admin/bible/{first}/edit", description=HOSTILE, visual="red coat")
    assert edited.status_code == 200
    entry = lore(site, "Proposed Pia")
    assert (entry.description, entry.visual) == (HOSTILE, "red coat")

    added = operator.post(
        "/admin/bible/add", kind="place", name=f"Dock {HOSTILE}", description="wet", visual=""
    )
    assert added.status_code == 200, added.text
    entry = lore(site, f"Dock {HOSTILE}")
    assert (entry.kind, entry.status, entry.description) == ("place", "canon", "wet")

    html = operator.http.get("/admin/bible").text
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)" in html

    # Refusals are messages, never a server error.
    again = operator.post("/admin/bible/add", kind="place", name=f"Dock {HOSTILE}", description="x")
    assert again.status_code == 409 and "already exists" in again.json()["message"]
    for form in (
        {"kind": "spaceship", "name": "X", "description": "y"},
        {"kind": "fact", "name": "  ", "description": "y"},
        {"kind": "fact", "name": "Z", "description": ""},
        {"kind": "fact", "name": "Z", "description": "y" * 5000},
    ):
        refused = operator.http.post(
            "/admin/bible/add",
            data={"csrf": operator.token, **form},
            headers={"Accept": "application/json"},
        )
        assert refused.status_code == 409 and refused.json()["message"]
    assert operator.post("/admin/bible/99999/accept").status_code == 409
    assert operator.post(f"/admin/bible/{first}/edit", description=" ").status_code == 409
    assert operator.post(f"/admin/bible/{first}/frobnicate").status_code == 404
    # A plain form post goes back to the page with the note.
    plain = operator.post("/admin/bible/99999/accept", json=False)
    assert plain.status_code == 303 and plain.headers["location"].startswith("/admin/bible")


def test_fork_from_the_branch_tree(site: Site, operator: Follower) -> None:
    page = operator.http.get("/admin/branches").text
    assert "Main line" in page and "Fork from here" not in page
    site.app.runner.close_round_now()
    page = operator.http.get("/admin/branches").text
    assert "Fork from here" in page
    with session_scope(site.app.factory) as session:
        first = session.scalars(
            select(Episode).where(Episode.branch == MAIN, Episode.number == 1)
        ).one()
        assert first.round is not None
        winner = first.round.winner_position
        option = next(o.position for o in first.round.options if o.position != winner)
    made = operator.post("/admin/branches/fork", number="1", option=str(option), branch="whatif")
    assert made.status_code == 200, made.text
    with session_scope(site.app.factory) as session:
        forked = session.scalars(select(Episode).where(Episode.branch == "whatif")).one()
        assert forked.number == 2
    page = operator.http.get("/admin/branches").text
    assert "Branch whatif" in page

    # StateError and bad input come back as messages.
    taken = operator.post("/admin/branches/fork", number="1", option=str(option), branch=MAIN)
    assert taken.status_code == 409 and "branch" in taken.json()["message"]
    missing = operator.post("/admin/branches/fork", number="99", option="1", branch="nope")
    assert missing.status_code == 409 and "no episode 99" in missing.json()["message"]
    junk = operator.post("/admin/branches/fork", number="x", option="1", branch="nope")
    assert junk.status_code == 409


def test_community_cut_renders_in_the_background(site: Site, operator: Follower) -> None:
    started = operator.post("/admin/cut", branch=MAIN)
    assert started.status_code == 200 and "Started" in started.json()["message"]
    second = operator.post("/admin/cut", branch=MAIN)
    state = operator.http.get("/admin/cut").json()
    assert state["state"] in ("running", "done")
    if state["state"] == "running":
        assert "already running" in second.json()["message"]
        assert "Rendering the cut" in operator.http.get("/admin").text
    deadline = time.monotonic() + 120
    while state["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
        state = operator.http.get("/admin/cut").json()
    assert state["state"] == "done", state
    out = Path(state["path"])
    assert out.is_file() and out.parent == site.app.runner.media_root / "cuts"
    assert out.name.startswith(f"{site.app.config.story.slug}-main-")
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_chapters", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(probe.stdout)["chapters"]
    page = operator.http.get("/admin").text
    assert f'href="/admin/cuts/{out.name}"' in page
    served = operator.http.get(f"/admin/cuts/{out.name}")
    assert served.status_code == 200 and served.content == out.read_bytes()
    with site.client() as http:
        assert http.get(f"/admin/cuts/{out.name}").status_code == 401
    assert operator.http.get("/admin/cuts/..%2Fconfig.toml").status_code == 404
    assert operator.http.get("/admin/cuts/nothing.mp4").status_code == 404

    failed = operator.post("/admin/cut", branch="no-such-branch")
    assert failed.status_code == 200
    deadline = time.monotonic() + 30
    state = operator.http.get("/admin/cut").json()
    while state["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
        state = operator.http.get("/admin/cut").json()
    assert state["state"] == "failed" and "no episodes" in state["message"]
    assert "no episodes" in operator.http.get("/admin").text


@pytest.mark.parametrize(
    "path",
    [
        "/admin/bible/1/accept",
        "/admin/bible/1/reject",
        "/admin/bible/1/edit",
        "/admin/bible/add",
        "/admin/branches/fork",
        "/admin/cut",
    ],
)
def test_new_posts_need_the_csrf_token(site: Site, operator: Follower, path: str) -> None:
    form = {"kind": "fact", "name": "csrf", "description": "d", "branch": "b", "number": "1"}
    missing = operator.http.post(path, data=form)
    assert missing.status_code == 403
    wrong = operator.http.post(path, data={**form, "csrf": "0" * 64})
    assert wrong.status_code == 403
    cross = operator.http.post(
        path,
        data={**form, "csrf": operator.token},
        headers={"Origin": "http://evil.example"},
    )
    assert cross.status_code == 403


def test_dashboard_actions_are_kept_in_the_operator_log(site: Site, operator: Follower) -> None:
    before = _logged(site)
    assert operator.post("/admin/story/pause").status_code == 200
    assert operator.post("/admin/story/resume").status_code == 200
    refused = operator.post("/admin/branches/fork", number="99", option="1", branch="nope")
    assert refused.status_code == 409
    added = _logged(site)[len(before) :]
    assert [(a.source, a.action, a.ok) for a in added] == [
        ("dashboard", "story/pause", True),
        ("dashboard", "story/resume", True),
        ("dashboard", "branches/fork", False),
    ]
    assert added[0].actor.startswith("127.0.0.1") and "no episode 99" in added[2].outcome
    page = operator.http.get("/admin").text
    assert "Operator log" in page and "branches/fork" in page and "no episode 99" in page


def _logged(site: Site) -> list[OperatorAction]:
    with session_scope(site.app.factory) as session:
        rows = list(session.scalars(select(OperatorAction).order_by(OperatorAction.id)))
        session.expunge_all()
        return rows
