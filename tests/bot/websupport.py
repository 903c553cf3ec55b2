"""A real storybot web server on loopback, and a follower with a browser-like session."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from bot.app import App, build_app
from bot.config import parse_config
from bot.web import WebServer, start_server
from story_state import engine
from story_state.db import session_scope
from story_state.lifecycle import RoundStatus
from story_state.models import LocalPost, Post, Round
from tests.bot.conftest import small_config

TOKEN_ENV = "STORYBOT_ADMIN_TOKEN"
TOKEN = "operator-token-for-tests-0123456789"


@dataclass
class Site:
    app: App
    server: WebServer
    base: str
    root: Path  # the temp folder: config.toml, bot.db and media/ live here

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=30, **kwargs)


@contextmanager
def serve(
    root: Path,
    token: str | None = TOKEN,
    first_tick: bool = True,
    sections: dict[str, dict[str, Any]] | None = None,
    **web: Any,
) -> Iterator[Site]:
    """Build the app from a small real config, post episode 1, serve it on 127.0.0.1:0.

    ``sections`` adds config tables (``{"moderation": {"approval_mode": True}}``)."""
    data = small_config(root, f"sqlite:///{root / 'bot.db'}")
    data["web"].update(web)
    for name, values in (sections or {}).items():
        data[name] = {**data.get(name, {}), **values}
    config_path = root / "config.toml"
    config_path.write_text("# a file next to the media root that must never be served\n")
    saved = os.environ.get(TOKEN_ENV)
    if token is None:
        os.environ.pop(TOKEN_ENV, None)
    else:
        os.environ[TOKEN_ENV] = token
    try:
        app = build_app(parse_config(data, source=config_path))
        try:
            if first_tick:
                app.runner.tick()
            server = start_server(app)
        except BaseException:
            app.close()
            raise
    finally:
        if saved is None:
            os.environ.pop(TOKEN_ENV, None)
        else:
            os.environ[TOKEN_ENV] = saved
    try:
        yield Site(app, server, f"http://127.0.0.1:{server.port}", root)
    finally:
        server.stop()
        app.close()


CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


class Follower:
    """One visitor: cookies kept like a browser, the page's token, same-origin POSTs."""

    def __init__(self, site: Site, name: str | None = None) -> None:
        self.site = site
        self.http = site.client(headers={"Origin": site.base})
        self.token = csrf_of(self.http.get("/").text)
        if name is not None:
            response = self.post("/name", name=name)
            assert response.status_code == 200, response.text

    def post(self, path: str, json: bool = True, **form: str) -> httpx.Response:
        headers = {"Accept": "application/json"} if json else {}
        return self.http.post(path, data={"csrf": self.token, **form}, headers=headers)

    def close(self) -> None:
        self.http.close()


def lengthen_option(site: Site, position: int, beat: str) -> str:
    """Make option ``position`` of the open round a long beat, its poll label fitted to the
    sandbox's limit as the runner fits it (dropping words); returns that label."""
    assert site.app.local is not None
    label = engine.fit_label(beat, site.app.local.limits().max_option_chars)
    with session_scope(site.app.factory) as session:
        rnd = session.scalars(select(Round).where(Round.status == RoundStatus.OPEN)).one()
        option = rnd.options[position - 1]
        option.beat, option.label = beat, label
        remote = session.scalars(
            select(Post.remote_id).where(
                Post.episode_id == rnd.episode_id, Post.platform == "local", Post.kind == "poll"
            )
        ).one()
        assert remote is not None
        poll = session.get(LocalPost, int(remote))
        assert poll is not None and poll.poll_options is not None
        poll.poll_options = [
            label if i == position else text for i, text in enumerate(poll.poll_options, 1)
        ]
    return label
