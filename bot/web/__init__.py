"""The web side of `storybot run`: the sandbox page, the operator dashboard, health, metrics."""

from bot.web.server import WebServer, create_web_app, start_server

__all__ = ["WebServer", "create_web_app", "start_server"]
