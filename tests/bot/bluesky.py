"""A real AT Protocol network on loopback (PLC, PDS and AppView from @atproto/dev-env).

The kit in ``../shared/servers/bluesky`` starts the reference implementation, unmodified, with
its own PostgreSQL and Redis (see its README). A test session starts one network and shares
it; ``STORYBOT_BLUESKY_JSON`` names the ``bluesky.json`` of a network that is already running,
to reuse it while developing. A missing kit fails the tests: it is how `make test` proves the
Bluesky adapter.

The AppView indexes what the PDS writes 0.2–0.8 s later, so every helper that plays a
follower waits (with a timeout, never a fixed sleep) until the AppView shows what it did.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from atproto_client import Client, models
from atproto_client.exceptions import BadRequestError

ROOT = Path(__file__).resolve().parents[2]
KIT = Path(os.environ.get("STORYBOT_BLUESKY_KIT", ROOT.parent / "shared" / "servers" / "bluesky"))
REUSE_ENV = "STORYBOT_BLUESKY_JSON"
START_TIMEOUT_S = 900  # the first start installs the network's packages (about 5 minutes)
ACCOUNTS = ("storyteller", "ana", "ben", "cyd", "bob", "carol", "dee")
BOT = "storyteller"
WAIT_S = 15.0
POST = "app.bsky.feed.post"
LIKE = "app.bsky.feed.like"
BLOCK = "app.bsky.graph.block"
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], what: str, timeout: float = WAIT_S) -> T:
    """``check()`` until it gives something truthy; fails the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


@dataclass
class Bluesky:
    pds: str
    appview: str
    plc: str
    accounts: dict[str, dict[str, str]]
    _clients: dict[str, Client] = field(default_factory=dict)
    _app_passwords: dict[str, str] = field(default_factory=dict)

    def public(self) -> Client:
        """The AppView read without an account, as the web shows it: no viewer's blocks."""
        if "" not in self._clients:
            self._clients[""] = Client(base_url=self.appview)
        return self._clients[""]

    def close(self) -> None:
        for client in self._clients.values():
            client.request.close()
        self._clients.clear()

    def handle(self, name: str) -> str:
        return f"{name}.test"

    def did(self, name: str) -> str:
        return self.accounts[self.handle(name)]["did"]

    def password(self, name: str) -> str:
        return self.accounts[self.handle(name)]["password"]

    def client(self, name: str) -> Client:
        """The account's own client (its main password), logged in once per session."""
        if name not in self._clients:
            client = Client(base_url=self.pds)
            client.login(self.handle(name), self.password(name))
            self._clients[name] = client
        return self._clients[name]

    def app_password(self, name: str) -> str:
        """An app password made on the PDS, as a person makes one in Settings."""
        if name not in self._app_passwords:
            made = self.client(name).com.atproto.server.create_app_password(
                models.ComAtprotoServerCreateAppPassword.Data(name=f"storybot-{time.time_ns()}")
            )
            self._app_passwords[name] = str(made.password)
        return self._app_passwords[name]

    # -- the server's record ---------------------------------------------------------------

    def records(self, name: str, collection: str = POST) -> list[Any]:
        """Every record of ``collection`` in the account's repo (listRecords, all pages)."""
        client = self.client(name)
        found: list[Any] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"repo": self.did(name), "collection": collection}
            params |= {"limit": 100} | ({"cursor": cursor} if cursor else {})
            page = client.com.atproto.repo.list_records(params=params)
            found += page.records
            cursor = page.cursor
            if not cursor or not page.records:
                return found

    def record(self, uri: str) -> Any | None:
        did, collection, rkey = uri.removeprefix("at://").split("/")
        try:
            return self.client(BOT).com.atproto.repo.get_record(
                params={"repo": did, "collection": collection, "rkey": rkey}
            )
        except BadRequestError:
            return None

    def reset(self, names: tuple[str, ...]) -> None:
        """Delete every post, like and block of these accounts, and wait until the AppView
        shows no post: tests reuse record keys, and an old reply would answer the new post."""
        for name in names:
            client = self.client(name)
            deletes = [
                models.ComAtprotoRepoApplyWrites.Delete(
                    collection=collection, rkey=record.uri.rsplit("/", 1)[1]
                )
                for collection in (POST, LIKE, BLOCK)
                for record in self.records(name, collection)
            ]
            for start in range(0, len(deletes), 200):
                client.com.atproto.repo.apply_writes(
                    models.ComAtprotoRepoApplyWrites.Data(
                        repo=self.did(name), writes=deletes[start : start + 200]
                    )
                )
        viewer = self.public()
        for name in names:
            wait_for(
                lambda name=name: not viewer.get_author_feed(self.did(name), limit=5).feed,
                f"the AppView to forget {name}'s posts",
            )

    # -- a follower's actions, each waited for in the AppView ----------------------------------

    def visible(self, uri: str) -> Any:
        """The post once the AppView has indexed it (read without an account: blocks and the
        PDS's read-after-write do not hide or show it early)."""
        client = self.public()

        def look() -> Any:
            posts = client.get_posts([uri]).posts
            return posts[0] if posts else None

        return wait_for(look, f"{uri} to be indexed")

    def reply(self, name: str, to: str, text: str, facets: list[Any] | None = None) -> str:
        parent = self.visible(to)  # a reply indexed before its parent loses its notice
        above = parent.record.reply
        root = above.root if above is not None else models.create_strong_ref(parent)
        made = self.client(name).send_post(
            text,
            reply_to=models.AppBskyFeedPost.ReplyRef(
                parent=models.create_strong_ref(parent), root=root
            ),
            facets=facets,
        )
        self.visible(made.uri)
        return str(made.uri)

    def post(self, name: str, text: str, facets: list[Any] | None = None) -> str:
        made = self.client(name).send_post(text, facets=facets)
        self.visible(made.uri)
        return str(made.uri)

    def mention(self, name: str, whom: str, text: str) -> str:
        """A post that mentions ``whom``, with the facet a Bluesky app sends."""
        lead = f"@{self.handle(whom)}"
        facet = models.AppBskyRichtextFacet.Main(
            features=[models.AppBskyRichtextFacet.Mention(did=self.did(whom))],
            index=models.AppBskyRichtextFacet.ByteSlice(byte_start=0, byte_end=len(lead)),
        )
        return self.post(name, f"{lead} {text}", facets=[facet])

    def likers(self, uri: str) -> set[str]:
        likes = self.public().get_likes(uri, limit=100).likes
        return {like.actor.handle for like in likes}

    def like(self, name: str, uri: str) -> str:
        post = self.visible(uri)
        made = self.client(name).like(post.uri, post.cid)
        wait_for(lambda: self.handle(name) in self.likers(uri), f"{name}'s like of {uri}")
        return str(made.uri)

    def unlike(self, name: str, like_uri: str, liked: str) -> None:
        self.client(name).unlike(like_uri)
        wait_for(lambda: self.handle(name) not in self.likers(liked), f"{name}'s unlike")

    def delete(self, name: str, uri: str) -> None:
        self.client(name).delete_post(uri)
        wait_for(lambda: not self.public().get_posts([uri]).posts, f"{uri} to be gone")

    def block(self, name: str, whom: str) -> str:
        """``name`` blocks ``whom`` on Bluesky; waits until the AppView applies it."""
        client = self.client(name)
        made = client.app.bsky.graph.block.create(
            self.did(name),
            models.AppBskyGraphBlock.Record(
                subject=self.did(whom), created_at=client.get_current_time_iso()
            ),
        )
        wait_for(
            lambda: client.get_profile(self.did(whom)).viewer.blocking,
            f"{name}'s block of {whom}",
        )
        return str(made.uri)

    def option_uri(self, name: str, question: str, position: int) -> str:
        """The option reply a follower sees under the question, by its number."""

        def look() -> str | None:
            try:
                thread = self.client(name).get_post_thread(question, depth=1).thread
            except BadRequestError:  # NotFound: not indexed yet
                return None
            for reply in thread.replies or []:
                post = getattr(reply, "post", None)
                ours = post is not None and post.author.did == self.did(BOT)
                if ours and post.record.text.startswith(f"{position}. "):
                    return str(post.uri)
            return None

        return wait_for(look, f"option {position} of {question}")


class RateLimitedOnce(httpx.BaseTransport):
    """The real PDS behind; the first ``times`` calls of ``method`` get a 429 of its shape.

    The dev PDS runs without rate limits. The answer is the one the PDS's own limiter gives
    (@atproto/xrpc-server, dist/rate-limiter-http.js): RateLimit-Limit, -Remaining, -Reset
    (Unix seconds), -Policy and Retry-After headers, ``{"error": "RateLimitExceeded"}``."""

    def __init__(self, method: str, reset: datetime, times: int = 1) -> None:
        self.inner = httpx.HTTPTransport()
        self.method, self.reset, self.left = method, reset, times
        self.calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(f"/xrpc/{self.method}"):
            self.calls += 1
            if self.left > 0:
                self.left -= 1
                headers = {
                    "RateLimit-Limit": "5000",
                    "RateLimit-Remaining": "0",
                    "RateLimit-Reset": str(int(self.reset.timestamp())),
                    "RateLimit-Policy": "5000;w=3600",
                    "Retry-After": "600",
                    "Access-Control-Expose-Headers": "Retry-After",
                }
                body = {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}
                return httpx.Response(429, headers=headers, json=body, request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def _load(path: Path) -> Bluesky:
    data = json.loads(path.read_text())
    return Bluesky(data["pds"], data["appview"], data["plc"], data["accounts"])


@contextmanager
def running_bluesky(state: Path) -> Iterator[Bluesky]:
    """The network named by STORYBOT_BLUESKY_JSON, or a new one in ``state`` (stopped after)."""
    reuse = os.environ.get(REUSE_ENV)
    if reuse:
        network = _load(Path(reuse))
        yield network
        network.close()
        return
    start = KIT / "start"
    if not start.is_file():
        pytest.fail(f"the Bluesky test network kit is missing: {start}", pytrace=False)
    began = time.monotonic()
    handles = ",".join(f"{name}.test" for name in ACCOUNTS)
    done = subprocess.run(
        [str(start), str(state), "--accounts", handles],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        pytest.fail(f"the Bluesky network did not start: {tail}", pytrace=False)
    print(f"Bluesky network started in {time.monotonic() - began:.0f} s")  # shown with -s
    network = _load(Path(done.stdout.strip().splitlines()[-1]))
    try:
        yield network
    finally:
        network.close()
        subprocess.run([str(KIT / "stop"), str(state)], capture_output=True, timeout=120)
