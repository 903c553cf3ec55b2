"""`python -m bot` is the `storybot` command."""

from bot.cli import main

main()
