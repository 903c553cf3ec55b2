"""The web server of `storybot run`: sandbox, dashboard, health and metrics on one port."""

from __future__ import annotations

import logging
import threading
import time

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from bot.app import App
from bot.web import admin, health, sandbox
from bot.web.auth import AdminAuth
from bot.web.context import HERE, WebContext
from bot.web.security import SecurityHeaders, WebError
from story_state.errors import ConfigError

log = logging.getLogger(__name__)


def create_web_app(app: App) -> Starlette:
    """The ASGI app; the admin token is read from the environment once, here."""
    ctx = WebContext(app, AdminAuth.from_config(app.config))

    async def web_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WebError)
        return ctx.error_page(request, exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = "There is nothing here." if exc.status_code == 404 else str(exc.detail)
        return ctx.error_page(request, WebError(exc.status_code, message, dict(exc.headers or {})))

    return Starlette(
        routes=[
            *health.routes(ctx),
            *sandbox.routes(ctx),
            *admin.routes(ctx),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={WebError: web_error, HTTPException: http_error},
    )


class WebServer:
    def __init__(self, server: uvicorn.Server, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread

    @property
    def port(self) -> int:
        for s in getattr(self.server, "servers", []):
            for sock in s.sockets:
                return int(sock.getsockname()[1])
        raise RuntimeError("web server is not listening")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_server(app: App, timeout: float = 10.0) -> WebServer:
    """Serve in a background thread; refuses a public address without an operator token."""
    web = app.config.web
    auth = AdminAuth.from_config(app.config)
    if not auth.loopback_bind and not auth.token:
        raise ConfigError(
            f"web.host: {web.host} is reachable from other machines, so the dashboard needs a "
            f"token: set {auth.env_name} (or serve on 127.0.0.1)"
        )
    if auth.token and len(auth.token) < 16:
        log.warning("%s is short (%d characters); use 32 or more", auth.env_name, len(auth.token))
    config = uvicorn.Config(
        create_web_app(app), host=web.host, port=web.port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="storybot-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ConfigError(
                f"web.port: cannot serve on {web.host}:{web.port} "
                "(is another program using that port?)"
            )
        time.sleep(0.05)
    log.info("serving http://%s:%s/ (dashboard at /admin)", web.host, web.port)
    return WebServer(server, thread)
