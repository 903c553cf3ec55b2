"""The edge: platform adapters, the scheduler, the composition root and the CLI."""

from bot.app import App, build_app
from bot.config import Config, load_config, parse_config

__all__ = ["App", "Config", "build_app", "load_config", "parse_config"]
