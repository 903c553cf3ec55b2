"""The story loop end to end on the local platform, with the real offline generators."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.app import App
from bot.platforms.base import Limits, OutgoingPost, PollTally, PostRef, Reply
from bot.platforms.local import LocalAction, LocalPlatform
from generation.pipeline import Generators
from generation.writer.base import Script, WriteRequest
from story_state.db import session_scope
from story_state.errors import GenerationError, StateError, TransientError
from story_state.lifecycle import EpisodeState, PostState, StoryStatus
from story_state.models import Episode, LocalPost, Post, Story
from tests.bot.conftest import Clock

MakeApp = Callable[..., App]


def episodes(app: App) -> list[Episode]:
    with session_scope(app.factory) as session:
        return list(session.scalars(select(Episode).order_by(Episode.number)))


def thread(app: App) -> list[dict[str, object]]:
    assert app.local is not None
    return list(app.local.thread()["posts"])


def bot_posts(app: App) -> list[dict[str, object]]:
    return [p for p in thread(app) if p["is_bot"]]


def test_two_rounds_thread_votes_and_credits(db_url: str, make_app: MakeApp, clock: Clock) -> None:
    app = make_app(db_url)
    local = app.local
    assert local is not None
    notes = app.runner.tick()
    assert notes[0] == "planned episode 1" and "opened the round after episode 1" in notes[-1]
    first = episodes(app)[0]
    assert first.state is EpisodeState.POLLING
    assert (Path(app.runner.media_root) / (first.video_path or "")).stat().st_size > 10_000
    assert app.runner.tick() == []  # the round is open: nothing is due

    clip, poll = bot_posts(app)
    assert clip["media"] and clip["poll"] is None and clip["in_reply_to"] is None
    assert poll["in_reply_to"] == clip["id"] and poll["poll"]
    options = [o["label"] for o in poll["poll"]["options"]]  # type: ignore[index]
    assert 2 <= len(options) <= 4

    local.act(LocalAction("ana", reply="The miners rebel"))
    local.act(LocalAction("ben", reply="the miners rebel!!", to=str(clip["id"])))
    local.act(LocalAction("cy", reply="A stowaway is found in the cargo hold"))
    local.act(LocalAction("dara", reply="<p>hidden</p> spam http://a.b http://c.d"))
    local.act(LocalAction("ana", vote=2))
    local.act(LocalAction("ben", vote=2))
    local.act(LocalAction("cy", vote=1))

    clock.now += timedelta(minutes=31)
    notes = app.runner.tick()
    assert notes[0].startswith(f"closed round 1: {options[1]!r} (most votes (2))")
    second = episodes(app)[1]
    assert second.beat.startswith(options[1].rstrip("…"))
    assert second.state is EpisodeState.POLLING
    texts = [i["text"] for i in second.ideas]
    assert texts[0] == "The miners rebel"  # the biggest cluster (two people) is woven in
    assert "A stowaway is found in the cargo hold" in texts
    with session_scope(app.factory) as session:
        ep2 = session.get(Episode, second.id)
        assert ep2 is not None
        assert {c.contributor.handle for c in ep2.credits} == {"ana", "ben", "cy"}
        decision = ep2.story.episodes[0].round.decision  # type: ignore[union-attr]
        assert decision["totals"][:2] == [1, 2]
        rejected = [s for s in ep2.story.episodes[0].round.suggestions if not s.accepted]  # type: ignore[union-attr]
        assert [s.reject_reason for s in rejected] == ["link or mention spam"]

    clip2 = bot_posts(app)[2]
    assert clip2["in_reply_to"] == poll["id"]  # the whole story reads as one thread
    assert "ana" in str(clip2["text"]) and "Story ideas from" in str(clip2["text"])


def test_final_episode_ends_the_story_without_a_poll(sqlite_url: str, make_app: MakeApp) -> None:
    app = make_app(sqlite_url, story={"episode_cap": 2})
    app.runner.tick()
    app.runner.close_round_now()
    app.runner.tick()
    eps = episodes(app)
    assert [e.state for e in eps] == [EpisodeState.CLOSED, EpisodeState.ENDED]
    assert eps[1].is_final
    assert [p["poll"] is not None for p in bot_posts(app)] == [False, True, False]
    with session_scope(app.factory) as session:
        assert session.scalars(select(Story)).one().status is StoryStatus.ENDED
    assert app.runner.tick() == []
    with pytest.raises(StateError, match="no open round"):
        app.runner.close_round_now()


class CrashAfterPublish:
    """A platform that posts for real and then dies before the answer comes back."""

    def __init__(self, inner: LocalPlatform) -> None:
        self.inner = inner
        self.name = inner.name
        self.crash = True

    def limits(self) -> Limits:
        return self.inner.limits()

    def publish(self, post: OutgoingPost) -> PostRef:
        ref = self.inner.publish(post)
        if self.crash:
            raise KeyboardInterrupt("killed between 'post sent' and 'remote id stored'")
        return ref

    def fetch_replies(self, posts: tuple[PostRef, ...]) -> list[Reply]:
        return self.inner.fetch_replies(posts)

    def fetch_tally(self, poll: PostRef) -> PollTally:
        return self.inner.fetch_tally(poll)


def test_crash_between_post_and_remote_id_never_double_posts(
    sqlite_url: str, make_app: MakeApp, clock: Clock
) -> None:
    probe = make_app(sqlite_url)
    assert probe.local is not None
    flaky = CrashAfterPublish(probe.local)
    app = make_app(sqlite_url, platforms={"local": flaky})
    with pytest.raises(KeyboardInterrupt):
        app.runner.tick()
    with session_scope(app.factory) as session:
        row = session.scalars(select(Post)).one()
        assert row.state is PostState.PENDING and row.remote_id is None
    assert len(bot_posts(probe)) == 1  # the platform has it; we never learnt its id

    restarted = make_app(sqlite_url)  # a fresh process, same database
    restarted.runner.tick()
    assert [p["poll"] is not None for p in bot_posts(restarted)] == [False, True]
    with session_scope(restarted.factory) as session:
        assert session.scalar(select(func.count()).select_from(LocalPost)) == 2
        states = [p.state for p in session.scalars(select(Post))]
        assert states == [PostState.SENT, PostState.SENT]


class BrokenWriter:
    def __init__(self) -> None:
        self.calls = 0

    def write(self, request: WriteRequest) -> Script:
        self.calls += 1
        raise GenerationError("the model server is down")


def test_failures_back_off_then_hold_then_retry(
    sqlite_url: str, make_app: MakeApp, clock: Clock
) -> None:
    base = make_app(sqlite_url)
    gens = base.runner.generators
    writer = BrokenWriter()
    app = make_app(sqlite_url, generators=Generators(writer, gens.image, gens.voice, gens.clip))
    assert app.runner.tick() == ["planned episode 1"]
    first = episodes(app)[0]
    assert first.attempts == 1 and first.next_attempt_at == clock.now + timedelta(seconds=5)
    assert "the model server is down" in (first.failure_reason or "")
    assert app.runner.tick() == [] and writer.calls == 1  # waits for its retry time
    for _ in range(2):
        clock.now += timedelta(minutes=5)
        app.runner.tick()
    held = episodes(app)[0]
    assert held.state is EpisodeState.FAILED and held.failed_from is EpisodeState.PLANNED
    assert writer.calls == 3
    clock.now += timedelta(hours=1)
    assert app.runner.tick() == []  # held: only an operator moves it
    fixed = make_app(sqlite_url)
    assert "goes back to planned" in fixed.runner.retry_held()
    fixed.runner.tick()
    assert episodes(fixed)[0].state is EpisodeState.POLLING


class RateLimitedOnce(CrashAfterPublish):
    def publish(self, post: OutgoingPost) -> PostRef:
        if self.crash:
            self.crash = False
            raise TransientError("502 from upstream")
        return self.inner.publish(post)


def test_platform_errors_retry_the_post_later(
    sqlite_url: str, make_app: MakeApp, clock: Clock
) -> None:
    probe = make_app(sqlite_url)
    assert probe.local is not None
    app = make_app(sqlite_url, platforms={"local": RateLimitedOnce(probe.local)})
    app.runner.tick()
    with session_scope(app.factory) as session:
        row = session.scalars(select(Post)).one()
        assert (
            row.state is PostState.PENDING and row.last_error == "TransientError: 502 from upstream"
        )
        assert row.next_attempt_at is not None and row.next_attempt_at > clock.now
    assert episodes(app)[0].state is EpisodeState.RENDERED
    clock.now += timedelta(minutes=1)
    app.runner.tick()
    assert episodes(app)[0].state is EpisodeState.POLLING
    assert len(bot_posts(probe)) == 2


def test_leftover_community_idea_becomes_a_wildcard_option(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    local = app.local
    assert local is not None
    app.runner.tick()
    for i, idea in enumerate(
        [
            "The water supply is poisoned",
            "the water supply is poisoned!",
            "A second sun rises",
            "The android remembers its past",
            "A child draws a map of the tunnels",
        ]
    ):
        local.act(LocalAction(f"fan{i}", reply=idea))
    app.runner.close_round_now()
    app.runner.tick()
    poll = bot_posts(app)[-1]["poll"]
    assert poll is not None
    labels = [o["label"] for o in poll["options"]]  # type: ignore[index]
    woven = [i["text"] for i in episodes(app)[1].ideas]
    assert len(woven) == 2 and "The water supply is poisoned" in woven
    # The idea the most people asked for is offered in the poll, rumour or not (issue 14).
    assert labels[-1] == "The water supply is poisoned", labels


def test_pause_stops_every_step_until_resumed(
    sqlite_url: str, make_app: MakeApp, clock: Clock
) -> None:
    app = make_app(sqlite_url)
    assert app.runner.set_paused(True) == "story salt-flats is paused"
    assert app.runner.tick() == []
    assert episodes(app) == []
    app.runner.set_paused(False)
    app.runner.tick()
    assert episodes(app)[0].state is EpisodeState.POLLING
    app.runner.set_paused(True)
    clock.now += timedelta(days=1)
    assert app.runner.tick() == []
    assert episodes(app)[0].state is EpisodeState.POLLING


class Mirror(LocalPlatform):
    """A second platform kept in the same sandbox tables, down for its first ``outage`` calls."""

    name = "mirror"

    def __init__(self, inner: LocalPlatform, outage: int) -> None:
        super().__init__(inner._factory, "mirrorbot", inner._clock)
        self.outage = outage

    def publish(self, post: OutgoingPost) -> PostRef:
        if self.outage > 0:
            self.outage -= 1
            raise TransientError("503 from the mirror")
        ref = super().publish(post)
        return PostRef(self.name, ref.remote_id)


def test_a_lagging_platform_catches_up_in_thread_order(
    sqlite_url: str, make_app: MakeApp, clock: Clock
) -> None:
    probe = make_app(sqlite_url)
    assert probe.local is not None
    mirror = Mirror(probe.local, outage=2)  # max_attempts is 3 in these tests
    app = make_app(sqlite_url, platforms={"local": probe.local, "mirror": mirror})
    notes = app.runner.tick()
    assert any("(later on mirror)" in n for n in notes)
    assert episodes(app)[0].state is EpisodeState.POLLING  # local carried on alone
    for _ in range(6):
        clock.now += timedelta(minutes=10)
        app.runner.tick()
    with session_scope(app.factory) as session:
        rows = session.scalars(select(Post).order_by(Post.sent_at, Post.id)).all()
        mirror_rows = [r for r in rows if r.platform == "mirror"]
        assert [r.state for r in rows] == [PostState.SENT] * len(rows)
        assert [r.kind for r in mirror_rows][:2] == ["clip", "poll"]
        clip, poll = mirror_rows[0], mirror_rows[1]
        assert poll.in_reply_to == clip.remote_id  # threaded on the mirror too
        assert clip.sent_at is not None and poll.sent_at is not None
        assert clip.sent_at <= poll.sent_at


class LostJobs:
    """A job queue whose workers never finish anything."""

    def __init__(self) -> None:
        self.submitted: list[int] = []

    def submit(self, episode_id: int) -> str:
        self.submitted.append(episode_id)
        return f"job-{len(self.submitted)}"


def test_jobs_no_worker_finishes_count_as_attempts_then_hold(
    sqlite_url: str, make_app: MakeApp, clock: Clock
) -> None:
    app = make_app(sqlite_url)
    jobs = LostJobs()
    app.runner.jobs = jobs
    app.runner.tick()
    assert jobs.submitted == [1]
    app.runner.tick()
    assert jobs.submitted == [1]  # still within the job timeout: not queued twice
    for _ in range(3):
        clock.now += app.runner.job_timeout + timedelta(seconds=1)
        app.runner.tick()
    held = episodes(app)[0]
    assert held.state is EpisodeState.FAILED and held.failed_from is EpisodeState.PLANNED
    assert "no worker finished job job-3 in time" in (held.failure_reason or "")
    assert len(jobs.submitted) == 3
    # A late duplicate of a lost job still renders once the operator retries.
    app.runner.retry_held()
    app.runner.jobs = None
    app.runner.render_now(held.id)
    assert episodes(app)[0].state is EpisodeState.RENDERED
