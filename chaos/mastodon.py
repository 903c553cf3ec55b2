"""mastodon-mock on loopback, with Idempotency-Key switched off, for the chaos harness.

mastodon-mock (a third-party Mastodon API server) honours Idempotency-Key as Mastodon does,
and has no setting to stop: the harness strips the header before the mock sees it, which
stands in for the servers that ignore it (Takahe, older Pleroma). Then only the adapter's own
look-up before a retry stands between a killed runner and a duplicate post. The server runs
in a thread of the harness's process on 127.0.0.1 and a free port, its database in memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chaos.remote import ApiServer, probe_idempotency
from chaos.world import FOLLOWERS

BOT = "storybot"
START_TIMEOUT_S = 20.0

Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]


class _KeylessMock:
    """The mock's ASGI app behind a filter that drops Idempotency-Key (and counts it)."""

    def __init__(self, app: Any, *, idempotency: bool) -> None:
        self.app = app
        self.idempotency = idempotency
        self.dropped = 0

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.idempotency:
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"idempotency-key"]
            if len(headers) != len(scope["headers"]):
                self.dropped += 1
                scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


@contextmanager
def running_mock(workdir: Path, *, idempotency: bool = False) -> Iterator[ApiServer]:
    """mastodon-mock seeded with the bot and the followers (tokens ``<name>_token``)."""
    import uvicorn
    from mastodon_mock.app import create_app
    from mastodon_mock.config import (
        DatabaseConfig,
        MastodonMockConfig,
        SeedAccount,
        SeedConfig,
        StreamingConfig,
    )

    names = (BOT, *FOLLOWERS)
    seed = SeedConfig(
        accounts=[
            SeedAccount(
                username=name,
                display_name=name.capitalize(),
                access_token=f"{name}_token",
                bot=name == BOT,
            )
            for name in names
        ]
    )
    config = MastodonMockConfig(
        database=DatabaseConfig(path=":memory:"),
        seed=seed,
        streaming=StreamingConfig(enabled=False),
        media_storage_path=str(workdir / "mock-media"),
        url_scheme="http",
    )
    app = _KeylessMock(create_app(config), idempotency=idempotency)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", interface="asgi3")
    )
    thread = threading.Thread(target=server.run, name="mastodon-mock", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("mastodon-mock did not start")
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        label = "mastodon-mock" if not idempotency else "mastodon-mock+idempotency"
        url = f"http://127.0.0.1:{port}"
        tokens = {name: f"{name}_token" for name in names}
        probe = ApiServer(label, url, tokens, {name: name for name in names}, BOT)
        honoured = probe_idempotency(probe)
        if honoured != idempotency:
            raise RuntimeError(f"mastodon-mock: Idempotency-Key honoured is {honoured}")

        def notes() -> list[str]:
            said = "honoured" if honoured else "ignored (probe: one key, two posts, two statuses)"
            return [
                f"{label}: Idempotency-Key {said}",
                f"{label}: Idempotency-Key headers stripped before the server: {app.dropped}",
            ]

        yield ApiServer(label, url, tokens, probe.accts, BOT, notes)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
