"""Who may open /admin: a bearer token or a login cookie, or loopback alone when no token is set."""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from bot.config import Config
from bot.web.security import host_name, is_loopback

DEFAULT_TOKEN_ENV = "STORYBOT_ADMIN_TOKEN"
ADMIN_COOKIE = "storybot_admin"


def token_env(config: Config) -> str:
    return config.web.admin_token_env


@dataclass(frozen=True)
class AdminAuth:
    token: str  # empty: no token configured
    env_name: str
    loopback_bind: bool

    @classmethod
    def from_config(cls, config: Config) -> AdminAuth:
        env = token_env(config)
        return cls(os.environ.get(env, "").strip(), env, is_loopback(config.web.host))

    @property
    def session_value(self) -> str:
        """What the login cookie holds: derived from the token, never the token itself."""
        return hmac.new(
            self.token.encode(), b"storybot-admin-session-v1", hashlib.sha256
        ).hexdigest()

    def token_matches(self, given: str) -> bool:
        return bool(self.token) and hmac.compare_digest(given.encode(), self.token.encode())

    def logged_in(self, request: Request) -> bool:
        """A login cookie session (the only kind "Log out" can end)."""
        cookie = request.cookies.get(ADMIN_COOKIE, "")
        return (
            bool(self.token)
            and bool(cookie)
            and hmac.compare_digest(cookie.encode(), self.session_value.encode())
        )

    def allowed(self, request: Request) -> bool:
        if self.token:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and self.token_matches(given.strip()):
                return True
            return self.logged_in(request)
        # No token: only this machine, asked by a loopback name (a DNS-rebound page is not).
        client = request.client.host if request.client else ""
        return self.loopback_bind and is_loopback(client) and is_loopback(host_name(request))

    def why_not(self) -> tuple[int, str]:
        """The status and message for a visitor who is not allowed in."""
        if self.token:
            return 401, "The dashboard needs the operator token."
        if self.loopback_bind:
            return 403, "Without an operator token the dashboard answers on this machine only."
        return 403, f"The dashboard is off: set {self.env_name} to serve it beyond this machine."

    def log_in(self, request: Request, response: Response) -> None:
        response.set_cookie(
            ADMIN_COOKIE,
            self.session_value,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/admin",
            max_age=12 * 3600,
        )

    @staticmethod
    def log_out(response: Response) -> None:
        response.delete_cookie(ADMIN_COOKIE, path="/admin", httponly=True, samesite="strict")
