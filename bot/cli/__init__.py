"""The `storybot` command line: ``main`` (the root group) and one module per command group."""

from bot.cli.main import cli, main

__all__ = ["cli", "main"]
