"""`storybot demo`: a whole offline story with a simulated audience."""

from __future__ import annotations

from pathlib import Path

import click

from bot.cli.common import errors, load


@click.command()
@click.option("--rounds", type=click.IntRange(1, 50), default=3, show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--audience", type=click.IntRange(0, 10000), default=12, show_default=True)
@click.pass_context
def demo(ctx: click.Context, rounds: int, out_dir: Path, seed: int, audience: int) -> None:
    """A complete offline story with a simulated audience, written to --out."""
    from bot.demo.story import run_demo

    obj = ctx.ensure_object(dict)
    path: Path = obj["config_path"]
    config = load(ctx) if path.exists() or "config" in obj else None
    with errors():
        run_demo(config, rounds=rounds, out_dir=out_dir, seed=seed, audience=audience)
