"""The HTTP side of `storybot run`: liveness for operators and container health checks."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import uvicorn
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.app import App
from story_state.errors import ConfigError

log = logging.getLogger(__name__)


def create_web_app(app: App) -> Starlette:
    async def healthz(_request: Request) -> JSONResponse:
        body: dict[str, Any] = {"status": "ok", "database": "ok"}
        try:
            with app.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means "not healthy"
            body.update(status="error", database=type(exc).__name__)
            return JSONResponse(body, status_code=503)
        body["last_tick"] = app.heartbeat.isoformat() if app.heartbeat else None
        return JSONResponse(body)

    return Starlette(routes=[Route("/healthz", healthz)])


class WebServer:
    def __init__(self, server: uvicorn.Server, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread

    @property
    def port(self) -> int:
        servers = getattr(self.server, "servers", [])
        for s in servers:
            for sock in s.sockets:
                return int(sock.getsockname()[1])
        raise RuntimeError("web server is not listening")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_server(app: App, timeout: float = 10.0) -> WebServer:
    web = app.config.web
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
    log.info("serving http://%s:%s/healthz", web.host, web.port)
    return WebServer(server, thread)
