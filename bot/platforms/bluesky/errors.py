"""The atproto SDK's exceptions → storybot's error tree, in one place.

What the reference PDS answers (../shared/servers/bluesky, checked there): a record that is not
found is HTTP 400 ``RecordNotFound`` (``NotFound`` for a thread); a record key that is taken
already is HTTP 500 ``InternalServerError`` (so a failed create is always looked up before it is
believed); an over-long post is 400 ``InvalidRequest``; a blob over the limit is 413
``PayloadTooLarge``; a rate limit is 429 with ``ratelimit-reset`` (Unix seconds).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx
from atproto_client.exceptions import (
    BadRequestError,
    InvokeTimeoutError,
    LoginRequiredError,
    NetworkError,
    RateLimitExceededError,
    RequestErrorBase,
    UnauthorizedError,
)
from atproto_core.exceptions import AtProtocolError

from story_state.errors import PermanentError, PlatformError, RateLimited, TransientError

# Errors that mean the session (not the request) is bad: log in again, then try once more.
SESSION_ERRORS = frozenset({"ExpiredToken", "InvalidToken", "AuthenticationRequired"})
NOT_FOUND = frozenset({"RecordNotFound", "NotFound"})
LOGIN_HINT = "Check the app password with `storybot login bluesky --handle HANDLE`."


class SessionExpired(PermanentError):
    """The server no longer takes the session's tokens (the adapter logs in again once)."""


class NotFound(PermanentError):
    """The record or post is not there (never made, or deleted)."""


def status_of(exc: BaseException) -> tuple[int | None, str, str]:
    """(HTTP status, XRPC error name, message) of an SDK request error; Nones where absent."""
    response = getattr(exc, "response", None)
    if response is None:
        return None, "", str(exc) or type(exc).__name__
    content = response.content
    error = str(getattr(content, "error", "") or "")
    message = str(getattr(content, "message", "") or "")
    return int(response.status_code), error, message or error or str(response.status_code)


def reset_at(exc: RateLimitExceededError) -> datetime | None:
    """When the limit resets: ``ratelimit-reset``, else ``retry-after`` from now."""
    found: datetime | None = exc.reset_at
    if found is not None:
        return found.astimezone(UTC)
    after = exc.retry_after
    if after is not None:
        return datetime.fromtimestamp(datetime.now(UTC).timestamp() + after, UTC)
    return None


def translate(exc: AtProtocolError, action: str) -> PlatformError:
    """The storybot error for an SDK error raised while doing ``action``."""
    status, error, message = status_of(exc)
    where = f"while {action}" + (
        f": HTTP {status} {error}: {message}" if status else f": {message}"
    )
    if isinstance(exc, RateLimitExceededError):
        return RateLimited(f"Bluesky rate limit hit {where}", reset_at(exc))
    if isinstance(exc, LoginRequiredError):
        return SessionExpired(f"not logged in to Bluesky {where}")
    if error in SESSION_ERRORS or (isinstance(exc, UnauthorizedError) and status == 401):
        return SessionExpired(f"Bluesky refused the session {where}. {LOGIN_HINT}")
    if error in NOT_FOUND:
        return NotFound(f"not found {where}")
    if isinstance(exc, InvokeTimeoutError) or (isinstance(exc, NetworkError) and status is None):
        return TransientError(f"network error {where}")
    if isinstance(exc, UnauthorizedError):
        return PermanentError(f"Bluesky refused {where}. {LOGIN_HINT}")
    if isinstance(exc, BadRequestError) or status == 413:
        return PermanentError(f"Bluesky refused the request {where}")
    if isinstance(exc, RequestErrorBase) and status is not None and status < 500:
        if status in (408, 409, 425):
            return TransientError(f"temporary refusal {where}")
        return PermanentError(f"Bluesky refused the request {where}")
    if isinstance(exc, RequestErrorBase):
        return TransientError(f"server error {where}")
    # A model error: the answer did not have the shape the lexicon promises.
    return TransientError(f"unreadable answer from Bluesky {where}")


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Run SDK calls; their errors leave as RateLimited, TransientError or PermanentError."""
    try:
        yield
    except AtProtocolError as exc:
        raise translate(exc, action) from exc
    except httpx.TransportError as exc:  # the SDK passes some of httpx's errors through as-is
        raise TransientError(f"network error while {action}: {exc!r}") from exc
