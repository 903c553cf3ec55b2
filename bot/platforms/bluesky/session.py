"""The bot's Bluesky session: created once with the app password, kept in a file, refreshed.

Bluesky limits ``createSession`` (30 per 5 minutes, 300 a day per account), and every
`storybot tick` is a new process: a login per process or per tick would soon be refused. The
session string (the SDK's ``export_session_string``: handle, DID, both tokens, the PDS) is kept
in a file of its own, mode 0600, replaced atomically whenever the SDK creates or refreshes it
(the access token is refreshed 15 minutes before it expires; refresh tokens last weeks). A
session the server no longer takes is read from the file again (another process may have
refreshed it meanwhile) and only then created anew from the app password.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from atproto_client import Client, SessionEvent
from atproto_client.request import Request

from bot.platforms.bluesky.errors import SessionExpired, translated
from story_state.errors import PermanentError

log = logging.getLogger(__name__)
T = TypeVar("T")
REQUEST_TIMEOUT_S = 60.0
_SEPARATOR = ":::"


class SessionFile:
    """One session string in a file readable only by its owner (None: kept in memory only)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def read(self) -> str | None:
        if self.path is None:
            return None
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read the Bluesky session file %s: %s", self.path, exc)
            return None
        return text or None

    def write(self, value: str) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(value + "\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except OSError as exc:
            # Posting goes on with the session in memory; the next process logs in again.
            log.warning("cannot keep the Bluesky session in %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()


def session_handle(value: str) -> str:
    """The handle a session string belongs to (its first field)."""
    return value.split(_SEPARATOR, 1)[0].lower()


class _Request(Request):  # type: ignore[misc]  # the SDK ships no type information
    """The SDK's request, sending raw bytes (blob uploads) as httpx wants them now."""

    def _send_request(self, method: str, url: str, **kwargs: Any) -> Any:
        if isinstance(kwargs.get("data"), bytes):
            # httpx 0.28 deprecates data=<bytes>, and warnings are errors in the tests.
            kwargs["content"] = kwargs.pop("data")
        return super()._send_request(method, url, **kwargs)


def make_client(service: str, timeout_s: float = REQUEST_TIMEOUT_S, **httpx_args: Any) -> Client:
    """An atproto client for ``service`` (the PDS or the entryway, e.g. https://bsky.social)."""
    return Client(base_url=service, request=_Request(timeout=timeout_s, **httpx_args))


class Account:
    """The logged-in client of the bot's account; the login happens at the first call."""

    def __init__(
        self,
        service: str,
        handle: str,
        password: Callable[[], str],
        store: SessionFile,
        *,
        client_factory: Callable[[str], Client] = make_client,
    ) -> None:
        self.service = service
        self.handle = handle.lstrip("@").lower()
        self._password = password
        self.store = store
        self._factory = client_factory
        self._client: Client | None = None
        self._lock = threading.Lock()
        self.logins = 0  # sessions created by this process (createSession calls)

    @property
    def client(self) -> Client:
        with self._lock:
            if self._client is None:
                self._client = self._open()
            return self._client

    @property
    def did(self) -> str:
        session = self.client._session
        assert session is not None
        return str(session.did)

    def _new_client(self) -> Client:
        client = self._factory(self.service)

        def keep(event: SessionEvent, session: Any) -> None:
            if event in (SessionEvent.CREATE, SessionEvent.REFRESH):
                self.store.write(session.export())
                if event is SessionEvent.REFRESH:
                    log.info("Bluesky session refreshed for %s", self.handle)

        client.on_session_change(keep)
        return client

    def _open(self) -> Client:
        saved = self.store.read()
        if saved and session_handle(saved) == self.handle:
            client = self._new_client()
            with translated("reading the saved Bluesky session"):
                client.login(session_string=saved, fetch_bsky_profile=False)
            return client
        return self._create()

    def _create(self) -> Client:
        password = self._password()
        if not password:
            raise PermanentError(
                f"no Bluesky app password for {self.handle}: "
                "run `storybot login bluesky --handle HANDLE`"
            )
        client = self._new_client()
        with translated(f"logging in to Bluesky as {self.handle}"):
            client.login(self.handle, password, fetch_bsky_profile=False)
        self.logins += 1
        log.info("Bluesky session created for %s", self.handle)
        return client

    def _renew(self, failed: Client) -> None:
        """After the server refused the session: the file's newer one, else a new login."""
        with self._lock:
            if self._client is not failed and self._client is not None:
                return  # another thread renewed it already
            current = failed.export_session_string() if failed._session else None
            saved = self.store.read()
            if saved and saved != current and session_handle(saved) == self.handle:
                client = self._new_client()
                with translated("reading the saved Bluesky session"):
                    client.login(session_string=saved, fetch_bsky_profile=False)
                self._client = client
                return
            self._client = self._create()

    def call(self, action: str, fn: Callable[[Client], T]) -> T:
        """``fn(client)`` with errors translated; a refused session is renewed once."""
        client = self.client
        try:
            with translated(action):
                return fn(client)
        except SessionExpired as exc:
            log.info("%s; logging in again", exc)
            self._renew(client)
        with translated(action):
            return fn(self.client)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.request.close()
                self._client = None
