"""What every web handler shares: the app, templates, admin auth, rate limits, replies."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from bot.app import App
from bot.web.auth import AdminAuth
from bot.web.security import CSRF_FIELD, RateLimiter, WebError, attach_csrf_cookie, csrf_token

HERE = Path(__file__).parent
FLASH_COOKIE = "storybot_flash"


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template is HTML: user text is always escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.globals["csrf_field"] = CSRF_FIELD
    return env


@dataclass
class Limits:
    """In-memory rate limits; a restart forgets them, which is fine for a sandbox."""

    replies: RateLimiter = field(default_factory=lambda: RateLimiter(5, 60, "replies"))
    votes: RateLimiter = field(default_factory=lambda: RateLimiter(20, 60, "votes and likes"))
    clients: RateLimiter = field(default_factory=lambda: RateLimiter(60, 60, "actions"))
    names: RateLimiter = field(default_factory=lambda: RateLimiter(10, 60, "name changes"))
    logins: RateLimiter = field(default_factory=lambda: RateLimiter(10, 60, "login attempts"))


@dataclass
class WebContext:
    app: App
    auth: AdminAuth
    templates: jinja2.Environment = field(default_factory=make_templates)
    limits: Limits = field(default_factory=Limits)

    def now(self) -> datetime:
        return self.app.runner.clock()

    def render(self, request: Request, template: str, **values: Any) -> str:
        return self.templates.get_template(template).render(
            csrf=csrf_token(request), flash=read_flash(request), **values
        )

    def page(self, request: Request, template: str, status: int = 200, **values: Any) -> Response:
        response = HTMLResponse(self.render(request, template, **values), status)
        attach_csrf_cookie(request, response)
        if FLASH_COOKIE in request.cookies:
            response.delete_cookie(FLASH_COOKIE, path="/")
        return response

    def error_page(self, request: Request, error: WebError) -> Response:
        if wants_json(request):
            body = {"ok": False, "message": error.message}
            return JSONResponse(body, error.status, headers=error.headers)
        response = self.page(request, "error.html", error.status, message=error.message)
        response.headers.update(error.headers)
        return response


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def client_key(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def read_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    kind, _, text = unquote(raw).partition("|")
    return {"kind": "ok" if kind == "ok" else "error", "text": text[:500]}


def done(
    request: Request, ok: bool, message: str, back: str, status: int = 200, **extra: Any
) -> Response:
    """JSON for the page's script; for a plain form post, back to the page with a flash note."""
    if wants_json(request):
        return JSONResponse({"ok": ok, "message": message, **extra}, status)
    response = RedirectResponse(back, status_code=303)
    flash = quote(f"{'ok' if ok else 'error'}|{message[:500]}", safe="")
    response.set_cookie(FLASH_COOKIE, flash, httponly=True, samesite="lax", path="/", max_age=60)
    return response
