"""Who may open /admin: a bearer token or a login cookie, or, when no token is set, a
request made on this machine straight to a server bound to loopback (never through a proxy).

The login cookie is ``v2.<issued>.<fingerprint>.<signature>``: when it was issued, a short
fingerprint of the token it was issued under, and an HMAC of both keyed by that token. It
stops working ``SESSION_HOURS`` after it was issued, and as soon as the operator sets
another token (the server reads the token once, at start), without any state kept.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from bot.config import Config
from bot.web.security import host_name, is_loopback

DEFAULT_TOKEN_ENV = "STORYBOT_ADMIN_TOKEN"
ADMIN_COOKIE = "storybot_admin"
SESSION_HOURS = 12
SESSION_SECONDS = SESSION_HOURS * 3600
_SKEW = 300  # seconds a cookie may seem to come from the future (clocks differ a little)
_VERSION = "v2"
# A reverse proxy says whom it forwards for in one of these; on loopback it means the
# request came from elsewhere, so a no-token dashboard must not answer it.
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto")


def token_env(config: Config) -> str:
    return config.web.admin_token_env


def proxied(request: Request) -> bool:
    """Whether a proxy says it passed this request on (any X-Forwarded-* or Forwarded)."""
    names = {name.lower() for name in request.headers}
    return any(name in PROXY_HEADERS or name.startswith("x-forwarded-") for name in names)


@dataclass(frozen=True)
class AdminAuth:
    token: str  # empty: no token configured
    env_name: str
    loopback_bind: bool
    clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)

    @classmethod
    def from_config(cls, config: Config) -> AdminAuth:
        env = token_env(config)
        return cls(os.environ.get(env, "").strip(), env, is_loopback(config.web.host))

    @property
    def fingerprint(self) -> str:
        """Names the token without giving it away: a new token makes old cookies void."""
        digest = hashlib.sha256(b"storybot-admin-fingerprint\x00" + self.token.encode())
        return digest.hexdigest()[:16]

    def _sign(self, issued: int, fingerprint: str) -> str:
        message = f"storybot-admin-session\x00{_VERSION}\x00{issued}\x00{fingerprint}"
        return hmac.new(self.token.encode(), message.encode(), hashlib.sha256).hexdigest()

    def session_cookie(self, issued: int | None = None) -> str:
        """What the login cookie holds: derived from the token, never the token itself."""
        when = int(self.clock()) if issued is None else issued
        return f"{_VERSION}.{when}.{self.fingerprint}.{self._sign(when, self.fingerprint)}"

    def token_matches(self, given: str) -> bool:
        return bool(self.token) and hmac.compare_digest(given.encode(), self.token.encode())

    def logged_in(self, request: Request) -> bool:
        """A login cookie session (the only kind "Log out" can end), issued under this very
        token within the last SESSION_HOURS."""
        cookie = request.cookies.get(ADMIN_COOKIE, "")
        if not self.token or cookie.count(".") != 3:
            return False
        version, issued, fingerprint, signature = cookie.split(".")
        if version != _VERSION or not (issued.isascii() and issued.isdigit()) or len(issued) > 12:
            return False
        if not hmac.compare_digest(fingerprint.encode(), self.fingerprint.encode()):
            return False  # issued under another token: revoked when the token changed
        expected = self._sign(int(issued), fingerprint)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return False
        age = self.clock() - int(issued)
        return -_SKEW <= age <= SESSION_SECONDS

    def allowed(self, request: Request) -> bool:
        if self.token:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and self.token_matches(given.strip()):
                return True
            return self.logged_in(request)
        # No token: only this machine, asked by a loopback name (a DNS-rebound page is not),
        # and not through a proxy on this machine (its client address is loopback too).
        client = request.client.host if request.client else ""
        return (
            self.loopback_bind
            and is_loopback(client)
            and is_loopback(host_name(request))
            and not proxied(request)
        )

    def why_not(self, request: Request | None = None) -> tuple[int, str]:
        """The status and message for a visitor who is not allowed in."""
        if self.token:
            return 401, "The dashboard needs the operator token."
        if self.loopback_bind and request is not None and proxied(request):
            return 403, (
                "This request came through a proxy: without an operator token the dashboard "
                f"answers on this machine only. Set {self.env_name} to serve it through one."
            )
        if self.loopback_bind:
            return 403, "Without an operator token the dashboard answers on this machine only."
        return 403, f"The dashboard is off: set {self.env_name} to serve it beyond this machine."

    def log_in(self, request: Request, response: Response) -> None:
        response.set_cookie(
            ADMIN_COOKIE,
            self.session_cookie(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/admin",
            max_age=SESSION_SECONDS,
        )

    @staticmethod
    def log_out(response: Response) -> None:
        response.delete_cookie(ADMIN_COOKIE, path="/admin", httponly=True, samesite="strict")
