"""Render workers: the Celery app, the ``storybot.render_episode`` task and its JobQueue.

With ``[workers] broker_url`` set, the scheduler queues each PLANNED or WRITTEN episode here and
``storybot worker`` processes run ``StoryRunner.render_now`` on it. Messages are acknowledged
only when the job ends (``acks_late``), so a worker that dies mid-job loses nothing: Redis gives
the message to another worker after the visibility timeout, and the scheduler queues the episode
again after the job timeout, whichever comes first. A per-episode lock in Redis keeps those two
copies (or a slow job and its resubmission) from running at once.

Celery is imported only when a broker is configured: the offline default does not need it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from bot.config import Config
from story_state import migrate
from story_state.db import session_scope
from story_state.errors import ConfigError, StateError
from story_state.lifecycle import EpisodeState
from story_state.models import Episode

if TYPE_CHECKING:
    from celery import Celery
    from redis import Redis

    from bot.app import App

log = logging.getLogger(__name__)

TASK_NAME = "storybot.render_episode"
LOCK_PREFIX = "storybot:render"
_INSTALL = "pip install 'storybot[workers]'"


class SchemaNotReady(StateError):
    """The database is not migrated yet; the scheduler (`storybot run`) migrates it."""


def needs_gpu(config: Config) -> bool:
    gen = config.generation
    return gen.image.backend == "diffusers" or gen.voice.backend == "coqui"


def queue_for(config: Config) -> str:
    """The queue this story's jobs go to: GPU backends have their own workers."""
    return config.workers.gpu_queue if needs_gpu(config) else config.workers.queue


def job_timeout(config: Config) -> timedelta:
    return timedelta(minutes=config.workers.job_timeout_minutes)


def with_password(url: str, env_name: str) -> str:
    """``url`` with the password from ``env_name`` (if set) put in; never stored in the file."""
    password = os.environ.get(env_name, "")
    parts = urlsplit(url)
    if not password or parts.password or parts.scheme not in ("redis", "rediss"):
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


def make_celery(config: Config) -> Celery:
    """The Celery app for ``config``: enough to queue jobs (``worker_celery`` runs them)."""
    try:
        from celery import Celery
    except ImportError:
        raise ConfigError(
            f"{config.source}: workers.broker_url is set but Celery is not installed: {_INSTALL}"
        ) from None
    settings = config.workers
    timeout_s = job_timeout(config).total_seconds()
    backend = with_password(settings.result_backend, settings.password_env) or None
    celery = Celery(
        "storybot",
        broker=with_password(settings.broker_url, settings.password_env),
        backend=backend,
        set_as_current=False,
    )
    celery.conf.update(
        task_acks_late=True,  # a job is done when it is done, not when it is received
        task_reject_on_worker_lost=True,  # a killed pool process gives its job back at once
        worker_prefetch_multiplier=1,  # jobs are long: never hold one that another could run
        task_default_queue=settings.queue,
        task_ignore_result=backend is None,
        broker_connection_retry_on_startup=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,  # storybot's logging setup stays
        broker_transport_options={
            # Twice the job timeout: a slow but live job is resubmitted by the scheduler (and
            # held back by the lock) long before Redis would hand its message to someone else.
            "visibility_timeout": max(60, round(2 * timeout_s)),
            # Look for abandoned messages every interval, not every tenth one.
            "unacked_restore_interval": max(1, min(10, round(timeout_s / 10))),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 10,
            "socket_timeout": 30,
        },
    )
    return celery


def worker_celery(config: Config, process: WorkerProcess | None = None) -> Celery:
    """The Celery app a worker runs: ``make_celery`` plus the render task.

    ``process`` holds what a worker process keeps between jobs; by default a new one that
    closes itself when its pool process exits.
    """
    from celery.signals import worker_process_shutdown
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from sqlalchemy.exc import InterfaceError, OperationalError

    celery = make_celery(config)
    if process is None:
        process = WorkerProcess(config)
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

    def __init__(self, config: Config) -> None:
        self.config = config
        self.pid = 0
        self._app: App | None = None
        self._redis: Redis | None = None

    def _fresh(self) -> None:
        if self.pid != os.getpid():  # forked since: the parent's connections are not ours
            self.pid, self._app, self._redis = os.getpid(), None, None

    def app(self) -> App:
        from bot.app import build_app, database_url  # bot.app imports this module

        self._fresh()
        if self._app is None:
            if not migrate.is_up_to_date(database_url(self.config)):
                raise SchemaNotReady("the database is not migrated yet (storybot run does it)")
            self._app = build_app(self.config, migrate_db=False)
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


def _pending(app: App, episode_id: int) -> bool:
    with session_scope(app.factory) as session:
        episode = session.get(Episode, episode_id)
        return episode is not None and episode.state in (
            EpisodeState.PLANNED,
            EpisodeState.WRITTEN,
        )


class CeleryJobs:
    """The scheduler's side: queue an episode's job on this story's queue."""

    def __init__(self, celery: Celery, queue: str) -> None:
        self.celery = celery
        self.queue = queue

    def submit(self, episode_id: int) -> str:
        result = self.celery.send_task(TASK_NAME, args=(episode_id,), queue=self.queue)
        return str(result.id)

    def close(self) -> None:
        self.celery.close()  # its broker connections


def build_jobs(config: Config) -> CeleryJobs | None:
    """The JobQueue for ``config``, or None when episodes render in-process."""
    if not config.workers.broker_url:
        return None
    return CeleryJobs(make_celery(config), queue_for(config))


__all__ = [
    "TASK_NAME",
    "CeleryJobs",
    "SchemaNotReady",
    "WorkerProcess",
    "build_jobs",
    "job_timeout",
    "make_celery",
    "needs_gpu",
    "queue_for",
    "with_password",
    "worker_celery",
]
