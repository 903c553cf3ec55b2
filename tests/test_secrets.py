"""Secrets stay secret: known fake token values must appear nowhere a story leaves traces.

Every secret the config can name is set to a value containing one canary; a whole story runs
through the real `storybot` command with debug logging, while a fake OpenAI endpoint echoes
the API key back in its error (as compatible servers do). Then the logs, every database
table, the raw database files, the media, `status --json`, the web pages and the stored
failure reasons are searched for the canary.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot import redact
from bot.app import build_app
from bot.config import parse_config
from bot.operator.status import story_status
from bot.platforms.base import Limits, OutgoingPost, PollTally, PostRef, Reply
from bot.platforms.local import LocalPlatform
from bot.web import start_server
from story_state.db import session_scope
from story_state.errors import TransientError
from tests.bot.conftest import small_config, write_config
from tests.generation.openai_server import CHAT, Canned, error_body, serving

ROOT = Path(__file__).resolve().parents[1]
DB_URL = "postgresql+psycopg://storybot:pw-3f9a-db@db.example/storybot"
CANARY = "3f9a-SECRET-CANARY"
SECRETS = {
    "STORYBOT_MASTODON_TOKEN": f"tok-{CANARY}-mastodon",
    "STORYBOT_X_CONSUMER_KEY": f"tok-{CANARY}-x-consumer-key",
    "STORYBOT_X_CONSUMER_SECRET": f"tok-{CANARY}-x-consumer-secret",
    "STORYBOT_X_ACCESS_TOKEN": f"tok-{CANARY}-x-access-token",
    "STORYBOT_X_ACCESS_SECRET": f"tok-{CANARY}-x-access-secret",
    "STORYBOT_ADMIN_TOKEN": f"tok-{CANARY}-admin-0123456789",
    "STORYBOT_OPENAI_API_KEY": f"sk-tok-{CANARY}-openai",
    "MASTODON_BEARER": f"tok-{CANARY}-named-only-by-the-config",
}


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    yield SECRETS
    redact.uninstall()


def story_config(tmp_path: Path, openai_url: str) -> dict[str, object]:
    data = small_config(tmp_path, f"sqlite:///{tmp_path / 'bot.db'}", episode_cap=3)
    data["generation"]["writer"] = {"backend": "openai", "base_url": openai_url, "max_retries": 0}
    data["platforms"] = {"mastodon": {"token_env": "MASTODON_BEARER"}}  # disabled, but named
    return data


def leaks(label: str, blob: str | bytes) -> list[str]:
    data = blob.encode() if isinstance(blob, str) else blob
    return [label] if CANARY.encode() in data else []


def test_scrub_masks_named_suffixed_and_url_encoded_values(
    secrets_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    named = secrets_env["MASTODON_BEARER"]
    assert redact.scrub(f"bearer {named}") == f"bearer {named}"  # no secret-like suffix ...
    config = parse_config(
        {"story": {"premise": "p"}, "platforms": {"mastodon": {"token_env": "MASTODON_BEARER"}}}
    )
    redact.register(config)
    assert redact.scrub(f"bearer {named}!") == "bearer ****!"  # ... but the config names it
    monkeypatch.setenv("SMTP_PASSWORD", "pw/3f9a+x=y")
    assert redact.scrub("a pw/3f9a+x=y b pw%2F3f9a%2Bx%3Dy") == "a **** b ****"
    assert redact.scrub("short", ["short"]) == "****"
    assert redact.secret_values({"A_KEY": "x", "PATH": "/usr/bin:/bin"}) == ()
    redact.register(parse_config({"story": {"premise": "p"}, "database": {"url": DB_URL}}))
    assert redact.scrub("login pw-3f9a-db failed") == "login **** failed"
    redact.uninstall()
    assert redact.scrub(f"bearer {named}") == f"bearer {named}"


def test_every_log_record_is_scrubbed_whichever_handler_writes_it(
    secrets_env: dict[str, str], tmp_path: Path
) -> None:
    token = secrets_env["STORYBOT_X_ACCESS_TOKEN"]
    redact.install()
    own = logging.getLogger("third.party")  # like uvicorn: its own handler, no propagation
    path = tmp_path / "log.txt"
    handler = logging.FileHandler(path)
    own.addHandler(handler)
    own.propagate = False
    try:
        own.warning("auth %s failed", token)
        try:
            raise RuntimeError(f"401 for {token}")
        except RuntimeError:
            own.exception("request failed")
        own.warning("stack", stack_info=True, extra={"x": 1})
    finally:
        own.removeHandler(handler)
        handler.close()
    text = path.read_text()
    assert "auth **** failed" in text and "RuntimeError: 401 for ****" in text
    assert CANARY not in text


class Leaky:
    """A platform whose errors quote its credential, as some HTTP libraries do."""

    name = "local"

    def __init__(self, inner: LocalPlatform, token: str) -> None:
        self.inner, self.token, self.calls = inner, token, 0

    def limits(self) -> Limits:
        return self.inner.limits()

    def publish(self, post: OutgoingPost) -> PostRef:
        self.calls += 1
        if self.calls == 1:
            raise TransientError(f"401 Unauthorized (Authorization: Bearer {self.token})")
        return self.inner.publish(post)

    def fetch_replies(self, posts: tuple[PostRef, ...]) -> list[Reply]:
        return self.inner.fetch_replies(posts)

    def fetch_tally(self, poll: PostRef) -> PollTally:
        return self.inner.fetch_tally(poll)


def storybot(config: Path, env: dict[str, str], *args: str) -> tuple[str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "-v", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, f"storybot {args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout, result.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_whole_story_leaves_no_secret_anywhere(
    secrets_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    found: list[str] = []
    with serving() as fake:
        key = secrets_env["STORYBOT_OPENAI_API_KEY"]
        refusal = error_body(f"Incorrect API key provided: {key}.", "invalid_request_error")
        fake.queue(CHAT, *[Canned(refusal, status=401)] * 10)
        data = story_config(tmp_path, fake.base_url)
        config = write_config(tmp_path, data)
        logs: list[str] = []
        for step in (
            ("tick",),
            ("local", "reply", "--as", "ana", "The miners rebel"),
            ("local", "vote", "--as", "ana", "1"),
            ("round", "close"),
            ("tick",),
            ("local", "reply", "--as", "ben", "A stowaway in the cargo hold"),
            ("round", "close"),
            ("tick",),
        ):
            out, err = storybot(config, env, *step)
            logs += [out, err]
        status, err = storybot(config, env, "status", "--json")
        logs.append(err)
        assert fake.received and all(
            r.headers["authorization"] == f"Bearer {key}" for r in fake.received
        )  # the key was really used, and really echoed back in the error
    log_text = "\n".join(logs)
    assert '"status": "ended"' in status
    assert "falls back to TemplateWriter: HTTP 401" in log_text and "****" in log_text
    found += leaks("debug logs", log_text) + leaks("status --json", status)

    with sqlite3.connect(tmp_path / "bot.db") as db:
        found += leaks("database rows", "\n".join(db.iterdump()))
    for path in [*tmp_path.glob("bot.db*"), *(tmp_path / "media").rglob("*")]:
        if path.is_file():
            found += leaks(str(path), path.read_bytes())

    app = build_app(parse_config(data, source=config))
    server = start_server(app)
    try:
        base = f"http://127.0.0.1:{server.port}"
        admin = {"Authorization": f"Bearer {secrets_env['STORYBOT_ADMIN_TOKEN']}"}
        with httpx.Client(base_url=base, timeout=30) as http:
            for route, headers in [("/", {}), ("/api/thread", {}), ("/admin", admin),
                                   ("/healthz", {}), ("/metrics", admin)]:  # fmt: skip
                page = http.get(route, headers=headers)
                assert page.status_code == 200, (route, page.status_code)
                found += leaks(route, page.text + str(page.headers))
    finally:
        server.stop()
        app.close()
    assert not found, f"the canary leaked into: {found}"


def test_a_failure_that_quotes_a_token_is_stored_and_logged_masked(
    secrets_env: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    redact.install()
    data = small_config(tmp_path, f"sqlite:///{tmp_path / 'bot.db'}")
    probe = build_app(parse_config(data))
    assert probe.local is not None
    leaky = Leaky(probe.local, secrets_env["STORYBOT_MASTODON_TOKEN"])
    app = build_app(parse_config(data), platforms={"local": leaky})
    try:
        with caplog.at_level(logging.DEBUG):
            notes = app.runner.tick()
        assert leaky.calls == 1 and notes[-1].startswith("rendered episode 1")
        with session_scope(app.factory) as session:
            doc = story_status(session)
        errors = [p["state"] for e in doc["stories"][0]["episodes"] for p in e["posts"]]
        assert errors == ["pending"]
        with sqlite3.connect(tmp_path / "bot.db") as db:
            stored = db.execute("SELECT last_error FROM posts").fetchall()
        assert stored == [("TransientError: 401 Unauthorized (Authorization: Bearer ****)",)]
        assert "Bearer ****" in caplog.text
        assert CANARY not in caplog.text and CANARY not in str(doc)
    finally:
        app.close()
        probe.close()
