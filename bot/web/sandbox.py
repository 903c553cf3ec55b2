"""The public sandbox: the thread, a live JSON view of it, follower actions and the clips."""

from __future__ import annotations

import mimetypes
from typing import Any
from urllib.parse import quote, unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.platforms.local import LocalAction, LocalActionError, LocalPlatform
from bot.platforms.local import check_name as check_local_name
from bot.web.context import WebContext, client_key, done
from bot.web.security import WebError, attach_csrf_cookie, csrf_token, verified_form
from bot.web.thread import posted_media, thread_view

NAME_COOKIE = "storybot_name"


def visitor_name(request: Request) -> str | None:
    raw = request.cookies.get(NAME_COOKIE)
    if not raw:
        return None
    try:
        return check_local_name(unquote(raw))
    except LocalActionError:
        return None


class Sandbox:
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def _local(self) -> LocalPlatform:
        if self.ctx.app.local is None:
            raise WebError(404, "The local sandbox is not enabled in this bot's config.")
        return self.ctx.app.local

    def _view(self) -> dict[str, Any]:
        return thread_view(self.ctx.app, self.ctx.now())

    async def page(self, request: Request) -> Response:
        view = await run_in_threadpool(self._view)
        return self.ctx.page(
            request,
            "sandbox.html",
            view=view,
            visitor=visitor_name(request),
            local=self.ctx.app.local is not None,
        )

    async def api_thread(self, request: Request) -> Response:
        view = await run_in_threadpool(self._view)
        etag = f'"{view["version"]}"'
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        post_macro = self.ctx.templates.get_template("_post.html").module.post  # type: ignore[attr-defined]
        token = csrf_token(request)
        posts = [{**p, "html": str(post_macro(p, token, {}))} for p in view["posts"]]
        body = {k: view[k] for k in ("version", "story", "open_poll", "empty")}
        response = JSONResponse({**body, "posts": posts}, headers=headers)
        attach_csrf_cookie(request, response)
        return response

    async def _act(self, request: Request, action: LocalAction) -> Response:
        local = self._local()
        try:
            line = await run_in_threadpool(local.act, action)
        except LocalActionError as exc:
            return done(request, False, str(exc), "/", 400)
        return done(request, True, _friendly(action, line), "/")

    def _who(self, request: Request) -> str:
        name = visitor_name(request)
        if name is None:
            raise WebError(400, "Choose a display name first (top of the page).")
        self.ctx.limits.clients.check(client_key(request), "this address")
        return name

    async def set_name(self, request: Request) -> Response:
        form = await verified_form(request)
        self.ctx.limits.names.check(client_key(request), "this address")
        try:
            name = check_local_name(form.get("name", ""))
        except LocalActionError as exc:
            return done(request, False, str(exc), "/", 400)
        if name.casefold() == self.ctx.app.config.platforms.local.bot_name.casefold():
            return done(request, False, "That name belongs to the bot; choose another.", "/", 400)
        response = done(
            request, True, f"Welcome, {name}! Vote, like and reply below.", "/", name=name
        )
        response.set_cookie(
            NAME_COOKIE,
            quote(name, safe=""),
            max_age=365 * 24 * 3600,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    async def reply(self, request: Request) -> Response:
        form = await verified_form(request)
        name = self._who(request)
        self.ctx.limits.replies.check(name.casefold(), name)
        action = LocalAction(name, reply=form.get("text", ""), to=form.get("to") or None)
        return await self._act(request, action)

    async def vote(self, request: Request) -> Response:
        form = await verified_form(request)
        name = self._who(request)
        self.ctx.limits.votes.check(name.casefold(), name)
        view = await run_in_threadpool(self._view)
        if view["open_poll"] is None or form.get("poll") != view["open_poll"]:
            return done(request, False, "That poll has closed; vote in the newest one.", "/", 400)
        return await self._act(request, LocalAction(name, vote=form.get("option", "")))

    async def like(self, request: Request) -> Response:
        form = await verified_form(request)
        name = self._who(request)
        self.ctx.limits.votes.check(name.casefold(), name)
        return await self._act(request, LocalAction(name, like=form.get("post", "")))

    async def media(self, request: Request) -> Response:
        rel = str(request.path_params["path"])
        allowed = await run_in_threadpool(posted_media, self.ctx.app)
        target = allowed.get(rel)
        root = self.ctx.app.runner.media_root.resolve()
        # Only what the bot posted, and only inside the media root even through a symlink.
        if target is None or not target.resolve().is_relative_to(root) or not target.is_file():
            raise WebError(404, "There is no such clip.")
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return FileResponse(target, media_type=kind, headers={"Cache-Control": "max-age=300"})


def _friendly(action: LocalAction, line: str) -> str:
    if action.reply is not None:
        return (
            f"Thanks, {action.actor}! Your idea is in the thread and counts when the round closes."
        )
    if action.vote is not None:
        return f"Vote counted: {line.split(': ', 1)[-1]}."
    return "Liked."


def routes(ctx: WebContext) -> list[BaseRoute]:
    s = Sandbox(ctx)
    return [
        Route("/", s.page),
        Route("/api/thread", s.api_thread),
        Route("/name", s.set_name, methods=["POST"]),
        Route("/reply", s.reply, methods=["POST"]),
        Route("/vote", s.vote, methods=["POST"]),
        Route("/like", s.like, methods=["POST"]),
        Route("/media/{path:path}", s.media, methods=["GET", "HEAD"]),
    ]
