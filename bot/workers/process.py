"""Render workers, the worker's side: the ``storybot.render_episode`` task and what a worker
process keeps between jobs (its app, its Redis client, the per-episode lock).

The worker's app comes from a ``build`` function handed in by ``storybot worker`` (the
composition root's ``build_app``), so this package never imports the composition root.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, database_url
from bot.loop.runner import StoryRunner
from bot.workers.queue import (
    LOCK_PREFIX,
    TASK_NAME,
    SchemaNotReady,
    job_timeout,
    make_celery,
    with_password,
)
from story_state import migrate
from story_state.db import session_scope
from story_state.lifecycle import EpisodeState
from story_state.models import Episode

if TYPE_CHECKING:
    from celery import Celery
    from redis import Redis

log = logging.getLogger(__name__)


class WorkerApp(Protocol):
    """What a worker needs of the composition root's ``App``."""

    engine: Engine
    factory: sessionmaker[Session]
    runner: StoryRunner

    def close(self) -> None: ...


def worker_celery(
    config: Config,
    build: Callable[[Config], WorkerApp],
    process: WorkerProcess | None = None,
) -> Celery:
    """The Celery app a worker runs: ``make_celery`` plus the render task.

    ``build`` makes a worker's app (the composition root's ``build_app``, without migrating).
    ``process`` holds what a worker process keeps between jobs; by default a new one that
    closes itself when its pool process exits.
    """
    from celery.signals import worker_process_shutdown
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from sqlalchemy.exc import InterfaceError, OperationalError

    celery = make_celery(config)
    if process is None:
        process = WorkerProcess(config, build)
        worker_process_shutdown.connect(process.on_exit, weak=False)
    infrastructure = (
        OperationalError,
        InterfaceError,
        RedisConnectionError,
        RedisTimeoutError,
        SchemaNotReady,
    )

    # shared=False: the task belongs to this app (and config) alone, not every app in the process.
    @celery.task(name=TASK_NAME, bind=True, shared=False, max_retries=8)  # type: ignore[untyped-decorator]
    def render_episode(task: Any, episode_id: int) -> str:
        """Write and render one episode; GenerationErrors are the runner's to record."""
        try:
            return process.render(episode_id, owner=f"{task.request.hostname} {task.request.id}")
        except _Busy as busy:
            # Another worker holds the episode: come back when its lock has run out.
            raise task.retry(countdown=busy.retry_in_s, max_retries=None) from None
        except infrastructure as exc:
            # The database or Redis is away: let Celery try again later, with backoff.
            countdown = min(300, 5 * 2 ** int(task.request.retries))
            log.warning("episode id %s: %s; retrying in %s s", episode_id, exc, countdown)
            raise task.retry(exc=exc, countdown=countdown) from exc

    return celery


class _Busy(Exception):
    def __init__(self, retry_in_s: float) -> None:
        super().__init__(f"busy for {retry_in_s:.1f} s")
        self.retry_in_s = retry_in_s


class WorkerProcess:
    """What one worker process keeps between jobs: its App (built on the first job, so each
    pool process has its own database connections) and its Redis client for the locks."""

    def __init__(self, config: Config, build: Callable[[Config], WorkerApp]) -> None:
        self.config = config
        self.build = build
        self.pid = 0
        self._app: WorkerApp | None = None
        self._redis: Redis | None = None

    def _fresh(self) -> None:
        if self.pid != os.getpid():  # forked since: the parent's connections are not ours
            self.pid, self._app, self._redis = os.getpid(), None, None

    def app(self) -> WorkerApp:
        self._fresh()
        if self._app is None:
            if not migrate.is_up_to_date(database_url(self.config)):
                raise SchemaNotReady("the database is not migrated yet (storybot run does it)")
            self._app = self.build(self.config)
        return self._app

    def redis(self) -> Redis:
        from redis import Redis

        self._fresh()
        if self._redis is None:
            settings = self.config.workers
            url = with_password(settings.broker_url, settings.password_env)
            self._redis = Redis.from_url(url, socket_connect_timeout=10, socket_timeout=30)
        return self._redis

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
        if self._redis is not None:
            self._redis.close()
        self._app = self._redis = None

    def on_exit(self, **_: Any) -> None:  # Celery's worker_process_shutdown signal
        if self.pid == os.getpid():
            self.close()

    def lock_name(self, episode_id: int) -> str:
        # Several stories may share one Redis: their episode ids are told apart by database.
        url = self.app().engine.url.render_as_string(hide_password=True)
        return f"{LOCK_PREFIX}:{hashlib.sha256(url.encode()).hexdigest()[:12]}:{episode_id}"

    def render(self, episode_id: int, owner: str) -> str:
        from redis.exceptions import LockError

        app = self.app()
        ttl = job_timeout(self.config).total_seconds()
        name = self.lock_name(episode_id)
        lock = self.redis().lock(name, timeout=ttl, blocking=False)
        if not lock.acquire(token=owner):
            if not _pending(app, episode_id):
                return "nothing to do: the episode has moved on"
            holder, left_ms = self.redis().get(name), self.redis().pttl(name)
            log.info("episode id %s: %s holds it; waiting", episode_id, holder)
            raise _Busy(max(1.0, left_ms / 1000 + 0.5) if left_ms > 0 else 1.0)
        log.info("episode id %s: job started on %s", episode_id, owner)
        try:
            result = app.runner.render_now(episode_id)
        finally:
            try:
                lock.release()
            except LockError as exc:  # the lock ran out first; the job's result stands
                log.warning("episode id %s: lock: %s", episode_id, exc)
        log.info("episode id %s: job done: %s", episode_id, result.note)
        return result.note


def _pending(app: WorkerApp, episode_id: int) -> bool:
    with session_scope(app.factory) as session:
        episode = session.get(Episode, episode_id)
        return episode is not None and episode.state in (
            EpisodeState.PLANNED,
            EpisodeState.WRITTEN,
        )


__all__ = ["WorkerApp", "WorkerProcess", "worker_celery"]
