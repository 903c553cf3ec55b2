"""Servers for the Mastodon adapter tests: recorded cassettes, and mastodon-mock on loopback.

Response bodies come from a real Mastodon 4.6 server (tests/fixtures/mastodon, recorded
by Mastodon.py's test suite), sometimes re-sequenced or assembled (a recorded status inside a
recorded context shape), or from mastodon-mock, a third-party Mastodon API server run here on
127.0.0.1. No cassette holds a 404, so that one is Mastodon's documented error body.
"""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn
import vcr
import yaml
from mastodon import Mastodon
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

CASSETTES = Path(
    os.environ.get(
        "STORYBOT_MASTODON_CASSETTES",
        Path(__file__).resolve().parents[1] / "fixtures" / "mastodon",
    )
)
RECORDED_BASE = "http://localhost:3000"  # where the cassettes were recorded


# -- recorded traffic -----------------------------------------------------------------


@cache
def _interactions(name: str) -> tuple[dict[str, Any], ...]:
    path = CASSETTES / name
    if not path.is_file():
        pytest.fail(f"recorded Mastodon traffic is missing: {path}", pytrace=False)
    with path.open() as fh:
        data = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return tuple(data["interactions"])


def recorded(name: str, method: str, path_end: str, nth: int = 0) -> dict[str, Any]:
    """One recorded interaction (a deep copy): the ``nth`` whose path ends with ``path_end``."""
    hits = [
        i
        for i in _interactions(name)
        if i["request"]["method"] == method
        and i["request"]["uri"].split("?")[0].rstrip("/").endswith(path_end.rstrip("/"))
    ]
    if len(hits) <= nth:
        raise LookupError(f"{name} has no {method} …{path_end} #{nth}")
    interaction = copy.deepcopy(hits[nth])
    interaction["request"]["body"] = None  # matching is on method and path; uploads are big
    return interaction


def body(interaction: dict[str, Any]) -> Any:
    """The JSON a recorded interaction answered with."""
    return json.loads(interaction["response"]["body"]["string"])


def retarget(interaction: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    """The same recorded response, answering another request (for scripted sequences)."""
    interaction = copy.deepcopy(interaction)
    interaction["request"]["method"] = method
    interaction["request"]["uri"] = RECORDED_BASE + path
    return interaction


@contextmanager
def replay(tmp_path: Path, *interactions: dict[str, Any]) -> Iterator[None]:
    """Play ``interactions`` back in order (vcrpy, record mode none: nothing reaches a network)."""
    path = tmp_path / f"cassette-{len(list(tmp_path.glob('cassette-*')))}.yaml"
    path.write_text(yaml.safe_dump({"interactions": list(interactions), "version": 1}))
    player = vcr.VCR(record_mode="none", match_on=["method", "path"])
    with player.use_cassette(str(path)):
        yield


class RecordingSession(requests.Session):
    """A requests session that remembers what the adapter sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        self.sent.append((str(method), str(url), kwargs))
        return super().request(str(method), str(url), *args, **kwargs)

    def calls(self) -> list[str]:
        return [
            f"{m} {u.split('//', 1)[-1].split('/', 1)[-1].split('?')[0]}" for m, u, _ in self.sent
        ]


# -- mastodon-mock on loopback ----------------------------------------------------------

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


def reading_session() -> requests.Session:
    """HTTP for a test's own clients (followers, the judge): a read that meets a connection
    the server closed while idle (a keep-alive race on a busy machine) is asked again.
    Writes are never repeated: a follower's reply is posted once, as a person would."""
    session = requests.Session()
    retry = Retry(total=3, connect=3, read=2, status=0, allowed_methods={"GET"}, backoff_factor=0.2)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    return session


class MockMastodon:
    """mastodon-mock (seeded with alice, bob, carol) on 127.0.0.1 and a free port.

    ``ignore_idempotency`` strips the Idempotency-Key header before the server sees it, to
    stand in for servers that do not implement it. ``seen`` lists every request's method
    and path, fault-injected ones included.
    """

    def __init__(
        self,
        tmp_path: Path,
        *,
        version: str | None = None,
        ignore_idempotency: bool = False,
        context_limit: int | None = None,
    ) -> None:
        from mastodon_mock.app import create_app
        from mastodon_mock.config import DatabaseConfig, MastodonMockConfig, StreamingConfig
        from mastodon_mock.testing.seed import DEFAULT_TEST_SEED

        config = MastodonMockConfig(
            database=DatabaseConfig(path=":memory:"),
            seed=DEFAULT_TEST_SEED,
            streaming=StreamingConfig(enabled=False),
            media_storage_path=str(tmp_path / "mock-media"),
            url_scheme="http",
        )
        if version is not None:
            config.mocked_version = version
        self.domain = config.domain
        self.seen: list[str] = []
        self._app = create_app(config)
        self._ignore_idempotency = ignore_idempotency
        # Mastodon answers at most 4,096 descendants in a thread's context; mastodon-mock has
        # no such cap, so this cuts its real answer the way Mastodon would.
        self._context_limit = context_limit
        self._server = uvicorn.Server(
            uvicorn.Config(
                self._asgi, host="127.0.0.1", port=0, log_level="warning", interface="asgi3"
            )
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.base_url = ""

    async def _asgi(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] == "http":
            self.seen.append(f"{scope['method']} {scope['path']}")
            if self._ignore_idempotency:
                scope = dict(scope)
                scope["headers"] = [
                    (k, v) for k, v in scope["headers"] if k.lower() != b"idempotency-key"
                ]
            if self._context_limit is not None and str(scope["path"]).endswith("/context"):
                await self._capped_context(scope, receive, send)
                return
        await self._app(scope, receive, send)

    async def _capped_context(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def keep(message: Any) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await self._app(scope, receive, keep)
        body = b"".join(chunks)
        if start.get("status") == 200:
            data = json.loads(body)
            data["descendants"] = data["descendants"][: self._context_limit]
            body = json.dumps(data).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def __enter__(self) -> MockMastodon:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("mastodon-mock did not start")
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def seed_replies(self, username: str, in_reply_to: str, texts: list[str]) -> list[str]:
        """Many replies at once, through mastodon-mock's own status-creation path (the one its
        POST /api/v1/statuses runs: mentions, notifications and all), without an HTTP request
        each. Returns the new status ids."""
        from mastodon_mock.db.models import Account
        from mastodon_mock.routers.statuses import _create_status_from_params
        from sqlalchemy import select

        factory = self._app.state.session_factory
        with factory() as db:
            account = db.scalars(select(Account).where(Account.username == username)).one()
            made = [
                str(
                    _create_status_from_params(
                        db, account, {"status": text, "in_reply_to_id": in_reply_to}
                    ).id
                )
                for text in texts
            ]
            db.commit()
        return made

    def client(self, username: str) -> Mastodon:
        """A follower's own client (tokens are the mock's seeded ``<name>_token``)."""
        return Mastodon(
            access_token=f"{username}_token",
            api_base_url=self.base_url,
            version_check_mode="none",
            mastodon_version="4.0.0",
            ratelimit_method="throw",
            session=reading_session(),
        )

    def fault(
        self,
        path_regex: str,
        *,
        methods: list[str] | None = None,
        effect: str = "status",
        status: int | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        count: int | None = None,
    ) -> str:
        """Make the server misbehave (mastodon-mock's fault-injection control plane)."""
        spec: dict[str, Any] = {"type": effect}
        if status is not None:
            spec["status"] = status
        if body is not None:
            spec["body"] = body
        if headers is not None:
            spec["headers"] = headers
        rule = {
            "match": {"methods": methods, "path": None, "path_regex": path_regex},
            "effect": spec,
            "count": count,
        }
        answer = requests.post(f"{self.base_url}/api/v1/_mock/faults", json=rule, timeout=10)
        answer.raise_for_status()
        rule_id: str = answer.json()["id"]
        return rule_id

    def clear_faults(self) -> None:
        requests.delete(f"{self.base_url}/api/v1/_mock/faults", timeout=10).raise_for_status()
