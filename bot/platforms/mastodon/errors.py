"""Mastodon.py's exceptions → storybot's error tree, in one place."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from mastodon import Mastodon
from mastodon.errors import (
    MastodonAPIError,
    MastodonError,
    MastodonIllegalArgumentError,
    MastodonIOError,
    MastodonNetworkError,
    MastodonRatelimitError,
    MastodonVersionError,
)

from story_state.errors import PermanentError, RateLimited, TransientError

# Some servers answer 500 where Mastodon answers 422; these words mean the request was refused.
_VALIDATION = re.compile(
    r"validation|can't be blank|can not be blank|too long|too many|is invalid|not allowed|"
    r"unprocessable|must be|already",
    re.IGNORECASE,
)
_RETRYABLE_4XX = {408, 409, 425, 429}


def error_status(exc: MastodonAPIError) -> tuple[int | None, str]:
    """(HTTP status, the server's error text) from Mastodon.py's exception arguments."""
    # Mastodon.py raises ex_type('Mastodon API returned error', status, reason, error_msg).
    args = exc.args
    status = args[1] if len(args) > 1 and isinstance(args[1], int) else None
    if len(args) > 3 and args[3]:
        message = str(args[3])
    elif len(args) > 2 and status is not None:
        message = str(args[2])
    else:
        message = " ".join(str(a) for a in args)
    return status, message


def reset_at(client: Mastodon) -> datetime | None:
    """When the rate limit resets, from the last X-RateLimit-Reset header Mastodon.py saw."""
    reset = client.ratelimit_reset
    if isinstance(reset, int | float) and reset > 0:
        return datetime.fromtimestamp(reset, UTC)
    return None


@contextmanager
def translated(client: Mastodon, action: str, *, creating_status: bool = False) -> Iterator[None]:
    """Run a Mastodon.py call; its errors leave as RateLimited, TransientError or PermanentError."""
    try:
        yield
    except MastodonRatelimitError as exc:
        raise RateLimited(f"Mastodon rate limit hit while {action}", reset_at(client)) from exc
    except MastodonNetworkError as exc:
        raise TransientError(f"network error while {action}: {exc}") from exc
    except (MastodonIOError, MastodonIllegalArgumentError, MastodonVersionError) as exc:
        raise PermanentError(f"cannot {action}: {exc}") from exc
    except MastodonAPIError as exc:
        raise _api_error(exc, action, creating_status) from exc
    except MastodonError as exc:
        raise TransientError(f"Mastodon error while {action}: {exc}") from exc


def _api_error(
    exc: MastodonAPIError, action: str, creating_status: bool
) -> PermanentError | TransientError:
    status, message = error_status(exc)
    if status is None:
        # No status: the body was not JSON (a proxy's error page, a truncated answer).
        return TransientError(f"unreadable answer from the server while {action}: {message}")
    where = f"while {action}: HTTP {status}: {message}"
    if status == 401:
        return PermanentError(
            f"the Mastodon server refused the access token {where}. "
            "Get a new one with `storybot login mastodon --instance URL`."
        )
    if status >= 500:
        if creating_status and status == 500 and _VALIDATION.search(message):
            return PermanentError(f"the server refused the post {where}")
        return TransientError(f"server error {where}")
    if status in _RETRYABLE_4XX:
        return TransientError(f"temporary refusal {where}")
    return PermanentError(f"request refused {where}")
