"""`storybot worker`: a Celery worker that writes and renders the episodes `storybot run` queues."""

from __future__ import annotations

import logging
from typing import Any

import click

from bot.app import App, build_app
from bot.cli.common import errors, load
from bot.config import Config
from bot.workers.process import worker_celery
from bot.workers.queue import make_celery, queue_for
from story_state.errors import ConfigError

log = logging.getLogger(__name__)
PING_TIMEOUT_S = 10.0


def _queue_list(raw: str | None, default: str) -> list[str]:
    names = [name.strip() for name in (raw or "").split(",") if name.strip()]
    return names or [default]


def worker_app(config: Config) -> App:
    """A worker's app: the scheduler migrates the database, a worker never does."""
    return build_app(config, migrate_db=False)


@click.command()
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Jobs at once, each in its own pool process (a render keeps a few cores busy).",
)
@click.option(
    "-Q",
    "--queues",
    default=None,
    help="Comma-separated queues to take jobs from [default: this story's queue: "
    "workers.gpu_queue for diffusers or coqui backends, else workers.queue].",
)
@click.option(
    "-n",
    "--name",
    default="storybot@%h",
    show_default=True,
    help="The worker's node name; unique per worker (%h is the host name).",
)
@click.option(
    "--ping",
    is_flag=True,
    help="Only ask the worker named --name whether it answers, exit 0 if so (a health check).",
)
@click.pass_context
def worker(ctx: click.Context, concurrency: int, queues: str | None, name: str, ping: bool) -> None:
    """Write and render queued episodes until SIGTERM (which finishes the jobs in hand).

    Needs [workers] broker_url, and the same config file as `storybot run`.
    """

    config = load(ctx)
    with errors():
        if not config.workers.broker_url:
            raise ConfigError(
                f"{config.source}: workers.broker_url: set it to the Redis URL that "
                "`storybot run` queues jobs on (empty means it renders in-process)"
            )
        celery = make_celery(config) if ping else worker_celery(config, worker_app)
    from celery.utils.nodenames import default_nodename, host_format  # installed: checked above

    node = host_format(default_nodename(name))  # as `celery worker -n` does: %h, %n, %d
    if ping:
        _ping(celery, node)
        return
    chosen = _queue_list(queues, queue_for(config))
    log.info("worker %s takes jobs from %s (concurrency %d)", node, ", ".join(chosen), concurrency)
    # Celery's Worker installs its own signal handlers: SIGTERM is a warm shutdown (running
    # jobs finish, nothing new is taken), SIGQUIT a cold one; a killed worker's jobs come back.
    celery_worker = celery.Worker(
        hostname=node,
        concurrency=concurrency,
        queues=chosen,
        loglevel=logging.getLogger().getEffectiveLevel(),
        pool_cls="prefork",
        # Gossip and mingle exchange state the render task never uses; they only add traffic.
        without_gossip=True,
        without_mingle=True,
    )
    celery_worker.start()
    ctx.exit(int(celery_worker.exitcode or 0))


def _ping(celery: Any, node: str) -> None:
    try:
        replies = celery.control.ping(destination=[node], timeout=PING_TIMEOUT_S)
    finally:
        celery.close()
    if not replies:
        raise click.ClickException(f"worker {node} did not answer within {PING_TIMEOUT_S:.0f} s")
    click.echo(f"{node}: ok")


__all__ = ["worker"]
