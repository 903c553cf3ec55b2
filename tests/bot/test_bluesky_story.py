"""A whole story on the reference AT Protocol network: PDS, AppView and PLC, unmodified.

Followers are seeded accounts that reply, mention the bot and like option replies (a like is a
vote on Bluesky). Everything is judged on the server's own record: the bot's repo as
``com.atproto.repo.listRecords`` lists it, and the records' reply references and facets.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from atproto_client import models
from sqlalchemy import select

from bot.app import App, build_app
from bot.config import database_url, parse_config
from bot.loop.failpoints import ENV as FAILPOINTS_ENV
from bot.platforms.bluesky.adapter import BlueskyPlatform
from bot.platforms.bluesky.rkeys import OPTION, PART, child, tid_for
from bot.platforms.bluesky.session import make_client
from bot.platforms.local import LocalAction, LocalPlatform
from bot.web.dashboard import dashboard
from story_state import migrate
from story_state.db import make_engine, session_factory, session_scope
from story_state.lifecycle import EpisodeState
from story_state.models import Episode, PollTally, Post, Suggestion
from tests.bot.bluesky import BOT, Bluesky, RateLimitedOnce, wait_for
from tests.bot.conftest import Clock, small_config, write_config
from tests.bot.takahe import ROOT

PASSWORD_ENV = "STORYBOT_TEST_BLUESKY_PASSWORD"
NAMES = {"ana": "Ana Lima", "ben": "Ben Okafor", "cyd": "Cyd Marsh", "dee": "Dee Vance"}


def bluesky_config(tmp_path: Path, net: Bluesky, **story: Any) -> dict[str, Any]:
    data = small_config(tmp_path, f"sqlite:///{tmp_path / 'story.db'}", **story)
    # One network, many stories (and runs, with STORYBOT_BLUESKY_JSON): each its own slug,
    # so its record keys are its own.
    name = re.sub(r"[^a-z0-9]+", "-", tmp_path.name.lower())[-40:]
    data["story"]["slug"] = f"bsky-{name}-{time.time_ns() % 16**8:08x}"
    data["platforms"] = {
        "local": {"enabled": False},
        "bluesky": {
            "enabled": True,
            "service": net.pds,
            "handle": net.handle(BOT),
            "password_env": PASSWORD_ENV,
            "session_file": str(tmp_path / "bluesky.session"),
        },
    }
    data["moderation"] = {"blocked_accounts": [net.handle("dee")]}
    return data


def set_display_names(net: Bluesky) -> None:
    """Followers with names, as people have: the credits use them."""
    for name, shown in NAMES.items():
        client = net.client(name)
        client.com.atproto.repo.put_record(
            models.ComAtprotoRepoPutRecord.Data(
                repo=net.did(name),
                collection="app.bsky.actor.profile",
                rkey="self",
                record=models.AppBskyActorProfile.Record(display_name=shown),
            )
        )
    viewer = net.client(BOT)
    for name, shown in NAMES.items():
        wait_for(
            lambda name=name, shown=shown: viewer.get_profile(net.did(name)).display_name == shown,
            f"{name}'s display name",
        )


@pytest.fixture
def story_app(tmp_path: Path, bluesky: Bluesky, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    monkeypatch.setenv(PASSWORD_ENV, bluesky.app_password(BOT))
    config = parse_config(bluesky_config(tmp_path, bluesky, episode_cap=3))
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
            select(Post).join(Episode).where(Episode.number == number, Post.platform == "bluesky")
        ).all()
        return {row.kind: str(row.remote_id) for row in rows if row.remote_id}


def mention_facet(text: str, handle: str, did: str) -> Any:
    start = text.encode().index(f"@{handle}".encode())
    return models.AppBskyRichtextFacet.Main(
        features=[models.AppBskyRichtextFacet.Mention(did=did)],
        index=models.AppBskyRichtextFacet.ByteSlice(
            byte_start=start, byte_end=start + len(handle) + 1
        ),
    )


def play_round(net: Bluesky, clip: str, question: str) -> None:
    """What followers do in a round, each step waited for in the AppView."""
    text = f"@{net.handle('ben')} the miners rebel and seize the ship's reactor"
    facet = mention_facet(text, net.handle("ben"), net.did("ben"))
    net.reply("ana", question, text, facets=[facet])
    net.reply("ben", clip, "the miners rebel against the company and take the reactor")
    net.mention("cyd", BOT, "a professor with a lantern walks out of the storm")
    net.reply("dee", question, "the miners sell the ship to the highest bidder")  # blocked
    gone = net.reply("ana", question, "never mind, ignore this one")
    net.delete("ana", gone)  # deleted before the harvest: it never counts

    option = {n: net.option_uri("ana", question, n) for n in (1, 2)}
    net.like("ana", option[1])
    withdrawn = net.like("ben", option[2])
    net.unlike("ben", withdrawn, option[2])  # a withdrawn like stops counting...
    net.like("ben", option[1])  # ...and the next one counts
    net.like("cyd", option[2])  # cyd's first like counts,
    net.like("cyd", option[1])  # the second does not (one vote each)
    net.like("dee", option[2])  # blocked: counts for no option


def test_a_three_round_story_on_bluesky(story_app: App, bluesky: Bluesky) -> None:
    app, net = story_app, bluesky
    net.reset((BOT, "ana", "ben", "cyd", "dee"))
    set_display_names(net)
    for number in (1, 2):
        tick_until(app, number, EpisodeState.POLLING)
        ids = remote_ids(app, number)
        play_round(net, ids["clip"], ids["poll"])
        app.runner.close_round_now()
        with session_scope(app.factory) as session:
            episode_row = session.scalars(select(Episode).where(Episode.number == number)).one()
            assert episode_row.round is not None
            rows = session.scalars(
                select(PollTally).where(
                    PollTally.round_id == episode_row.round.id, PollTally.platform == "bluesky"
                )
            ).all()
            counts = [r.votes for r in sorted(rows, key=lambda r: r.position)]
            assert counts[:2] == [2, 1] and sum(counts) == 3, counts
            assert episode_row.round.winner_position == 1
    tick_until(app, 3, EpisodeState.ENDED)

    # The server's record: every post the bot made, once, each where it belongs.
    records = net.records(BOT)
    by_uri = {r.uri: r.value for r in records}
    keys = [(r.value.reply.parent.uri if r.value.reply else None, r.value.text) for r in records]
    assert len(keys) == len(set(keys)), keys
    ids = {n: remote_ids(app, n) for n in (1, 2, 3)}

    def parent(uri: str) -> str | None:
        reply = by_uri[uri].reply
        return None if reply is None else str(reply.parent.uri)

    assert parent(ids[1]["clip"]) is None
    for n in (1, 2):
        assert parent(ids[n]["poll"]) == ids[n]["clip"]
        assert parent(ids[n + 1]["clip"]) == ids[n]["poll"]  # the next episode answers it
        question = ids[n]["poll"]
        key = question.rsplit("/", 1)[1]
        options = [u for u in by_uri if parent(u) == question and u != ids[n + 1]["clip"]]
        rest = [question.replace(key, child(key, PART, i)) for i in range(2, 7)]
        labels = [by_uri[u].text for u in options if u not in rest]
        assert {u.rsplit("/", 1)[1] for u in options} - {r.rsplit("/", 1)[1] for r in rest} == {
            child(key, OPTION, i) for i in range(1, len(labels) + 1)
        }
        assert sorted(label.split(". ")[0] for label in labels) == [
            str(i) for i in range(1, len(labels) + 1)
        ]
        said = " ".join(by_uri[u].text for u in [question, *rest] if u in by_uri)
        assert "only your first like counts" in said, said
    heads = [ids[n]["clip"] for n in (1, 2, 3)]
    assert sum(1 for r in records if r.value.reply is None) == 1  # one thread, one root
    for uri in heads:
        embed = by_uri[uri].embed
        assert embed.py_type == "app.bsky.embed.video", embed  # the PDS took the clip
        assert embed.alt.startswith("A narrated still image")

    # Credits as facets: a credited follower's name is a mention of their account.
    credited: set[str] = set()
    for value in by_uri.values():
        if "Story ideas from" not in value.text:
            continue
        raw = value.text.encode()
        for facet in value.facets or []:
            feature = facet.features[0]
            if feature.py_type == "app.bsky.richtext.facet#mention":
                shown = raw[facet.index.byte_start : facet.index.byte_end].decode()
                assert shown in NAMES.values(), shown
                credited.add(feature.did)
    assert credited and credited <= {net.did(n) for n in ("ana", "ben", "cyd")}, credited

    # Replies and the mention became suggestions; the blocked account's was refused.
    with session_scope(app.factory) as session:
        rows = session.scalars(select(Suggestion)).all()
        by_author = sorted((s.contributor.handle, s.accepted) for s in rows)
        assert len(rows) == 8, by_author
        refused = {(s.contributor.handle, s.reject_reason) for s in rows if not s.accepted}
        assert refused == {(net.handle("dee"), "blocked account")}, by_author
        assert not [s.text for s in rows if "never mind" in s.raw_text]


def test_kill_right_after_the_post_was_made(
    tmp_path: Path, bluesky: Bluesky, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGKILL after createRecord succeeded, before the bot stored the post's URI: the
    restarted process finds the record by its key and posts nothing twice."""
    monkeypatch.setenv(PASSWORD_ENV, bluesky.app_password(BOT))
    data = bluesky_config(tmp_path, bluesky, episode_cap=2)
    del data["moderation"]  # write_config writes tables of scalars only
    config = write_config(tmp_path, data)
    slug = data["story"]["slug"]
    before = {r.uri for r in bluesky.records(BOT)}

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

    def new_records() -> dict[str, Any]:
        return {r.uri.rsplit("/", 1)[1]: r.value for r in bluesky.records(BOT)
                if r.uri not in before}  # fmt: skip

    clip_key = tid_for(f"{slug}:1:clip:bluesky")
    killed = tick("after_publish=kill")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert "storybot failpoint after_publish#1: kill" in killed.stderr
    landed = new_records()
    assert clip_key in landed and all(
        key == clip_key or key in {child(clip_key, PART, n) for n in range(2, 7)} for key in landed
    ), landed  # the server has the clip; the bot never stored its URI

    again = tick()
    assert again.returncode == 0, again.stderr[-2000:]
    made = new_records()
    poll_key = tid_for(f"{slug}:1:poll:bluesky")
    roots = [key for key, value in made.items() if value.reply is None]
    assert roots == [clip_key], roots  # still one clip
    assert made[poll_key].reply.parent.uri.endswith(clip_key)
    rest = {child(poll_key, PART, n) for n in range(2, 7)}  # a question too long for one post
    options = [key for key, value in made.items() if value.reply and key not in rest and
               value.reply.parent.uri.endswith(poll_key)]  # fmt: skip
    expected = {child(poll_key, OPTION, n) for n in range(1, len(options) + 1)}
    assert len(options) >= 2 and set(options) == expected
    assert set(made) <= {clip_key, poll_key} | rest | expected | {
        child(clip_key, PART, n) for n in range(2, 7)
    }
    keys = [(v.reply.parent.uri if v.reply else None, v.text) for v in made.values()]
    assert len(keys) == len(set(keys))


def test_one_story_on_the_sandbox_and_bluesky_with_bluesky_lagging(
    tmp_path: Path, bluesky: Bluesky, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bluesky is rate limited when the episode goes out: the sandbox goes on, Bluesky catches
    up in thread order after the reset, and the round's votes add up over both."""
    net = bluesky
    net.reset((BOT, "ana", "ben"))
    monkeypatch.setenv(PASSWORD_ENV, net.app_password(BOT))
    data = bluesky_config(tmp_path, net, episode_cap=2)
    data["platforms"]["local"] = {"enabled": True}
    config = parse_config(data)
    url = database_url(config)
    migrate.upgrade(url)
    engine = make_engine(url)
    local = LocalPlatform(session_factory(engine), "storybot", clock)
    reset = clock.now + timedelta(minutes=10)
    limiter = RateLimitedOnce("com.atproto.repo.createRecord", reset)
    blue = BlueskyPlatform(
        net.pds,
        net.handle(BOT),
        net.app_password(BOT),
        session_file=tmp_path / "bluesky.session",
        clock=clock,
        client_factory=lambda service: make_client(service, transport=limiter),
    )
    app = build_app(config, platforms={"local": local, "bluesky": blue}, clock=clock)
    try:
        tick_until(app, 1, EpisodeState.POLLING)
        assert net.records(BOT) == [] and "clip" not in remote_ids(app, 1)
        clock.now = reset + timedelta(seconds=1)
        app.runner.tick()  # Bluesky catches up: the clip, then the question under it
        ids = remote_ids(app, 1)
        question = net.record(ids["poll"])
        assert question is not None and question.value.reply.parent.uri == ids["clip"]

        local.act(LocalAction("zoe", vote=1))
        local.act(LocalAction("yan", vote=2))
        for name in ("ana", "ben"):
            net.like(name, net.option_uri(name, ids["poll"], 2))
        app.runner.close_round_now()

        with session_scope(app.factory) as session:
            first = session.scalars(select(Episode).where(Episode.number == 1)).one()
            assert first.round is not None and first.round.decision is not None
            per_platform = first.round.decision["per_platform"]
            assert per_platform["local"][:2] == [1, 1] and per_platform["bluesky"][:2] == [0, 2]
            assert first.round.winner_position == 2  # 3 votes over both platforms
        shown = dashboard(app)["story"]["episodes"][-1]["poll"]
        assert set(shown["per_platform"]) == {"local", "bluesky"}  # a column each
        assert shown["options"][1]["value"] == 3
    finally:
        app.close()
        blue.close()
        engine.dispose()
