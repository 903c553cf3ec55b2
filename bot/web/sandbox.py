"""The public sandbox: the thread, a live JSON view of it, follower actions and the clips."""

from __future__ import annotations

import mimetypes
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.platforms.local import LocalAction, LocalActionError, LocalPlatform
from bot.web.context import WebContext, client_key, done
from bot.web.names import NAME_COOKIE, Identity, NameBook, NameTaken, new_browser_id
from bot.web.security import WebError, attach_csrf_cookie, csrf_token, verified_form
from bot.web.thread import bot_view, media_file, replies_view, thread_version, thread_view
from bot.web.verdict import normalise, predict, too_long


class Sandbox:
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        self.names = NameBook(ctx.app.factory, ctx.app.config.platforms.local.bot_name)

    def identity(self, request: Request) -> Identity | None:
        """Who this browser is: only a name it claimed, proved by the signed cookie."""
        return self.names.read(request.cookies.get(NAME_COOKIE))

    def _local(self) -> LocalPlatform:
        if self.ctx.app.local is None:
            raise WebError(404, "The local sandbox is not enabled in this bot's config.")
        return self.ctx.app.local

    def _bot_view(self) -> dict[str, Any]:
        """The bot's posts and the top of the page, no replies: enough for a vote or reply."""
        return bot_view(self.ctx.app, self.ctx.now())

    async def page(self, request: Request) -> Response:
        view = await run_in_threadpool(thread_view, self.ctx.app, self.ctx.now())
        who = await run_in_threadpool(self.identity, request)
        return self.ctx.page(
            request,
            "sandbox.html",
            view=view,
            visitor=who.name if who else None,
            local=self.ctx.app.local is not None,
            max_reply=self.ctx.app.config.moderation.max_length,
        )

    async def api_thread(self, request: Request) -> Response:
        now = self.ctx.now()
        version = await run_in_threadpool(thread_version, self.ctx.app, now)
        etag = f'"{version}"'
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == etag:  # before a single post is read
            return Response(status_code=304, headers=headers)
        view = await run_in_threadpool(thread_view, self.ctx.app, now, version)
        post_macro = self._macro()
        token = csrf_token(request)
        more = view["more"]  # a new post's link to its older replies comes with it
        posts = [{**p, "html": str(post_macro(p, token, {}, more))} for p in view["posts"]]
        body = {k: view[k] for k in ("version", "story", "open_poll", "empty", "now")}
        response = JSONResponse({**body, "posts": posts}, headers=headers)
        attach_csrf_cookie(request, response)
        return response

    def _macro(self) -> Any:
        return self.ctx.templates.get_template("_post.html").module.post  # type: ignore[attr-defined]

    async def _replies(self, request: Request) -> dict[str, Any]:
        before_arg = request.query_params.get("before")
        before = None
        if before_arg is not None:
            if not (before_arg.isascii() and before_arg.isdigit()) or len(before_arg) > 18:
                raise WebError(400, f"{before_arg!r} is not a post id.")
            before = int(before_arg)
        post_id = int(request.path_params["id"])
        if post_id >= 2**62:  # a post id the database could not even hold
            raise WebError(404, f"There is no post {post_id}.")
        view = await run_in_threadpool(replies_view, self.ctx.app, post_id, before, self.ctx.now())
        if view is None:
            raise WebError(404, f"There is no post {post_id}.")
        return view

    async def replies_page(self, request: Request) -> Response:
        """A page of older replies, for a browser without the page's script."""
        view = await self._replies(request)
        return self.ctx.page(request, "replies.html", **view)

    async def api_replies(self, request: Request) -> Response:
        """The same page as HTML to insert above the replies shown, and the next link."""
        view = await self._replies(request)
        post_macro = self._macro()
        token = csrf_token(request)
        html = "".join(
            str(post_macro(p, token, view["children"], view["more"])) for p in view["posts"]
        )
        response = JSONResponse(
            {"html": html, "count": len(view["posts"]), "more": view["older"]},
            headers={"Cache-Control": "no-cache"},
        )
        attach_csrf_cookie(request, response)
        return response

    async def _act(
        self, request: Request, action: LocalAction, option: str | None = None
    ) -> Response:
        local = self._local()
        try:
            line = await run_in_threadpool(local.act, action)
        except LocalActionError as exc:
            return done(request, False, str(exc), "/", 400)
        return done(request, True, _friendly(action, line, option), "/")

    async def _who(self, request: Request) -> str:
        who = await run_in_threadpool(self.identity, request)
        if who is None:
            raise WebError(400, "Choose a display name first (top of the page).")
        self.ctx.limits.clients.check(client_key(request), "this address")
        return who.name

    async def set_name(self, request: Request) -> Response:
        form = await verified_form(request)
        self.ctx.limits.names.check(client_key(request), "this address")
        held = await run_in_threadpool(self.identity, request)
        browser = held.browser if held is not None else new_browser_id()
        try:
            who = await run_in_threadpool(self.names.claim, form.get("name", ""), browser)
        except NameTaken as exc:
            return done(request, False, str(exc), "/", 409)
        except LocalActionError as exc:
            return done(request, False, str(exc), "/", 400)
        response = done(
            request,
            True,
            f"Welcome, {who.name}! This name is now yours in this browser.",
            "/",
            name=who.name,
        )
        cookie = await run_in_threadpool(self.names.cookie, who)
        response.set_cookie(
            NAME_COOKIE,
            cookie,
            max_age=365 * 24 * 3600,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    async def reply(self, request: Request) -> Response:
        form = await verified_form(request)
        name = await self._who(request)
        local = self._local()
        text = normalise(form.get("text", ""))
        refused = too_long(text, self.ctx.app.config.moderation.max_length)
        if refused is not None:
            return done(request, False, refused.message, "/", 400, verdict=refused.kind)
        self.ctx.limits.replies.check(name.casefold(), name)
        to = form.get("to", "").strip()
        if not to:
            view = await run_in_threadpool(self._bot_view)
            answer = view["now"]["answer"]
            if answer is None:
                return done(request, False, "The story has not posted anything yet.", "/", 400)
            to = answer["post"]
        if not (to.isascii() and to.isdigit()):
            return done(request, False, f"{to!r} is not a post id.", "/", 400)
        outlook = await run_in_threadpool(predict, self.ctx.app, name, text, int(to))
        try:
            await run_in_threadpool(local.act, LocalAction(name, reply=text, to=to))
        except LocalActionError as exc:
            return done(request, False, str(exc), "/", 400)
        return done(request, True, outlook.message, "/", verdict=outlook.kind)

    async def vote(self, request: Request) -> Response:
        form = await verified_form(request)
        name = await self._who(request)
        self.ctx.limits.votes.check(name.casefold(), name)
        view = await run_in_threadpool(self._bot_view)
        if view["open_poll"] is None or form.get("poll") != view["open_poll"]:
            return done(request, False, "That poll has closed; vote in the newest one.", "/", 400)
        choice = form.get("option", "")
        poll = next(p["poll"] for p in view["posts"] if p["id"] == view["open_poll"])
        whole = next((o["label"] for o in poll["options"] if str(o["position"]) == choice), None)
        return await self._act(request, LocalAction(name, vote=choice), whole)

    async def like(self, request: Request) -> Response:
        form = await verified_form(request)
        name = await self._who(request)
        self.ctx.limits.votes.check(name.casefold(), name)
        return await self._act(request, LocalAction(name, like=form.get("post", "")))

    async def media(self, request: Request) -> Response:
        rel = str(request.path_params["path"])
        # Only what the bot posted, and only inside the media root even through a symlink.
        target = await run_in_threadpool(media_file, self.ctx.app, rel)
        if target is None or not target.is_file():
            raise WebError(404, "There is no such clip.")
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return FileResponse(target, media_type=kind, headers={"Cache-Control": "max-age=300"})


def _friendly(action: LocalAction, line: str, option: str | None = None) -> str:
    if action.vote is not None:
        return f"Vote counted: {option or line.split(': ', 1)[-1]}."
    return "Liked."


def routes(ctx: WebContext) -> list[BaseRoute]:
    s = Sandbox(ctx)
    return [
        Route("/", s.page),
        Route("/api/thread", s.api_thread),
        Route("/replies/{id:int}", s.replies_page),
        Route("/api/replies/{id:int}", s.api_replies),
        Route("/name", s.set_name, methods=["POST"]),
        Route("/reply", s.reply, methods=["POST"]),
        Route("/vote", s.vote, methods=["POST"]),
        Route("/like", s.like, methods=["POST"]),
        Route("/media/{path:path}", s.media, methods=["GET", "HEAD"]),
    ]
