"""The dashboard's doors over real HTTP: no token only for this machine and never through a
proxy; login cookies that expire and die with the token; branch names that cannot become
paths out of the media root."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.web.auth import ADMIN_COOKIE, SESSION_SECONDS, AdminAuth
from story_state.branches import check_branch, inside
from story_state.db import session_scope
from story_state.errors import StateError
from story_state.models import Episode, LocalPost
from tests.bot.websupport import TOKEN, TOKEN_ENV, Follower, Site, serve

pytestmark = pytest.mark.timeout(300)

PROXY = [
    {"X-Forwarded-For": "203.0.113.7"},
    {"X-Forwarded-Host": "storybot.example"},
    {"X-Forwarded-Proto": "https"},
    {"Forwarded": "for=203.0.113.7;proto=https"},
    {"X-Forwarded-Port": "443"},
]


# -- no token: this machine only, and never through a proxy ------------------------------


def test_without_a_token_a_proxied_request_is_refused(tmp_path: Path) -> None:
    with serve(tmp_path, token=None, first_tick=False) as site, site.client() as http:
        assert http.get("/admin").status_code == 200  # straight from this machine
        for headers in PROXY:
            refused = http.get("/admin", headers=headers)
            assert refused.status_code == 403, headers
            assert "proxy" in refused.text and TOKEN_ENV in refused.text
            assert http.get("/admin/branches", headers=headers).status_code == 403
        # The sandbox itself does not care who forwarded the request.
        assert http.get("/", headers=PROXY[0]).status_code == 200


def test_with_a_token_a_proxied_request_needs_it(tmp_path: Path) -> None:
    with serve(tmp_path, first_tick=False) as site, site.client() as http:
        for headers in PROXY:
            assert http.get("/admin", headers=headers).status_code == 401
            bearer = {**headers, "Authorization": f"Bearer {TOKEN}"}
            assert http.get("/admin", headers=bearer).status_code == 200


# -- login cookies ------------------------------------------------------------------------


def login(site: Site) -> tuple[Follower, str]:
    operator = Follower(site)
    response = operator.post("/admin/login", json=False, token=TOKEN)
    assert response.status_code == 303
    cookie = operator.http.cookies.get(ADMIN_COOKIE)
    assert cookie is not None
    return operator, cookie


def test_the_login_cookie_is_signed_expires_and_holds_no_token(tmp_path: Path) -> None:
    with serve(tmp_path, first_tick=False) as site:
        operator, cookie = login(site)
        try:
            header = operator.post("/admin/login", json=False, token=TOKEN).headers["set-cookie"]
            assert f"Max-Age={SESSION_SECONDS}" in header and SESSION_SECONDS == 12 * 3600
            assert TOKEN not in cookie and TOKEN not in header
            assert operator.http.get("/admin").status_code == 200
        finally:
            operator.close()

        auth = AdminAuth(TOKEN, TOKEN_ENV, True)
        now = int(auth.clock())
        version, issued, fingerprint, signature = cookie.split(".")
        cases: dict[str, tuple[str, int]] = {
            "fresh": (auth.session_cookie(now - 60), 200),
            "nearly 12 h old": (auth.session_cookie(now - SESSION_SECONDS + 120), 200),
            "over 12 h old": (auth.session_cookie(now - SESSION_SECONDS - 1), 401),
            "from the future": (auth.session_cookie(now + 3600), 401),
            "issued moved": (f"{version}.{int(issued) + 1}.{fingerprint}.{signature}", 401),
            "signature changed": (f"{version}.{issued}.{fingerprint}.{'0' * 64}", 401),
            "old format": (signature, 401),
            "junk": ("v2.x.y.z", 401),
        }
        with site.client() as http:
            for what, (value, status) in cases.items():
                http.cookies.set(ADMIN_COOKIE, value, path="/admin")
                assert http.get("/admin").status_code == status, what
                http.cookies.clear()


def test_a_new_token_revokes_every_cookie(tmp_path: Path) -> None:
    with serve(tmp_path, first_tick=False) as site:
        operator, cookie = login(site)
        operator.close()
    saved = os.environ.get(TOKEN_ENV)
    other = "another-operator-token-0123456789"
    with serve(tmp_path, token=other, first_tick=False) as site, site.client() as http:
        http.cookies.set(ADMIN_COOKIE, cookie, path="/admin")
        assert http.get("/admin").status_code == 401
        http.cookies.clear()
        assert http.get("/admin", headers={"Authorization": f"Bearer {other}"}).status_code == 200
    assert os.environ.get(TOKEN_ENV) == saved
    # And back to the first token: a cookie issued under it works again until it expires.
    with serve(tmp_path, first_tick=False) as site, site.client() as http:
        http.cookies.set(ADMIN_COOKIE, cookie, path="/admin")
        assert http.get("/admin").status_code == 200


def test_the_cookie_is_bound_to_the_token() -> None:
    one, two = AdminAuth("a" * 32, TOKEN_ENV, True), AdminAuth("b" * 32, TOKEN_ENV, True)
    assert one.fingerprint != two.fingerprint and "a" * 32 not in one.session_cookie()
    forged = one.session_cookie().replace(one.fingerprint, two.fingerprint)
    request: Any = SimpleNamespace(cookies={ADMIN_COOKIE: forged})
    assert not two.logged_in(request) and not one.logged_in(request)
    request.cookies[ADMIN_COOKIE] = one.session_cookie()
    assert one.logged_in(request) and not two.logged_in(request)
    assert not AdminAuth("", TOKEN_ENV, True).logged_in(request)


# -- branch names and media paths ---------------------------------------------------------

BAD_BRANCHES = [
    "",
    "../../etc",
    "what if",
    "What-If",
    "a/b",
    "a\\b",
    ".",
    "x" * 41,
    "ünïcode",
    "tab\there",
    "nul\x00",
]


@pytest.mark.parametrize("name", ["main", "what-if", "b", "x" * 40, "2nd-try", "-"])
def test_good_branch_names(name: str) -> None:
    assert check_branch(name) == name


@pytest.mark.parametrize("name", BAD_BRANCHES)
def test_bad_branch_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(StateError, match=r"1–40 characters from a–z, 0–9 and '-'"):
        check_branch(name)


def test_main_is_not_a_new_branch() -> None:
    with pytest.raises(StateError, match="other than 'main'"):
        check_branch("main", new=True)


def test_inside_follows_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "media"
    (root / "story").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("no")
    (root / "story" / "link").symlink_to(tmp_path / "secret.txt")
    assert inside(root, root / "story" / "ok.mp4") == root / "story" / "ok.mp4"
    for escaping in (root / ".." / "secret.txt", root / "story" / "link", Path("/etc/passwd")):
        with pytest.raises(StateError, match="outside the media root"):
            inside(root, escaping)


@pytest.fixture
def operator_site(tmp_path: Path) -> Iterator[tuple[Site, Follower]]:
    with serve(tmp_path) as site:
        site.app.runner.close_round_now()
        operator = Follower(site)
        operator.http.headers["Authorization"] = f"Bearer {TOKEN}"
        try:
            yield site, operator
        finally:
            operator.close()


def test_the_dashboard_refuses_bad_branch_names(operator_site: tuple[Site, Follower]) -> None:
    site, operator = operator_site
    with session_scope(site.app.factory) as session:
        first = session.scalars(select(Episode).where(Episode.number == 1)).one()
        assert first.round is not None
        option = next(
            o.position for o in first.round.options if o.position != first.round.winner_position
        )
    before = list((site.root / "media").rglob("*"))
    for name in ["../../etc", "What If", "x" * 41, "a/b"]:
        refused = operator.post("/admin/branches/fork", number="1", option=str(option), branch=name)
        assert refused.status_code == 409, name
        assert "1–40 characters from a–z, 0–9 and '-'" in refused.json()["message"]
        cut = operator.post("/admin/cut", branch=name)
        assert cut.status_code == 409 and "not allowed" in cut.json()["message"]
    with session_scope(site.app.factory) as session:
        assert session.scalar(select(func.count(Episode.id))) == 2  # episode 1 and main's 2
    assert list((site.root / "media").rglob("*")) == before
    made = operator.post("/admin/branches/fork", number="1", option=str(option), branch="what-if")
    assert made.status_code == 200, made.text
    # The runner, which the CLI's `storybot fork` calls too, refuses the same names.
    for name in ["../../etc", "UPPER", "x" * 41]:
        with pytest.raises(StateError, match="not allowed"):
            site.app.runner.fork(1, option, name)


def test_a_stored_branch_that_escapes_is_never_written(tmp_path: Path) -> None:
    with serve(tmp_path, first_tick=False) as site:
        story = SimpleNamespace(slug="salt-flats")
        good: Any = SimpleNamespace(story=story, branch="what-if", number=2)
        out = site.app.runner._episode_dir(good)
        assert out == site.app.runner.media_root / "salt-flats" / "what-if" / "episode-002"
        # A name from before the rule (or edited into the database) that climbs out.
        bad: Any = SimpleNamespace(story=story, branch="../../../elsewhere", number=2)
        with pytest.raises(StateError, match="outside the media root"):
            site.app.runner._episode_dir(bad)


def test_media_through_an_escaping_symlink_is_404(tmp_path: Path) -> None:
    with serve(tmp_path) as site:
        with session_scope(site.app.factory) as session:
            clip = session.scalars(
                select(LocalPost).where(LocalPost.is_bot.is_(True)).order_by(LocalPost.id)
            ).first()
            assert clip is not None and clip.media
            real = Path(clip.media[0]["path"])
            link = real.parent / "escape.mp4"
            link.symlink_to(tmp_path / "config.toml")
            clip.media = [*clip.media, {"path": str(link), "alt_text": "x"}]
        rel = real.relative_to(site.root / "media").parent.as_posix()
        with site.client() as http:
            assert http.get(f"/media/{rel}/{real.name}").status_code == 200
            escaped = http.get(f"/media/{rel}/escape.mp4")
            assert escaped.status_code == 404 and b"never be served" not in escaped.content
