"""The `storybot` command line."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from dotenv import load_dotenv

from bot import audit, redact
from bot.app import App, build_app, database_url
from bot.config import Config, load_config
from bot.platforms.local import LocalAction, LocalActionError
from bot.runlock import RunLock
from story_state import migrate
from story_state.db import session_scope
from story_state.errors import StorybotError


def _setup_logging(verbose: bool) -> None:
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
def _errors() -> Iterator[None]:
    """Our errors become one clear line and exit status 1, never a traceback."""
    try:
        yield
    except StorybotError as exc:
        raise click.ClickException(str(exc)) from None


def _config(ctx: click.Context) -> Config:
    obj: dict[str, Any] = ctx.ensure_object(dict)
    if "config" not in obj:
        with _errors():
            obj["config"] = load_config(obj["config_path"])
            redact.install(obj["config"])  # and the variables this config names
    config: Config = obj["config"]
    return config


def _operate(app: App, action: str, work: Callable[[], str]) -> str:
    """An operator command's work, kept in the operator log (`storybot audit`)."""
    return audit.logged(app.factory, action, work, app.runner.clock)


@contextmanager
def _app(ctx: click.Context) -> Iterator[App]:
    config = _config(ctx)
    with _errors():
        app = build_app(config)
        try:
            yield app
        finally:
            app.close()


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default="config.toml",
    envvar="STORYBOT_CONFIG",
    show_default=True,
    help="The config file.",
)
@click.option(
    "--env-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    envvar="STORYBOT_ENV_FILE",
    help="Secrets as KEY=value lines (default: .env beside the config, if present).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
@click.pass_context
def cli(ctx: click.Context, config_path: Path, env_file: Path | None, verbose: bool) -> None:
    """storybot: a serial sci-fi story its followers write with it."""
    _setup_logging(verbose)
    env_file = env_file or config_path.resolve().parent / ".env"
    if env_file.is_file():
        # Variables already set in the environment win over the file.
        load_dotenv(env_file, override=False)
    ctx.ensure_object(dict)["config_path"] = config_path


@cli.command()
@click.option("--no-web", is_flag=True, help="Do not serve the sandbox, dashboard and /healthz.")
@click.pass_context
def run(ctx: click.Context, no_web: bool) -> None:
    """Run the story until stopped (SIGTERM or Ctrl-C stop it between steps)."""
    from bot.scheduler import run as run_scheduler

    # The lock comes before the app (and its migrations): one runner per database.
    with _errors(), RunLock(database_url(_config(ctx))), _app(ctx) as app:
        run_scheduler(app, serve_web=not no_web)


@cli.command()
@click.pass_context
def tick(ctx: click.Context) -> None:
    """Advance everything that is due once, then exit (for cron)."""
    with _errors():
        lock = RunLock(database_url(_config(ctx)))
        if not lock.try_acquire():
            click.echo("another runner is active")
            return
    try:
        with _app(ctx) as app:
            notes = app.runner.tick()
    finally:
        lock.release()
    for note in notes:
        click.echo(note)
    if not notes:
        click.echo("nothing due")


@cli.group(name="round")
def round_group() -> None:
    """The open round."""


@round_group.command(name="close")
@click.pass_context
def round_close(ctx: click.Context) -> None:
    """Close the open round now and pick the next beat."""
    with _app(ctx) as app:
        click.echo(_operate(app, "round close", lambda: app.runner.close_round_now()))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Each story, its episodes and the open round."""
    from bot.status import render_text, story_status

    with _app(ctx) as app, session_scope(app.factory) as session:
        doc = story_status(session)
    click.echo(redact.scrub(json.dumps(doc, indent=2) if as_json else render_text(doc)))


@cli.command()
@click.pass_context
def retry(ctx: click.Context) -> None:
    """Retry an episode that was held after repeated failures."""
    with _app(ctx) as app:
        click.echo(_operate(app, "retry", lambda: app.runner.retry_held()))


@cli.command()
@click.pass_context
def pause(ctx: click.Context) -> None:
    """Pause the story: nothing is written, rendered or posted until `resume`."""
    with _app(ctx) as app:
        click.echo(_operate(app, "pause", lambda: app.runner.set_paused(True)))


@cli.command()
@click.pass_context
def resume(ctx: click.Context) -> None:
    """Resume a paused story."""
    with _app(ctx) as app:
        click.echo(_operate(app, "resume", lambda: app.runner.set_paused(False)))


@cli.command(name="audit")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def audit_log(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The operator log: dashboard buttons and operator commands, newest first."""
    with _app(ctx) as app:
        actions = audit.recent(app.factory, limit)
    if as_json:
        rows = [{**a, "at": a["at"].isoformat()} for a in actions]
        click.echo(json.dumps({"actions": rows}, indent=2))
        return
    if not actions:
        click.echo("no operator actions yet")
    for a in actions:
        mark = "ok" if a["ok"] else "FAILED"
        click.echo(
            f"{a['at']:%Y-%m-%d %H:%M:%S}Z {a['source']:<9} {a['actor']:<16} "
            f"{a['action']}: {mark}: {a['outcome']}"
        )


@cli.group()
def db() -> None:
    """The database schema."""


@db.command(name="upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply every pending migration."""
    config = _config(ctx)
    with _errors():
        url = database_url(config)
        migrate.upgrade(url)
        click.echo(f"database at revision {migrate.current(url)}")


@cli.command()
@click.option("--rounds", type=click.IntRange(1, 50), default=3, show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--audience", type=click.IntRange(0, 10000), default=12, show_default=True)
@click.pass_context
def demo(ctx: click.Context, rounds: int, out_dir: Path, seed: int, audience: int) -> None:
    """A complete offline story with a simulated audience, written to --out."""
    from bot.demo import run_demo

    obj = ctx.ensure_object(dict)
    path: Path = obj["config_path"]
    config = _config(ctx) if path.exists() or "config" in obj else None
    with _errors():
        run_demo(config, rounds=rounds, out_dir=out_dir, seed=seed, audience=audience)


from bot.cut_cli import cut  # noqa: E402
from bot.doctor import doctor  # noqa: E402
from bot.local_cli import local  # noqa: E402  (command groups live in their own modules)
from bot.login import login  # noqa: E402
from bot.story_cli import branches, fork, lore  # noqa: E402
from bot.worker_cli import worker  # noqa: E402

cli.add_command(local)
for command in (branches, fork, lore, login, doctor, cut, worker):
    cli.add_command(command)

__all__ = ["LocalAction", "LocalActionError", "cli", "main"]


def main() -> None:
    cli(prog_name="storybot")
