"""The operator dashboard at /admin: the round, moderation, making-of, health, and controls."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.loop.runner import MAIN
from bot.operator import actions as operator
from bot.operator import audit
from bot.operator.actions import OperatorError
from bot.web.context import WebContext, client_key, done
from bot.web.dashboard import dashboard, episode_file
from bot.web.security import WebError, verified_form
from bot.web.story_tools import CUT_NAME, CutJob, bible, tree
from story_state.db import session_scope
from story_state.errors import StorybotError

log = logging.getLogger(__name__)
Handler = Callable[[Request], Awaitable[Response]]


class Admin:
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        self.cut = CutJob(ctx.app)  # in memory: a restart forgets a finished cut's note

    def _require(self, request: Request) -> None:
        if not self.ctx.auth.allowed(request):
            status, message = self.ctx.auth.why_not(request)
            headers = {"WWW-Authenticate": 'Bearer realm="storybot admin"'} if status == 401 else {}
            raise WebError(status, message, headers)

    async def page(self, request: Request) -> Response:
        if not self.ctx.auth.allowed(request):
            status, message = self.ctx.auth.why_not(request)
            if status == 401:
                response = self.ctx.page(request, "login.html", 401, message=message)
                response.headers["WWW-Authenticate"] = 'Bearer realm="storybot admin"'
                return response
            raise WebError(status, message)
        data = await run_in_threadpool(dashboard, self.ctx.app)
        return self._page(request, "admin.html", cut=self.cut.snapshot(), **data)

    def _page(self, request: Request, template: str, **values: Any) -> Response:
        response = self.ctx.page(
            request,
            template,
            title="storybot — operator",
            logged_in=self.ctx.auth.logged_in(request),
            **values,
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    async def bible_page(self, request: Request) -> Response:
        self._require(request)
        data = await run_in_threadpool(bible, self.ctx.app)
        return self._page(request, "bible.html", kinds=operator.LORE_KINDS, **data)

    async def branches_page(self, request: Request) -> Response:
        self._require(request)
        data = await run_in_threadpool(tree, self.ctx.app)
        return self._page(request, "branches.html", **data)

    async def cut_status(self, request: Request) -> Response:
        self._require(request)
        state = self.cut.snapshot()
        body = {**asdict(state), "url": f"/admin/cuts/{state.name}" if state.name else None}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def cut_file(self, request: Request) -> Response:
        self._require(request)
        name = request.path_params["name"]
        root = self.cut.folder.resolve()
        target = (root / name).resolve()
        if not CUT_NAME.match(name) or not target.is_relative_to(root) or not target.is_file():
            raise WebError(404, "That file is not there (yet).")
        return FileResponse(target, media_type="video/mp4", headers={"Cache-Control": "no-store"})

    async def login(self, request: Request) -> Response:
        form = await verified_form(request)
        self.ctx.limits.logins.check(client_key(request), "this address")
        if not self.ctx.auth.token_matches(form.get("token", "").strip()):
            log.warning("admin login failed from %s", client_key(request))
            return self.ctx.page(request, "login.html", 401, message="That token is not right.")
        response = RedirectResponse("/admin", status_code=303)
        self.ctx.auth.log_in(request, response)
        return response

    async def logout(self, request: Request) -> Response:
        await verified_form(request)
        response = RedirectResponse("/admin", status_code=303)
        self.ctx.auth.log_out(response)
        return response

    def action(
        self, work: Callable[[Request, dict[str, str]], str], anchor: str, page: str = "/admin"
    ) -> Handler:
        """A dashboard button: auth, CSRF, the work in a thread, then back with a note."""

        async def handler(request: Request) -> Response:
            self._require(request)
            form = await verified_form(request)
            try:
                line = await run_in_threadpool(work, request, form)
            except StorybotError as exc:
                await self._log(request, False, str(exc))
                return done(request, False, str(exc), f"{page}#{anchor}", 409)
            except SQLAlchemyError as exc:  # e.g. the scheduler closed the same round just now
                log.warning("dashboard action failed: %s", exc)
                await self._log(request, False, f"database error: {type(exc).__name__}")
                return done(
                    request, False, "The database refused that; reload and retry.", page, 409
                )
            await self._log(request, True, line)
            return done(request, True, line, f"{page}#{anchor}")

        return handler

    async def _log(self, request: Request, ok: bool, outcome: str) -> None:
        app = self.ctx.app
        action = request.url.path.removeprefix("/admin/") or "admin"
        await run_in_threadpool(
            audit.record,
            app.factory,
            "dashboard",
            client_key(request),
            action,
            ok,
            outcome,
            app.runner.clock,
        )

    # -- the work behind each button -------------------------------------------------

    def _suggestion(self, request: Request, form: dict[str, str]) -> str:
        target, verb = int(request.path_params["id"]), request.path_params["verb"]
        with session_scope(self.ctx.app.factory) as session:
            if verb == "approve":
                return operator.approve(session, target)
            if verb == "reject":
                reason = form.get("reason", "").strip() or "rejected by the operator"
                return operator.reject(session, target, reason)
        raise WebError(404, "No such action.")

    def _contributor(self, request: Request, _form: dict[str, str]) -> str:
        target, verb = int(request.path_params["id"]), request.path_params["verb"]
        with session_scope(self.ctx.app.factory) as session:
            if verb == "block":
                return operator.block(session, target)
            if verb == "unblock":
                return operator.unblock(session, target, self.ctx.app.config.moderation)
        raise WebError(404, "No such action.")

    def _runner(self, request: Request, _form: dict[str, str]) -> str:
        runner = self.ctx.app.runner
        verb = request.path_params["verb"]
        if verb == "close":
            return runner.close_round_now() or "closed the round"
        if verb in ("pause", "resume"):
            return runner.set_paused(verb == "pause")
        if verb == "retry":
            return runner.retry_held()
        raise WebError(404, "No such action.")

    def _lore(self, request: Request, form: dict[str, str]) -> str:
        target, verb = int(request.path_params["id"]), request.path_params["verb"]
        with session_scope(self.ctx.app.factory) as session:
            if verb == "accept":
                return operator.set_lore_status(session, target, "canon")
            if verb == "reject":
                return operator.set_lore_status(session, target, "rejected")
            if verb == "edit":
                return operator.edit_lore(
                    session, target, form.get("description", ""), form.get("visual", "")
                )
        raise WebError(404, "No such action.")

    def _lore_add(self, _request: Request, form: dict[str, str]) -> str:
        story_id = self.ctx.app.runner.ensure_story()
        with session_scope(self.ctx.app.factory) as session:
            return operator.add_lore(
                session,
                story_id,
                form.get("kind", ""),
                form.get("name", ""),
                form.get("description", ""),
                form.get("visual", ""),
            )

    def _fork(self, _request: Request, form: dict[str, str]) -> str:
        try:
            number, option = int(form.get("number", "")), int(form.get("option", ""))
        except ValueError:
            raise OperatorError("choose an episode and an option to fork from") from None
        return self.ctx.app.runner.fork(number, option, form.get("branch", "").strip())

    def _cut(self, _request: Request, form: dict[str, str]) -> str:
        return self.cut.start(form.get("branch", MAIN))

    async def media(self, request: Request) -> Response:
        self._require(request)
        kind = request.path_params["kind"]
        if kind not in ("still", "clip"):
            raise WebError(404, "No such file.")
        stored = await run_in_threadpool(
            episode_file, self.ctx.app, int(request.path_params["id"]), kind
        )
        root = self.ctx.app.runner.media_root.resolve()
        target = (root / stored).resolve() if stored else None
        if target is None or not target.is_relative_to(root) or not target.is_file():
            raise WebError(404, "That file is not there (yet).")
        kind_type = "image/png" if Path(target).suffix == ".png" else "video/mp4"
        return FileResponse(target, media_type=kind_type, headers={"Cache-Control": "no-store"})


def routes(ctx: WebContext) -> list[BaseRoute]:
    a = Admin(ctx)
    post = ["POST"]
    return [
        Route("/admin", a.page),
        Route("/admin/login", a.login, methods=post),
        Route("/admin/logout", a.logout, methods=post),
        Route("/admin/suggestions/{id:int}/{verb}", a.action(a._suggestion, "queue"), methods=post),
        Route(
            "/admin/contributors/{id:int}/{verb}", a.action(a._contributor, "queue"), methods=post
        ),
        Route("/admin/story/{verb}", a.action(a._runner, "story"), methods=post),
        Route("/admin/episodes/{id:int}/{kind}", a.media),
        Route("/admin/bible", a.bible_page),
        Route("/admin/bible/add", a.action(a._lore_add, "add", "/admin/bible"), methods=post),
        Route(
            "/admin/bible/{id:int}/{verb}",
            a.action(a._lore, "entries", "/admin/bible"),
            methods=post,
        ),
        Route("/admin/branches", a.branches_page),
        Route("/admin/branches/fork", a.action(a._fork, "tree", "/admin/branches"), methods=post),
        Route("/admin/cut", a.action(a._cut, "cut"), methods=post),
        Route("/admin/cut", a.cut_status),
        Route("/admin/cuts/{name}", a.cut_file),
    ]
