"""What every `storybot` command shares: logging, the config, the app, and clean error lines.

A leaf module: command modules import it, it imports no command module.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from bot import redact
from bot.app import App, build_app
from bot.config import Config, load_config
from bot.operator import audit
from story_state.errors import StorybotError


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    redact.install()  # every record from here on has known secret values masked
    if not verbose:
        # Migrations run on every start; their chatter only matters when debugging.
        logging.getLogger("alembic").setLevel(logging.WARNING)


@contextmanager
def errors() -> Iterator[None]:
    """Our errors become one clear line and exit status 1, never a traceback."""
    try:
        yield
    except StorybotError as exc:
        raise click.ClickException(str(exc)) from None


def load(ctx: click.Context) -> Config:
    obj: dict[str, Any] = ctx.ensure_object(dict)
    if "config" not in obj:
        with errors():
            obj["config"] = load_config(obj["config_path"])
            redact.install(obj["config"])  # and the variables this config names
    config: Config = obj["config"]
    return config


def operate(app: App, action: str, work: Callable[[], str]) -> str:
    """An operator command's work, kept in the operator log (`storybot audit`)."""
    return audit.logged(app.factory, action, work, app.runner.clock)


@contextmanager
def open_app(ctx: click.Context) -> Iterator[App]:
    config = load(ctx)
    with errors():
        app = build_app(config)
        try:
            yield app
        finally:
            app.close()


__all__ = ["errors", "load", "open_app", "operate", "setup_logging"]
