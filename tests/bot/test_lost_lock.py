"""A runner that loses its lock stops; two runners never both send one outbox row.

Two real `storybot run` processes on PostgreSQL, posting to mastodon-mock with Idempotency-Key
ignored (as Takahe and others do), so nothing but the bot itself can prevent a duplicate. The
first runner is held just before it publishes (a ``sleep`` failpoint); its lock connection is
then ended with ``pg_terminate_backend``, as a network blip or a database restart would, and a
second runner starts and takes the lock. Duplicates are counted on the server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.loop.failpoints import ENV as FAILPOINTS_ENV
from bot.loop.runlock import lock_key
from bot.platforms.mastodon.text import html_to_text
from tests.bot.conftest import small_config, write_config
from tests.bot.mastodon_fixtures import MockMastodon

ROOT = Path(__file__).resolve().parents[2]
TOKEN_ENV = "STORYBOT_TEST_LOCK_TOKEN"


@pytest.fixture
def mock(tmp_path: Path) -> Iterator[MockMastodon]:
    with MockMastodon(tmp_path, ignore_idempotency=True) as server:
        yield server


def start_run(config: Path, log: Path, failpoints: str = "") -> subprocess.Popen[str]:
    env = {**os.environ, FAILPOINTS_ENV: failpoints, TOKEN_ENV: "alice_token"}
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(config), "run", "--no-web"],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=ROOT,
        )


def wait_for(log: Path, needle: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in log.read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} not in {log.name}:\n{log.read_text()[-3000:]}")


def end_lock_connection(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ended = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND objid = :lo"
                ),
                {"lo": lock_key() & 0xFFFFFFFF},
            ).scalar()
            conn.commit()
            return int(ended or 0)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_runner_that_loses_its_lock_stops_and_nothing_is_posted_twice(
    tmp_path: Path, pg_url: str, mock: MockMastodon
) -> None:
    data = small_config(tmp_path, pg_url, episode_cap=2)
    data["platforms"] = {
        "local": {"enabled": False},
        "mastodon": {"enabled": True, "instance": mock.base_url, "token_env": TOKEN_ENV},
    }
    data["scheduler"]["tick_seconds"] = 1
    config = write_config(tmp_path, data)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    # The first runner stops for a while with the clip's row claimed, just before the call.
    first = start_run(config, first_log, "before_publish=sleep:6")
    second: subprocess.Popen[str] | None = None
    try:
        wait_for(first_log, "storybot failpoint before_publish#1: sleep")
        assert end_lock_connection(pg_url) == 1
        second = start_run(config, second_log)
        # The first runner finishes the call it was in, then stops at its next check.
        assert first.wait(timeout=60) == 1, first_log.read_text()[-3000:]
        assert "lost the database's runner lock" in first_log.read_text()
        wait_for(second_log, "opened the round after episode 1", timeout=120)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)

    alice = mock.client("alice")
    statuses = alice.account_statuses(alice.me()["id"], limit=40)
    keys = [(s["in_reply_to_id"], html_to_text(s["content"])) for s in statuses]
    assert len(keys) == len(set(keys)), keys  # the server's record: nothing twice
    clips = [s for s in statuses if s["media_attachments"]]
    polls = [s for s in statuses if s["poll"]]
    assert len(clips) == 1 and len(polls) == 1
    assert str(polls[0]["in_reply_to_id"]) == str(clips[0]["id"])
    assert "is being sent by" in second_log.read_text()  # the claim, not luck, kept it apart
