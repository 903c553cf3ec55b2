"""A real AT Protocol network for the chaos harness, and the story's record on it.

``../shared/servers/bluesky`` (see its README) starts the reference PLC, PDS and AppView
(@atproto/dev-env, unmodified) with the accounts named here and writes ``bluesky.json``.
``STORYBOT_CHAOS_BLUESKY_JSON`` names a running network's ``bluesky.json`` to reuse it: it is not
stopped here, and the accounts' posts and likes are deleted first (the story's record keys come
from its slug, so an earlier run's records would stand in for this run's).

The record is read from the repositories on the PDS, never from the AppView: the bot's posts
with ``com.atproto.repo.listRecords``, and each follower's posts and likes. One outbox post is
a head record and the records it owns, whose keys come from its key (bot/platforms/bluesky/
rkeys.py): the rest of a long caption, a question's numbered option replies. ``bot_statuses``
folds them into one ``Status``: the whole text, the option labels as the poll, the followers'
likes of each option as its votes. A record that no head owns is a status of its own, so it
counts against the story's number of posts.

The followers act with their own PDS sessions, and each action is waited for in the AppView,
which indexes it 0.2–0.8 s later and is where the bot reads replies and likes: a round is not
closed on what the bot cannot see yet.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from atproto_client import Client, models
from atproto_client.exceptions import BadRequestError

from bot.platforms.bluesky.records import get
from bot.platforms.bluesky.rkeys import OPTION, PART, POST, child
from bot.platforms.bluesky.votes import RULES
from chaos.world import FOLLOWERS, Status

ROOT = Path(__file__).resolve().parents[1]
KIT = Path(os.environ.get("STORYBOT_BLUESKY_KIT", ROOT.parent / "shared" / "servers" / "bluesky"))
REUSE_ENV = "STORYBOT_CHAOS_BLUESKY_JSON"
PASSWORD_ENV = "STORYBOT_CHAOS_BLUESKY_PASSWORD"  # how the bot's children get its app password
BOT = "storyteller"
# A handle's first label needs three characters: the harness's "cy" is cyd.test here.
HANDLES = {BOT: f"{BOT}.test"} | {n: f"{n}d.test" if len(n) < 3 else f"{n}.test" for n in FOLLOWERS}
LIKE = "app.bsky.feed.like"
START_TIMEOUT_S = 900  # the first start installs the network's packages (minutes)
WAIT_S = 30.0  # the AppView indexes in under a second; a loaded machine takes longer
_MARK = re.compile(r"\s*\(\d+/\d+\)$")  # " (2/3)" after each part of a long post
_OPTION = re.compile(r"(\d+)\. (.*)", re.DOTALL)
_ENOUGH = 20  # more parts or options than the adapter ever makes (it stops at 6 and 4)
T = TypeVar("T")


class BlueskyUnavailable(RuntimeError):
    """The kit is missing or the network would not start."""


def wait_for(check: Callable[[], T | None], what: str, timeout: float = WAIT_S) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"the AppView did not show {what} within {timeout:g} s")
        time.sleep(0.1)


def _flat(text: str) -> str:
    return " ".join(text.split())


class BlueskyServer:
    """A running network: its PDS and AppView, the bot's account and the followers'."""

    label = "bluesky"

    def __init__(
        self,
        pds: str,
        appview: str,
        accounts: Mapping[str, Mapping[str, Any]],
        notes: Sequence[str] = (),
    ) -> None:
        missing = sorted(h for h in HANDLES.values() if h not in accounts)
        if missing:
            raise BlueskyUnavailable(f"the Bluesky network has no account(s) {', '.join(missing)}")
        self.pds, self.appview = pds, appview
        self.dids = {name: str(accounts[h]["did"]) for name, h in HANDLES.items()}
        self._passwords = {name: str(accounts[h]["password"]) for name, h in HANDLES.items()}
        self._notes = list(notes)
        self._clients: dict[str, Client] = {}
        self._app_password: str | None = None

    # -- clients -------------------------------------------------------------------------------

    def client(self, name: str) -> Client:
        """``name``'s own session on the PDS (its account password), made once."""
        if name not in self._clients:
            client = Client(base_url=self.pds)
            client.login(HANDLES[name], self._passwords[name])
            self._clients[name] = client
        return self._clients[name]

    def _open(self, key: str, url: str) -> Client:
        if key not in self._clients:
            self._clients[key] = Client(base_url=url)
        return self._clients[key]

    def public(self) -> Client:
        """The AppView read without an account, as the web shows it."""
        return self._open(" appview", self.appview)

    def close(self) -> None:
        for client in self._clients.values():
            client.request.close()
        self._clients.clear()

    # -- the harness's Server -----------------------------------------------------------------

    def config_lines(self, workdir: Path) -> list[str]:
        return [
            "[platforms.local]",
            "enabled = false",
            "[platforms.bluesky]",
            "enabled = true",
            f"service = {json.dumps(self.pds)}",
            f"handle = {json.dumps(HANDLES[BOT])}",
            f'password_env = "{PASSWORD_ENV}"',
            f"session_file = {json.dumps(str(workdir / 'bluesky.session'))}",
        ]

    def env(self) -> dict[str, str]:
        """The bot logs in with an app password made on the PDS, as an operator makes one."""
        if self._app_password is None:
            made = self.client(BOT).com.atproto.server.create_app_password(
                models.ComAtprotoServerCreateAppPassword.Data(name=f"chaos-{time.time_ns()}")
            )
            self._app_password = str(made.password)
        return {PASSWORD_ENV: self._app_password}

    def notes(self) -> list[str]:
        try:
            posts = len(self.records(BOT, POST))
        except Exception as exc:  # a note, never a crash of the report
            return [*self._notes, f"bluesky: the bot's repo could not be listed: {exc!r}"]
        return [*self._notes, f"bluesky: the bot's repo holds {posts} post records"]

    def world(self) -> BlueskyWorld:
        return BlueskyWorld(self)

    # -- the repositories ----------------------------------------------------------------------

    def records(self, name: str, collection: str) -> list[Any]:
        """Every record of ``collection`` in ``name``'s repo on the PDS (all pages)."""
        reader = self._open(" pds", self.pds)  # listRecords is public
        found: list[Any] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"repo": self.dids[name], "collection": collection}
            params |= {"limit": 100} | ({"cursor": cursor} if cursor else {})
            page = reader.com.atproto.repo.list_records(params=params)
            found += page.records
            cursor = page.cursor
            if not cursor or not page.records:
                return found

    def reset(self) -> None:
        """Delete every post and like of the accounts; wait until the AppView shows no post."""
        for name in HANDLES:
            deletes = [
                models.ComAtprotoRepoApplyWrites.Delete(collection=collection, rkey=_rkey(r.uri))
                for collection in (POST, LIKE)
                for r in self.records(name, collection)
            ]
            for start in range(0, len(deletes), 200):
                self.client(name).com.atproto.repo.apply_writes(
                    models.ComAtprotoRepoApplyWrites.Data(
                        repo=self.dids[name], writes=deletes[start : start + 200]
                    )
                )
        viewer = self.public()
        for name, handle in HANDLES.items():

            def gone(did: str = self.dids[name]) -> bool:
                return not viewer.get_author_feed(did, limit=5).feed

            wait_for(gone, f"none of {handle}'s posts")


class BlueskyWorld:
    """The story on Bluesky: judged on the repositories, acted on as the followers' apps do."""

    platform = "bluesky"
    label = "bluesky"

    def __init__(self, server: BlueskyServer) -> None:
        self.server = server
        self.bot = server.dids[BOT]
        self.cids: dict[str, str] = {}  # a follower's reply → its CID, for a like of it
        self.options: dict[tuple[str, int], tuple[str, str]] = {}  # (question, n) → uri, cid

    # -- the record ----------------------------------------------------------------------------

    def _likes(self) -> Counter[str]:
        """Likes by the followers, by the URI they like."""
        return Counter(
            str(get(get(r.value, "subject"), "uri"))
            for name in HANDLES
            if name != BOT
            for r in self.server.records(name, LIKE)
        )

    def bot_statuses(self) -> list[Status]:
        records = {_rkey(r.uri): r for r in self.server.records(BOT, POST)}
        owned: dict[str, tuple[list[Any], list[Any]]] = {}  # head key → its parts, its options
        for rkey, head in records.items():
            parts, above = [], head
            for n in range(2, _ENOUGH):
                part = records.get(child(rkey, PART, n))
                if part is None or _parent(part) != above.uri:
                    break
                parts.append(part)
                above = part
            options = []
            for n in range(1, _ENOUGH):
                option = records.get(child(rkey, OPTION, n))
                if option is None or _parent(option) != head.uri:
                    break
                options.append(option)
            owned[rkey] = (parts, options)
        taken = {str(r.uri) for parts, options in owned.values() for r in (*parts, *options)}
        likes = self._likes()
        statuses = [
            self._status(r, *owned[rkey], likes)
            for rkey, r in records.items()
            if str(r.uri) not in taken
        ]
        return sorted(statuses, key=lambda s: (_created(records, s.id), s.id))

    def _status(
        self, head: Any, parts: list[Any], options: list[Any], likes: Counter[str]
    ) -> Status:
        texts = [str(get(r.value, "text")) for r in (head, *parts)]
        text = _flat(" ".join(_MARK.sub("", t) for t in texts) if parts else texts[0])
        poll = votes = None
        if options:  # a question: the adapter adds how to vote to every one
            text = text.removesuffix(_flat(RULES)).rstrip()
            labels = [_OPTION.fullmatch(str(get(o.value, "text"))) for o in options]
            poll = tuple(
                m.group(2) if m else str(get(o.value, "text"))
                for m, o in zip(labels, options, strict=True)
            )
            votes = tuple(likes[str(o.uri)] for o in options)
        return Status(
            id=str(head.uri),
            author=HANDLES[BOT],
            in_reply_to=_parent(head),
            text=text,
            media=_media(get(head.value, "embed")),
            poll=poll,
            votes=votes,
            likes=likes[str(head.uri)],
        )

    def replies_to(self, ids: Sequence[str]) -> list[Status]:
        wanted = set(ids)
        likes = self._likes()
        found: list[tuple[str, Status]] = []
        for name in HANDLES:
            if name == BOT:
                continue
            for r in self.server.records(name, POST):
                parent = _parent(r)
                if parent in wanted:
                    status = Status(
                        id=str(r.uri),
                        author=HANDLES[name],
                        in_reply_to=parent,
                        text=str(get(r.value, "text")),
                        likes=likes[str(r.uri)],
                    )
                    found.append((str(get(r.value, "created_at")), status))
        return [s for _, s in sorted(found, key=lambda f: (f[0], f[1].id))]

    # -- the followers -------------------------------------------------------------------------

    def _visible(self, uri: str) -> Any:
        """The post's view once the AppView has indexed it."""

        def look() -> Any:
            posts = self.server.public().get_posts([uri]).posts
            return posts[0] if posts else None

        return wait_for(look, uri)

    def reply(self, actor: str, to: str, text: str) -> str:
        parent = self._visible(to)  # a reply indexed before its parent gives no notice
        above = parent.record.reply
        ref = models.create_strong_ref(parent)
        made = self.server.client(actor).send_post(
            text,
            reply_to=models.AppBskyFeedPost.ReplyRef(
                parent=ref, root=above.root if above is not None else ref
            ),
        )
        self.cids[str(made.uri)] = str(made.cid)
        self._visible(str(made.uri))
        return str(made.uri)

    def _like(self, actor: str, uri: str, cid: str) -> None:
        self.server.client(actor).like(uri, cid)
        did = self.server.dids[actor]

        def counted() -> bool:
            likes = self.server.public().get_likes(uri, limit=100).likes
            return any(like.actor.did == did for like in likes)

        wait_for(counted, f"{HANDLES[actor]}'s like of {uri}")

    def like(self, actor: str, status_id: str) -> None:
        cid = self.cids.get(status_id) or str(self._visible(status_id).cid)
        self._like(actor, status_id, cid)

    def vote(self, actor: str, poll_status: str, position: int) -> None:
        """A like of option ``position``'s reply, found under the question as an app shows it."""
        key = (poll_status, position)
        if key not in self.options:

            def look() -> tuple[str, str] | None:
                try:
                    thread = self.server.public().get_post_thread(poll_status, depth=1).thread
                except BadRequestError:  # not indexed yet
                    return None
                for node in get(thread, "replies") or []:
                    post = get(node, "post")
                    mine = post is not None and post.author.did == self.bot
                    if mine and str(post.record.text).startswith(f"{position}. "):
                        return str(post.uri), str(post.cid)
                return None

            self.options[key] = wait_for(look, f"option {position} under {poll_status}")
        self._like(actor, *self.options[key])


def _parent(record: Any) -> str | None:
    parent = get(get(get(record.value, "reply"), "parent"), "uri")
    return str(parent) if parent is not None else None


def _rkey(uri: object) -> str:
    return str(uri).rsplit("/", 1)[-1]


def _created(records: Mapping[str, Any], uri: str) -> str:
    found = records.get(_rkey(uri))
    return str(get(found.value, "created_at")) if found is not None else ""


def _media(embed: Any) -> int:
    kind = str(get(embed, "py_type") or get(embed, "$type") or "")
    if kind.startswith("app.bsky.embed.video"):
        return 1
    if kind.startswith("app.bsky.embed.images"):
        return len(get(embed, "images") or [])
    return 0


def server_of(
    pds: str, appview: str, accounts: Mapping[str, Mapping[str, Any]], notes: Sequence[str] = ()
) -> BlueskyServer:
    """The harness's view of a network from its ``bluesky.json`` fields."""
    return BlueskyServer(pds, appview, accounts, notes)


def _load(path: Path, notes: Sequence[str] = ()) -> BlueskyServer:
    data = json.loads(path.read_text())
    return server_of(str(data["pds"]), str(data["appview"]), data["accounts"], notes)


@contextmanager
def running_bluesky(state: Path) -> Iterator[BlueskyServer]:
    """The network named by STORYBOT_CHAOS_BLUESKY_JSON (its accounts' posts and likes
    deleted first), or a new one in ``state``, stopped after."""
    reuse = os.environ.get(REUSE_ENV)
    if reuse:
        server = _load(Path(reuse), [f"bluesky: reused {reuse}, its accounts' posts deleted"])
        try:
            server.reset()
            yield server
        finally:
            server.close()
        return
    start = KIT / "start"
    if not start.is_file():
        raise BlueskyUnavailable(f"the Bluesky network kit is missing: {start}")
    began = time.monotonic()
    done = subprocess.run(
        [str(start), str(state), "--accounts", ",".join(HANDLES.values())],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )
    try:
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise BlueskyUnavailable(f"the Bluesky network did not start: {tail}")
        startup = f"bluesky: network started in {time.monotonic() - began:.0f}s"
        server = _load(Path(done.stdout.strip().splitlines()[-1]), [startup])
        try:
            yield server
        finally:
            server.close()
    finally:
        subprocess.run([str(KIT / "stop"), str(state)], capture_output=True, timeout=120)
