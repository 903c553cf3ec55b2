"""A whole story on a real, unmodified Takahe: no proxy, real reply HTML, real polls.

Takahe speaks the Mastodon client API but differs from Mastodon where it matters (see
../shared/servers/takahe/README.md): 404 on the trailing-slash instance URLs, images only (an
MP4 upload is a 500), Idempotency-Key ignored, ``user@host:port`` in every mention. Everything
is judged on the server's own record: the bot account's statuses as Takahe lists them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import App, build_app
from bot.config import parse_config
from bot.loop.failpoints import ENV as FAILPOINTS_ENV
from bot.platforms.mastodon.text import html_to_text
from story_state.db import session_scope
from story_state.lifecycle import EpisodeState
from story_state.models import Episode, Post, Suggestion
from tests.bot.conftest import small_config, write_config
from tests.bot.takahe import ROOT, Takahe

TOKEN_ENV = "STORYBOT_TEST_TAKAHE_TOKEN"


def takahe_config(tmp_path: Path, takahe: Takahe, **story: Any) -> dict[str, Any]:
    data = small_config(tmp_path, f"sqlite:///{tmp_path / 'story.db'}", **story)
    # One server, many stories: each its own slug (idempotency keys and lookups stay apart).
    data["story"]["slug"] = "takahe-" + re.sub(r"[^a-z0-9]+", "-", tmp_path.name.lower())[-50:]
    data["platforms"] = {
        "local": {"enabled": False},
        "mastodon": {"enabled": True, "instance": takahe.url, "token_env": TOKEN_ENV},
    }
    return data


@pytest.fixture
def story_app(tmp_path: Path, takahe: Takahe, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    monkeypatch.setenv(TOKEN_ENV, takahe.token("storybot"))
    config = parse_config(takahe_config(tmp_path, takahe, episode_cap=3))
    app = build_app(config)
    yield app
    app.close()


def episode(app: App, number: int) -> Episode:
    with session_scope(app.factory) as session:
        found = session.scalars(select(Episode).where(Episode.number == number)).one()
        session.expunge(found)
        return found


def tick_until(app: App, number: int, state: EpisodeState, limit: int = 12) -> None:
    for _ in range(limit):
        app.runner.tick()
        if episode(app, number).state is state:
            return
    raise AssertionError(f"episode {number} is {episode(app, number).state}, not {state}")


def remote_ids(app: App, number: int) -> dict[str, str]:
    with session_scope(app.factory) as session:
        rows = session.scalars(
            select(Post).join(Episode).where(Episode.number == number, Post.platform == "mastodon")
        ).all()
        return {row.kind: str(row.remote_id) for row in rows}


def wait_for_mentions(takahe: Takahe, count: int) -> None:
    """Takahe makes mention notifications in its background worker, about a second later."""
    bot = takahe.client("storybot")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if len(bot.notifications(types=["mention"], limit=40)) >= count:
            return
        time.sleep(0.5)


def test_a_three_round_story_on_takahe(story_app: App, takahe: Takahe) -> None:
    app, bot = story_app, takahe.acct("storybot")
    seen_before = len(takahe.statuses_of("storybot"))
    for number in (1, 2):
        tick_until(app, number, EpisodeState.POLLING)
        poll_id = remote_ids(app, number)["poll"]
        # Followers as their apps write: mentions as user@host:port, a link, a second mention.
        ana, ben, cy = (takahe.client(n) for n in ("ana", "ben", "cy"))
        ana.status_post(
            f"@{bot} @{takahe.acct('ben')} the miners rebel and seize the ship's reactor "
            "https://example.com/sketch",
            in_reply_to_id=poll_id,
        )
        ben.status_post(
            f"@{bot} the miners rebel against the company and take the reactor",
            in_reply_to_id=poll_id,
        )
        cy.status_post(
            f"@{bot} @{takahe.acct('ana')} a professor with a lantern walks out of the storm",
            in_reply_to_id=poll_id,
        )
        poll = ana.status(poll_id)["poll"]
        for client, choice in ((ana, 0), (ben, 0), (cy, 1)):
            client.poll_vote(poll["id"], [choice])
        wait_for_mentions(takahe, 3 * number)
        app.runner.close_round_now()
    tick_until(app, 3, EpisodeState.ENDED)

    # The server's record: 3 clips and 2 polls, none twice, each in the right place.
    mine = takahe.statuses_of("storybot")[: len(takahe.statuses_of("storybot")) - seen_before]
    keys = [(s["in_reply_to_id"], html_to_text(s["content"])) for s in mine]
    assert len(keys) == len(set(keys)) == 5, keys
    by_id = {str(s["id"]): s for s in mine}
    ids = {n: remote_ids(app, n) for n in (1, 2, 3)}
    assert by_id[ids[1]["clip"]]["in_reply_to_id"] is None
    for n in (1, 2):
        assert str(by_id[ids[n]["poll"]]["in_reply_to_id"]) == ids[n]["clip"]
        assert str(by_id[ids[n + 1]["clip"]]["in_reply_to_id"]) == ids[n]["poll"]
        poll = by_id[ids[n]["poll"]]["poll"]
        labels = [o["title"] for o in poll["options"]]
        text = html_to_text(by_id[ids[n]["poll"]]["content"])
        assert all(f"{i}. {label}" in text for i, label in enumerate(labels, 1)), text
    for n in (1, 2, 3):
        clip = by_id[ids[n]["clip"]]
        (attachment,) = clip["media_attachments"]
        assert attachment["type"] == "image"  # Takahe takes no video: the still went instead
        assert attachment["description"].startswith("A still image from the episode")

    # Every reply became a suggestion: two mentions and a link are an ordinary reply.
    with session_scope(app.factory) as session:
        rows = session.scalars(select(Suggestion)).all()
        assert len(rows) == 6, [s.text for s in rows]
        rejected = [(s.text, s.reject_reason) for s in rows if not s.accepted]
        assert not rejected, rejected
        assert not [s.text for s in rows if re.search(r":\d+|@", s.text)]  # mentions gone
    captions = " ".join(html_to_text(by_id[ids[n]["clip"]]["content"]) for n in (2, 3))
    assert "Story ideas from" in captions
    assert re.search(r"\b(Ana|Ben|Cy)\b", captions), captions


def test_kill_right_after_takahe_accepted_the_post(
    tmp_path: Path, takahe: Takahe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Takahe ignores Idempotency-Key: the adapter must find the post it made before dying."""
    monkeypatch.setenv(TOKEN_ENV, takahe.token("storybot"))
    config = write_config(tmp_path, takahe_config(tmp_path, takahe, episode_cap=2))
    before = {str(s["id"]) for s in takahe.statuses_of("storybot")}

    def tick(failpoints: str = "") -> subprocess.CompletedProcess[str]:
        env = {**os.environ, FAILPOINTS_ENV: failpoints}
        return subprocess.run(
            [sys.executable, "-m", "bot", "--config", str(config), "tick"],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=300,
            check=False,
        )

    killed = tick("after_publish=kill")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert "storybot failpoint after_publish#1: kill" in killed.stderr
    landed = [s for s in takahe.statuses_of("storybot") if str(s["id"]) not in before]
    assert len(landed) == 1  # the server has the clip; the bot never stored its id
    again = tick()
    assert again.returncode == 0, again.stderr[-2000:]
    new = [s for s in takahe.statuses_of("storybot") if str(s["id"]) not in before]
    clips = [s for s in new if s["media_attachments"]]
    polls = [s for s in new if s.get("poll")]
    assert len(clips) == 1, [html_to_text(s["content"]) for s in new]
    assert len(polls) == 1 and str(polls[0]["in_reply_to_id"]) == str(clips[0]["id"])
