"""The `storybot` command line: the root group, and every command module added to it.

Arrows point one way: this module imports the command modules (``bot/cli/*.py``), each of
which imports only ``bot.cli.common`` for what they share; none imports this module back.
"""

from __future__ import annotations

from pathlib import Path

import click
from dotenv import load_dotenv

from bot.cli import cut, db, demo, doctor, local, login, operate, run, story, worker
from bot.cli.common import setup_logging


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
    setup_logging(verbose)
    env_file = env_file or config_path.resolve().parent / ".env"
    if env_file.is_file():
        # Variables already set in the environment win over the file.
        load_dotenv(env_file, override=False)
    obj = ctx.ensure_object(dict)
    obj["config_path"] = config_path
    obj["env_file"] = env_file  # where every command reads secrets, and `login` writes them


COMMANDS: tuple[click.Command, ...] = (
    run.run,
    run.tick,
    operate.round_group,
    operate.status,
    operate.retry,
    operate.pause,
    operate.resume,
    operate.audit_log,
    db.db,
    demo.demo,
    story.branches,
    story.fork,
    story.lore,
    local.local,
    login.login,
    doctor.doctor,
    cut.cut,
    worker.worker,
)
for command in COMMANDS:
    cli.add_command(command)


def main() -> None:
    cli(prog_name="storybot")


__all__ = ["cli", "main"]
