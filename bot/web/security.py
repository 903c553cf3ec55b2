"""Web safety: CSRF double-submit with an Origin check, form reading, rate limits, headers."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
import time
from collections import deque
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE = "storybot_csrf"
CSRF_FIELD = "csrf"
# A reply is at most 2000 characters (the sandbox's cap); url-encoded UTF-8 takes up to 12
# bytes a character, so even the largest one fits.
MAX_FORM_BYTES = 32 * 1024

CSP = (
    "default-src 'self'; media-src 'self'; img-src 'self'; script-src 'self'; "
    "style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class WebError(Exception):
    """Ends a request with ``status`` and a message a person can read."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(request: Request) -> str:
    """The Host header without its port (brackets kept off IPv6 literals)."""
    return urlsplit(f"//{request.headers.get('host', '')}").hostname or ""


# -- CSRF -----------------------------------------------------------------------------


def csrf_token(request: Request) -> str:
    """This visitor's token: the cookie's, or a new one that the response will set."""
    held = getattr(request.state, "csrf", None)
    if isinstance(held, str):
        return held
    token = request.cookies.get(CSRF_COOKIE, "")
    if len(token) != 64 or any(c not in "0123456789abcdef" for c in token):
        token = secrets.token_hex(32)
        request.state.csrf_new = True
    request.state.csrf = token
    return token


def attach_csrf_cookie(request: Request, response: Response) -> None:
    if getattr(request.state, "csrf_new", False):
        response.set_cookie(
            CSRF_COOKIE,
            csrf_token(request),
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )


def _check_origin(request: Request) -> None:
    """A browser names the page a POST came from; it must be this very host."""
    host = request.headers.get("host", "")
    origin = request.headers.get("origin")
    if origin is not None:
        if origin == "null" or urlsplit(origin).netloc != host:
            raise WebError(403, "This form was sent from another site; reload the page and retry.")
        return
    referer = request.headers.get("referer")
    if referer is None or urlsplit(referer).netloc != host:
        raise WebError(403, "The request did not say which page sent it; reload and retry.")


async def read_form(request: Request) -> dict[str, str]:
    """An url-encoded form body, size-limited; repeated fields keep the first value."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise WebError(413, "That form is too large.")
    form: dict[str, str] = {}
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise WebError(400, "The form was not UTF-8 text.") from None
    for key, value in pairs:
        form.setdefault(key, value)
    return form


async def verified_form(request: Request) -> dict[str, str]:
    """Read a POSTed form after the Origin/Referer check and the double-submit token check."""
    _check_origin(request)
    form = await read_form(request)
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.pop(CSRF_FIELD, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise WebError(403, "Your session token did not match; reload the page and retry.")
    return form


# -- rate limits ----------------------------------------------------------------------


class RateLimiter:
    """At most ``limit`` hits per ``window`` seconds per key, kept in memory."""

    def __init__(self, limit: int, window: float, what: str, max_keys: int = 50_000) -> None:
        self.limit = limit
        self.window = window
        self.what = what
        self._max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str, who: str) -> None:
        """Record a hit for ``key`` or raise a 429 that says when to try again."""
        now = time.monotonic()
        with self._lock:
            if len(self._hits) >= self._max_keys:
                self._prune(now)
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                wait = max(1, int(hits[0] + self.window - now + 0.999))
                raise WebError(
                    429,
                    f"Slow down: {who} can send {self.limit} {self.what} a minute. "
                    f"Try again in {wait} s.",
                    {"Retry-After": str(wait)},
                )
            hits.append(now)

    def _prune(self, now: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
            del self._hits[key]
        if len(self._hits) >= self._max_keys:
            self._hits.clear()  # under a flood of names, forgetting beats running out of memory


# -- headers --------------------------------------------------------------------------


class SecurityHeaders:
    """Adds the same security headers to every response, static files and errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in HEADERS if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)
