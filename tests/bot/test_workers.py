"""Render workers for real: Redis, PostgreSQL, the scheduler and two `storybot worker`s."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.app import build_app
from bot.cli.worker import worker_app
from bot.config import Config, parse_config
from bot.operator.status import story_status
from bot.workers.process import WorkerProcess, worker_celery
from bot.workers.queue import (
    TASK_NAME,
    CeleryJobs,
    build_jobs,
    queue_for,
    with_password,
)
from chaos.redis_server import RedisServer, RedisUnavailable, running_redis
from story_state.db import make_engine, session_factory, session_scope
from story_state.lifecycle import EpisodeState, PostState
from story_state.models import Episode, LocalPost, Post
from tests.bot.conftest import small_config, write_config

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")
pytestmark = pytest.mark.postgres
_databases = itertools.count(1)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the run; missing binaries fail it with the install command."""
    try:
        with running_redis() as server:
            yield server
    except RedisUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def broker(redis_server: RedisServer) -> str:
    """A Redis database of its own for this test (16 per server; each is emptied first)."""
    url = redis_server.url(next(_databases) % 16)
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


@pytest.fixture
def client(broker: str) -> Iterator[redis.Redis]:
    """A client on the test's broker database, to look at what is queued and locked."""
    with redis.Redis.from_url(broker) as client:
        yield client


def worker_config(tmp_path: Path, db_url: str, broker: str, **story: Any) -> dict[str, Any]:
    data = small_config(tmp_path, db_url, **{"episode_cap": 4, **story})
    # 9 s: far more than a small job takes, short enough to see a lost job come back.
    data["workers"] = {"broker_url": broker, "job_timeout_minutes": 0.15}
    return data


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (found := check()) is not None:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Procs:
    """`python -m bot` processes, each in its own process group with its output in a file."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, config: Path, *args: str) -> subprocess.Popen[bytes]:
        with open(self.tmp_path / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "--config", str(config), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,  # the worker and its pool processes die together
            )
        self.started[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def stop(self, name: str, timeout: float = 60) -> int:
        proc = self.started[name]
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=timeout)

    def kill_all(self) -> None:
        for proc in self.started.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture
def factory(pg_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test's database, for looking at what the processes did."""
    engine = make_engine(pg_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    started = Procs(tmp_path)
    yield started
    started.kill_all()


def storybot(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def held_job(client: redis.Redis) -> tuple[int, str] | None:
    """(episode id, "node task-id") of a job some worker holds right now, if any."""
    for key in client.scan_iter(match="storybot:render:*"):
        holder = client.get(key)
        if holder is not None:
            return int(key.decode().rsplit(":", 1)[1]), holder.decode()
    return None


@pytest.mark.timeout(300)
def test_a_worker_killed_mid_job_loses_nothing(
    tmp_path: Path,
    pg_url: str,
    broker: str,
    client: redis.Redis,
    procs: Procs,
    factory: sessionmaker[Session],
) -> None:
    config = write_config(tmp_path, worker_config(tmp_path, pg_url, broker))
    procs.start("scheduler", config, "run", "--no-web")
    for name in ("a", "b"):
        procs.start(name, config, "worker", "--name", f"{name}@%h", "--concurrency", "1")

    # The first job: SIGKILL the worker (and its pool process) that holds it, mid-job.
    episode_id, holder = wait_for("a worker to take the first job", lambda: held_job(client))
    victim = holder.split("@", 1)[0]
    survivor = "b" if victim == "a" else "a"
    # Celery reports the job as held as soon as it is received; wait for the job's own log
    # line too, or the kill can land before the job has started (and before it logs).
    started = f"episode id {episode_id}: job started on {holder}"
    wait_for("the job to start", lambda: started in procs.log(victim) or None, timeout=30)
    os.killpg(procs.started[victim].pid, signal.SIGKILL)
    procs.started[victim].wait(timeout=10)
    with session_scope(factory) as session:
        episode = session.get(Episode, episode_id)
        assert episode is not None and episode.number == 1
        assert episode.state in (EpisodeState.PLANNED, EpisodeState.WRITTEN), (
            f"the job finished before the kill landed ({episode.state})"
        )
        assert episode.job_id is not None
    # Its health check now fails (while the story goes on); the survivor's passes, below.
    procs.start("ping-victim", config, "worker", "--name", holder.split()[0], "--ping")

    # The story goes on: each round is closed by the operator as soon as it opens.
    refused: list[str] = []

    def story_over() -> bool | None:
        with session_scope(factory) as session:
            head = session.scalars(select(Episode).order_by(Episode.number.desc())).first()
            state = head.state if head else None
            number = head.number if head else 0
        assert state is not EpisodeState.FAILED, procs.log(survivor)
        if state is EpisodeState.ENDED:
            return True
        if state is EpisodeState.POLLING:
            closing = storybot(config, "round", "close")
            if closing.returncode != 0:  # the scheduler may have closed it in the same instant
                refused.append(f"round close after #{number}: {closing.stderr.strip()}")
        return None

    wait_for(f"episode 4 to end (refused: {refused})", story_over, timeout=200)

    ping = storybot(config, "worker", "--name", f"{survivor}@%h", "--ping")
    assert ping.returncode == 0 and ping.stdout.strip().endswith(": ok"), ping.stderr
    assert procs.started["ping-victim"].wait(timeout=30) == 1
    assert "did not answer within 10 s" in procs.log("ping-victim")
    assert procs.stop(survivor) == 0, procs.log(survivor)  # SIGTERM: a warm shutdown
    assert procs.stop("scheduler") == 0, procs.log("scheduler")
    killed_log, survivor_log = procs.log(victim), procs.log(survivor)
    assert started in killed_log
    assert f"episode id {episode_id}: job done" not in killed_log
    for number in (1, 2, 3, 4):  # every clip rendered once, all by the worker left standing
        assert survivor_log.count(f": job done: rendered episode {number} (") == 1, survivor_log

    with session_scope(factory) as session:
        episodes = session.scalars(select(Episode).order_by(Episode.number)).all()
        assert [e.state for e in episodes] == [EpisodeState.CLOSED] * 3 + [EpisodeState.ENDED]
        for e in episodes:
            assert e.failure_reason is None and e.attempts == 0 and e.job_id is None
            assert e.video_path and (tmp_path / "media" / e.video_path).is_file()
        posts = session.scalars(select(Post).order_by(Post.id)).all()
        assert sorted((p.kind, p.state) for p in posts) == sorted(
            [("clip", PostState.SENT)] * 4 + [("poll", PostState.SENT)] * 3
        )
        bot_posts = session.scalars(select(LocalPost).where(LocalPost.is_bot)).all()
        # Posted exactly once: one sandbox post per outbox row, under the same key.
        assert sorted(p.idempotency_key or "" for p in bot_posts) == sorted(
            p.idempotency_key for p in posts
        )
        assert not any(e["failure"] for e in story_status(session)["stories"][0]["episodes"])


@contextmanager
def worker_side(config: Config) -> Iterator[Any]:
    """The render task as a worker process has it, run here with ``.apply``."""
    process = WorkerProcess(config, worker_app)
    try:
        yield worker_celery(config, worker_app, process).tasks[TASK_NAME]
    finally:
        process.close()


def test_a_job_that_keeps_failing_holds_the_episode_with_its_reason(
    tmp_path: Path, pg_url: str, broker: str, client: redis.Redis
) -> None:
    data = worker_config(tmp_path, pg_url, broker)
    data["generation"]["voice"]["voice"] = "zz-nowhere"  # espeak-ng has no such voice
    data["scheduler"]["retry_base_seconds"] = 1
    config = parse_config(data)
    app = build_app(config)  # the scheduler's side, as `storybot run` builds it
    assert isinstance(app.runner.jobs, CeleryJobs)
    with worker_side(config) as task:
        for attempt in (1, 2, 3):
            episode_id = wait_for(f"job {attempt} to be queued", lambda: _queued(app))
            assert client.llen("render") == 1  # the message the scheduler sent
            client.delete("render")  # taken by the "worker" below
            result = task.apply(args=(episode_id,))
            assert result.successful(), result.traceback  # recorded by the runner, not raised
            assert result.result.startswith("written failed: ") and "voice" in result.result
            with session_scope(app.factory) as session:
                episode = session.get(Episode, episode_id)
                assert episode is not None and episode.attempts == attempt
                assert episode.job_id is None
        with session_scope(app.factory) as session:
            held = story_status(session)["stories"][0]["episodes"][0]
        assert held["state"] == "failed" and held["failed_from"] == "written"
        # The CLI and the library word it differently; both name the voice as the cause.
        assert held["failure"].startswith("GenerationError: ") and "voice" in held["failure"]
        app.runner.tick()
        assert client.llen("render") == 0  # a held episode is not queued again
    app.close()


def _queued(app: Any) -> int | None:
    """Tick the scheduler until it queues the head episode; its id."""
    app.runner.tick()
    with session_scope(app.factory) as session:
        head = session.scalars(select(Episode).order_by(Episode.id.desc())).first()
        return head.id if head is not None and head.job_id is not None else None


def test_infrastructure_errors_are_retried_by_celery_with_backoff(
    tmp_path: Path, broker: str, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = "postgresql+psycopg://storybot@127.0.0.1:9/storybot"  # the discard port
    with worker_side(parse_config(worker_config(tmp_path, unreachable, broker))) as task:
        result = task.apply(args=(1,))  # eager: each retry runs at once, whatever its delay
    delays = [r.getMessage().rsplit(" in ", 1)[1] for r in caplog.records if "retrying" in r.msg]
    assert delays == ["5 s", "10 s", "20 s", "40 s", "80 s", "160 s", "300 s", "300 s", "300 s"]
    assert result.failed() and isinstance(result.result, OperationalError)  # then it gives up


def test_routing_and_broker_settings(tmp_path: Path, broker: str, client: redis.Redis) -> None:
    plain = worker_config(tmp_path, "sqlite://", broker)
    assert build_jobs(parse_config({**plain, "workers": {}})) is None  # renders in-process
    gpu = {**plain, "generation": {**plain["generation"], "image": {"backend": "diffusers"}}}
    gpu["generation"]["image"]["model"] = "some/folder"
    config = parse_config(gpu)
    assert queue_for(config) == "render-gpu" and queue_for(parse_config(plain)) == "render"
    jobs = build_jobs(config)
    assert jobs is not None
    job_id = jobs.submit(7)
    jobs.close()
    assert client.llen("render-gpu") == 1 and client.llen("render") == 0
    assert job_id in client.lindex("render-gpu", 0).decode()
    os.environ["STORYBOT_TEST_BROKER_PW"] = "s3cret"
    try:
        url = with_password("redis://redis:6379/0", "STORYBOT_TEST_BROKER_PW")
        assert url == "redis://:s3cret@redis:6379/0"
    finally:
        del os.environ["STORYBOT_TEST_BROKER_PW"]


def test_worker_needs_a_broker(tmp_path: Path) -> None:
    config = write_config(tmp_path, small_config(tmp_path, "sqlite:///x.db"))
    result = storybot(config, "worker")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: {config}: workers.broker_url: set it to the Redis URL that `storybot run` "
        "queues jobs on (empty means it renders in-process)"
    )
