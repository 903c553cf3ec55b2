"""`storybot cut`: the Community's Cut — every episode along a branch as one film."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from bot.app import App
from bot.cli.common import open_app
from bot.loop.runner import MAIN
from bot.operator.cut import render_story_cut
from story_state.errors import StorybotError


@click.command()
@click.option("--out", "out", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option("--branch", default=MAIN, show_default=True, help="Which line of the story.")
@click.pass_context
def cut(ctx: click.Context, out: Path, branch: str) -> None:
    """Render the Community's Cut: title card, chapter cards, every episode, end credits."""
    if not out.parent.is_dir():  # before any work: a typo should not make folders
        raise click.ClickException(f"--out: the folder {out.parent} does not exist")
    app: App = ctx.with_resource(open_app(ctx))
    try:
        click.echo(f"cutting branch {branch!r}…", err=True)
        info = render_story_cut(app, branch, out, datetime.now(UTC), make_folder=False)
    except StorybotError as exc:
        raise click.ClickException(str(exc)) from None
    for mark in info.chapters:
        click.echo(f"{mark.start_s:8.1f}s  {mark.title}")
    more = f" (+{info.left_out} counted, not shown)" if info.left_out else ""
    click.echo(
        f"wrote {out}: {info.duration_s:.1f} s, {info.size_bytes / 1e6:.1f} MB, "
        f"{info.credited} name(s) in the credits{more}"
    )
