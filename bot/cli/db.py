"""`storybot db …`: the database schema."""

from __future__ import annotations

import click

from bot.cli.common import errors, load
from bot.config import database_url
from story_state import migrate


@click.group()
def db() -> None:
    """The database schema."""


@db.command(name="upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply every pending migration."""
    config = load(ctx)
    with errors():
        url = database_url(config)
        migrate.upgrade(url)
        click.echo(f"database at revision {migrate.current(url)}")
