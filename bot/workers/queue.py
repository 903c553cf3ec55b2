"""Render workers, the scheduler's side: the Celery app, job routing, and the JobQueue.

With ``[workers] broker_url`` set, the scheduler queues each PLANNED or WRITTEN episode here and
``storybot worker`` processes run ``StoryRunner.render_now`` on it. Messages are acknowledged
only when the job ends (``acks_late``), so a worker that dies mid-job loses nothing: Redis gives
the message to another worker after the visibility timeout, and the scheduler queues the episode
again after the job timeout, whichever comes first. A per-episode lock in Redis keeps those two
copies (or a slow job and its resubmission) from running at once.

Celery is imported only when a broker is configured: the offline default does not need it.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from bot.config import Config
from story_state.errors import ConfigError, StateError

if TYPE_CHECKING:
    from celery import Celery

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
    "build_jobs",
    "job_timeout",
    "make_celery",
    "needs_gpu",
    "queue_for",
    "with_password",
]
