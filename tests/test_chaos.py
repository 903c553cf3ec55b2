"""Exactly-once under crashes: the chaos harness's short form, its plan, and the failpoints.

The full run is `make chaos` (30 kills, 5 rounds: the sandbox on SQLite and PostgreSQL,
mastodon-mock with Idempotency-Key off, a real Takahe, a real Bluesky network). Here: 6 kills
over 3 rounds in the sandbox on each database, and 6 kills over 2 rounds on mastodon-mock
without idempotency, on a Takahe and on a Bluesky network of this module's own. Duplicates,
losses and divergence are counted on each server's own record. The seed is random unless
STORYBOT_CHAOS_SEED names one, and is printed (and repeated in any failure) so a failing run
can be replayed exactly.
"""

from __future__ import annotations

import io
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.loop import failpoints
from bot.loop.failpoints import POINTS, Failpoint, FailpointError
from chaos import bluesky as chaos_bluesky
from chaos.audience import Ledger
from chaos.harness import Harness, run_chaos
from chaos.mastodon import running_mock
from chaos.plan import CLOSE_PHASE, MUST, Kill, make_plan
from chaos.record import compare
from chaos.takahe import server_of
from chaos.world import LocalWorld, Server
from story_state.db import make_engine, session_factory, session_scope
from story_state.models import LocalPost, Post, Suggestion
from tests.bot.bluesky import Bluesky, running_bluesky
from tests.bot.takahe import Takahe, running_takahe


@pytest.fixture(scope="module")
def takahe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Takahe]:
    """A Takahe of this module's own: its checks read the bot account's whole record on the
    server, which other tests' stories (and the contract suite's clean-ups) would muddle."""
    with running_takahe(tmp_path_factory.mktemp("takahe")) as server:
        yield server


@pytest.fixture(scope="module")
def bluesky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bluesky]:
    """A Bluesky network of this module's own, for the same reason: the bot's whole repo is
    judged. A kit that cannot start fails the test (tests/bot/bluesky.py)."""
    with running_bluesky(tmp_path_factory.mktemp("bluesky")) as network:
        yield network


ROOT = Path(__file__).resolve().parents[1]
SEED_ENV = "STORYBOT_CHAOS_SEED"
# About 1.5–2 minutes a run on an idle 2-core machine; the limits leave room for a busy one.
DEADLINE_S = 360
TIMEOUT_S = 600


@pytest.fixture
def armed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    def arm(value: str) -> None:
        monkeypatch.setenv(failpoints.ENV, value)
        failpoints.reset()

    yield arm
    monkeypatch.delenv(failpoints.ENV, raising=False)
    failpoints.reset()


def test_failpoints_parse_and_round_trip() -> None:
    points = failpoints.parse(" after_publish=kill@2, mid_render=raise ,x=sleep:0.5")
    assert points["after_publish"] == Failpoint("after_publish", "kill", 2)
    assert points["x"].seconds == 0.5
    assert failpoints.parse(failpoints.render(list(points.values()))) == points
    for bad in ("after_publish", "a=explode", "a=kill@0", "a=kill@two", "=kill"):
        with pytest.raises(ValueError, match=failpoints.ENV):
            failpoints.parse(bad)


def test_unarmed_points_do_nothing_and_armed_ones_fire_on_the_nth_hit(
    armed: Callable[[str], None],
) -> None:
    failpoints.reset()
    for name in POINTS:
        failpoints.hit(name)  # STORYBOT_FAILPOINTS is unset in the test run
    armed("before_close=raise@3")
    failpoints.hit("before_close")
    failpoints.hit("after_render")
    failpoints.hit("before_close")
    with pytest.raises(FailpointError, match="before_close"):
        failpoints.hit("before_close")
    failpoints.hit("before_close")  # only the 3rd hit acts


def test_a_kill_point_sigkills_the_process_and_says_where() -> None:
    code = "from bot.loop import failpoints\nfailpoints.hit('mid_render')\nprint('survived')\n"
    env = {**os.environ, failpoints.ENV: "mid_render=kill"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )
    assert result.returncode == -9 and "survived" not in result.stdout
    assert result.stderr.strip() == "storybot failpoint mid_render#1: kill"


def test_the_plan_is_seeded_paced_and_covers_the_named_points() -> None:
    plan = make_plan(30, 5, seed=7)
    assert plan == make_plan(30, 5, seed=7) and plan != make_plan(30, 5, seed=8)
    assert [k.index for k in plan] == list(range(1, 31))
    assert {k.failpoint.name for k in plan if k.failpoint} == set(POINTS)
    counts = [sum(1 for k in plan if k.episode == e) for e in range(1, 6)]
    assert max(counts) - min(counts) <= 2  # spread over the story, not bunched at its start
    last = [k for k in plan if k.episode == 6]  # renders and posts its clip, nothing more
    assert len(last) <= min(counts) and all(k.failpoint and k.phase < CLOSE_PHASE for k in last)
    assert [(k.episode, k.phase) for k in plan] == sorted((k.episode, k.phase) for k in plan)
    short = make_plan(6, 3, seed=1)
    assert set(MUST) <= {k.failpoint.name for k in short if k.failpoint}


def test_a_planned_failpoint_the_story_ran_past_is_armed_as_it_can_still_fire(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seed 540021 plans after_publish@2 (episode 2's poll); its earlier lives had done episode
    # 2's render, so that life found the last episode, which publishes its clip only.
    harness = Harness(f"sqlite:///{tmp_path}/c.db", tmp_path, 6, 2, 540021, io.StringIO())
    after_poll = Kill(5, 2, Failpoint("after_publish", "kill", 2), 1.0)
    close = Kill(6, 2, Failpoint("before_close", "kill"), 2.0)
    monkeypatch.setattr(harness, "_head_episode", lambda: 2)
    assert harness._reachable(after_poll, ended=False) == after_poll
    assert harness._reachable(close, ended=False) == close
    monkeypatch.setattr(harness, "_head_episode", lambda: 3)  # the last episode
    assert harness._reachable(after_poll, ended=False).failpoint == Failpoint(
        "after_publish", "kill"
    )
    assert harness._reachable(close, ended=False) == Kill(6, 2, None, 2.0)
    assert harness._reachable(after_poll, ended=True) == Kill(5, 2, None, 1.0)


def _seed() -> int:
    return int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(1, 1_000_000))


SUMMARY = re.compile(
    r"chaos\[(?P<label>[\w+-]+)\]: kills=(?P<kills>\d+) duplicates=(?P<duplicates>\d+) "
    r"lost=(?P<lost>\d+) diverged=(?P<diverged>\d+) wall=\d+s"
)


def _short_run(
    url: str,
    tmp_path: Path,
    *,
    label: str,
    rounds: int,
    replay: str,
    server: Server | None = None,
) -> None:
    seed = _seed()
    out = io.StringIO()
    report = run_chaos(
        url,
        tmp_path,
        kills=6,
        rounds=rounds,
        seed=seed,
        out=out,
        deadline_s=DEADLINE_S,
        server=server,
    )
    text = out.getvalue()
    replay = f"replay: python -m chaos.harness {replay} --kills 6 --rounds {rounds} --seed {seed}"
    print(text)
    assert report.ok, f"{replay}\n{text}"
    assert len(report.kills) == 6, f"{replay}\n{text}"
    fired = {name for name in report.where if not name.startswith("timed")}
    assert set(MUST) <= fired, f"failpoints never fired ({replay}):\n{text}"
    last = SUMMARY.fullmatch(text.splitlines()[-1])
    assert last is not None, text.splitlines()[-1]
    counts = {k: int(last[k]) for k in ("kills", "duplicates", "lost", "diverged")}
    assert last["label"] == label, last[0]
    assert counts == {"kills": 6, "duplicates": 0, "lost": 0, "diverged": 0}, f"{replay}\n{text}"
    assert "ok   reference: same beats and winners as an uninterrupted run" in text
    # The server's record was read: the story's posts, the followers' replies and votes.
    assert f"ok   {label.split('+')[0]}: each post published exactly once" in text
    assert re.search(rf"note {re.escape(label.split('+')[0])} holds {2 * rounds + 1} bot", text)


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT_S)
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_short_chaos_run_posts_and_records_everything_exactly_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    label = "local" if backend == "sqlite" else "local+postgres"
    _short_run(url, tmp_path, label=label, rounds=3, replay=f"--db {backend}")
    if backend == "sqlite":
        _the_counts_see_a_sabotaged_record(url, episodes=4)


def _the_counts_see_a_sabotaged_record(url: str, episodes: int) -> None:
    """The counts are not zero by construction: after the run, the sandbox gets a second
    copy of a poll, a reply loses its suggestion, and the last clip's row names a post that
    does not exist; each is counted once, where it belongs."""
    engine = make_engine(url)
    factory = session_factory(engine)
    world = LocalWorld(factory)
    try:
        with session_scope(factory) as session:
            clean = compare(session, "chaos", world, episodes, Ledger())
            assert (clean.duplicates, clean.lost, clean.diverged) == ([], [], [])
            poll = session.scalars(
                select(LocalPost).where(LocalPost.poll_options.is_not(None))
            ).first()
            assert poll is not None
            session.add(
                LocalPost(
                    author=poll.author,
                    is_bot=True,
                    in_reply_to=poll.in_reply_to,
                    text=poll.text,
                    poll_options=poll.poll_options,
                    poll_closes_at=poll.poll_closes_at,
                )
            )
            suggestion = session.scalars(select(Suggestion)).first()
            assert suggestion is not None
            gone = suggestion.remote_id
            session.delete(suggestion)
            last_clip = session.scalars(
                select(Post).where(Post.kind == "clip").order_by(Post.id.desc())
            ).first()
            assert last_clip is not None
            last_clip.remote_id = "999999"
        with session_scope(factory) as session:
            found = compare(session, "chaos", world, episodes, Ledger())
    finally:
        engine.dispose()
    assert len(found.duplicates) == 1 and "repeats" in found.duplicates[0], found.duplicates
    assert len(found.lost) == 1 and f"reply {gone} " in found.lost[0], found.lost
    assert [d for d in found.diverged if "999999" in d] == found.diverged != [], found.diverged


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT_S)
def test_short_chaos_run_on_mastodon_mock_without_idempotency(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The server ignores Idempotency-Key: only the adapter's look-up prevents duplicates."""
    with running_mock(tmp_path) as server:
        assert "Idempotency-Key ignored" in " ".join(server.notes())
        _short_run(
            sqlite_url,
            tmp_path,
            label="mastodon-mock",
            rounds=2,
            replay="--platform mastodon-mock",
            server=server,
        )


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT_S)
def test_short_chaos_run_on_takahe(
    tmp_path: Path, sqlite_url: str, request: pytest.FixtureRequest
) -> None:
    """A real server that ignores Idempotency-Key and takes images only."""
    found: Takahe = request.getfixturevalue("takahe")
    server = server_of(found.url, found.accounts)
    assert "Idempotency-Key ignored" in " ".join(server.notes())
    _short_run(
        sqlite_url, tmp_path, label="takahe", rounds=2, replay="--platform takahe", server=server
    )


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT_S)
def test_short_chaos_run_on_bluesky(
    tmp_path: Path, sqlite_url: str, request: pytest.FixtureRequest
) -> None:
    """No idempotency key at all: only the record keys the adapter derives from the outbox key
    keep a retried post from landing twice. The record is the PDS's own (listRecords)."""
    network: Bluesky = request.getfixturevalue("bluesky")
    server = chaos_bluesky.server_of(network.pds, network.appview, network.accounts)
    try:
        server.reset()  # STORYBOT_BLUESKY_JSON may name a network with an earlier story
        assert server.world().bot_statuses() == []
        _short_run(
            sqlite_url,
            tmp_path,
            label="bluesky",
            rounds=2,
            replay="--platform bluesky",
            server=server,
        )
    finally:
        server.close()
