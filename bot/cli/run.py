"""`storybot run` and `storybot tick`: advance the story, forever or once (for cron)."""

from __future__ import annotations

import click

from bot.cli.common import errors, load, open_app
from bot.config import database_url
from bot.loop.runlock import RunLock


@click.command()
@click.option("--no-web", is_flag=True, help="Do not serve the sandbox, dashboard and /healthz.")
@click.pass_context
def run(ctx: click.Context, no_web: bool) -> None:
    """Run the story until stopped (SIGTERM or Ctrl-C stop it between steps)."""
    from bot.scheduler import run as run_scheduler

    # The lock comes before the app (and its migrations): one runner per database.
    with errors(), RunLock(database_url(load(ctx))) as lock, open_app(ctx) as app:
        run_scheduler(app, serve_web=not no_web, lock=lock)


@click.command()
@click.pass_context
def tick(ctx: click.Context) -> None:
    """Advance everything that is due once, then exit (for cron)."""
    with errors():
        lock = RunLock(database_url(load(ctx)))
        if not lock.try_acquire():
            click.echo("another runner is active")
            return
    try:
        with open_app(ctx) as app:
            app.runner.guard = lock.still_held
            notes = app.runner.tick()
    finally:
        lock.release()
    for note in notes:
        click.echo(note)
    if not notes:
        click.echo("nothing due")
