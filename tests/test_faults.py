"""A story told on Mastodon while the server misbehaves: ~30% of the bot's calls faulted.

Each call the bot makes to mastodon-mock is, with seeded probability 0.3, answered by the
mock's own fault injection: 429 with a reset time, 500, 502, 503, or slow. The clock is
moved past every reset and retry time between ticks. The story must still finish, with
each status posted exactly once and the follower's reply and vote counted.

Calls that are safe to repeat (reads, media uploads, checks on an upload) are tried again
within the step; posting a status is not, and is left to the scheduler's retry. Before that,
seeds 1 and 5 exhausted ``max_attempts`` on multi-call steps; now seeds 1 to 8 and 30 all
finish. Three of them run here.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import build_app
from bot.config import parse_config
from bot.platforms.mastodon.adapter import MastodonPlatform
from story_state.db import session_scope
from story_state.lifecycle import EpisodeState, StoryStatus
from story_state.models import Episode, Post, Story, Suggestion
from tests.bot.conftest import Clock, small_config
from tests.bot.mastodon_fixtures import MockMastodon

BOT_CALLS = re.compile(r"^/api/v[12]/(?!_mock)")
EFFECTS: list[dict[str, Any]] = [
    {"type": "ratelimit", "headers": {"Retry-After": "60"}},  # and X-RateLimit-Reset
    {"type": "status", "status": 500},
    {"type": "status", "status": 502},
    {"type": "status", "status": 503},
    {"type": "latency", "delay_ms": 400},  # slow, then served
]


class FaultyMastodon(MockMastodon):
    """mastodon-mock that arms a one-shot fault rule for ~30% of the bot's own calls."""

    def __init__(self, tmp_path: Path, seed: int, rate: float = 0.3) -> None:
        super().__init__(tmp_path)
        self.rng, self.rate = random.Random(seed), rate
        self.bot_calls = 0
        self.injected: list[str] = []

    async def _asgi(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        headers = dict(scope.get("headers", [])) if scope["type"] == "http" else {}
        path = scope.get("path", "")
        if b"alice_token" in headers.get(b"authorization", b"") and BOT_CALLS.match(path):
            self.bot_calls += 1
            if self.rng.random() < self.rate:
                effect = self.rng.choice(EFFECTS)
                rule = {"match": {"path": path, "methods": [scope["method"]]}, "effect": effect}
                self._app.state.fault_store.add({**rule, "count": 1})  # the mock's injection
                self.injected.append(f"{scope['method']} {path}: {effect['type']}")
        await super()._asgi(scope, receive, send)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("seed", [1, 5, 30])
def test_a_two_round_story_survives_a_faulty_mastodon(
    seed: int, tmp_path: Path, sqlite_url: str
) -> None:
    clock = Clock(datetime.now(UTC))

    def sleep(seconds: float) -> None:
        clock.now += timedelta(seconds=seconds)

    faulty = FaultyMastodon(tmp_path, seed=seed)
    with faulty as mock:
        platform = MastodonPlatform(mock.base_url, "alice_token", clock=clock, sleep=sleep)
        data = small_config(tmp_path, sqlite_url, episode_cap=3)
        data["scheduler"]["max_attempts"] = 8  # the default; the small config's 3 is for speed
        config = parse_config(data)
        app = build_app(config, platforms={"mastodon": platform}, clock=clock)
        bob = mock.client("bob")
        acted: dict[int, str] = {}
        try:
            for _ in range(300):
                app.runner.tick()
                clock.now += timedelta(seconds=400)  # past every reset and retry time
                with session_scope(app.factory) as session:
                    story = session.scalars(select(Story)).one()
                    if story.status is StoryStatus.ENDED:
                        break
                    head = session.scalars(select(Episode).order_by(Episode.number.desc())).first()
                    assert head is not None
                    number, state = head.number, head.state
                    poll = session.scalars(
                        select(Post.remote_id).where(
                            Post.episode_id == head.id, Post.kind == "poll"
                        )
                    ).first()
                if state is not EpisodeState.POLLING or poll is None:
                    continue
                if number not in acted:
                    reply = bob.status_post(f"A stowaway appears {number}", in_reply_to_id=poll)
                    bob.poll_vote(bob.status(poll)["poll"]["id"], [0])
                    acted[number] = str(reply["id"])
                    continue  # the next tick harvests it
                app.runner.close_round_now()
            with session_scope(app.factory) as session:
                completed = session.scalars(select(Story)).one().status is StoryStatus.ENDED
                stored = [s.remote_id for s in session.scalars(select(Suggestion))]
                where = [
                    (e.number, str(e.state), e.round and str(e.round.status))
                    for e in session.scalars(select(Episode))
                ] + [
                    (p.idempotency_key, str(p.state), p.attempts)
                    for p in session.scalars(select(Post))
                ]
            faulty.rate = 0.0  # the test's own look at the timeline is not faulted
            alice = mock.client("alice")
            mine = alice.account_statuses(alice.me()["id"], limit=40)
        finally:
            app.close()
    texts = [s["content"] for s in mine]
    duplicates = len(texts) - len(set(texts))
    lost = sum(1 for remote_id in acted.values() if stored.count(remote_id) != 1)
    injected = len(faulty.injected)
    print(
        f"faults: injected={injected} duplicates={duplicates} lost={lost} "
        f"completed={'yes' if completed else 'no'}"
    )
    assert completed and set(acted) == {1, 2}, (where, acted, stored)
    assert duplicates == 0 and len(mine) == 5, texts  # clip, poll, clip, poll, clip
    assert lost == 0, (acted, stored)
    assert injected >= 0.15 * faulty.bot_calls, (injected, faulty.bot_calls)
