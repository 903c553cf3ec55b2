"""What the bot reads on Bluesky: replies and mentions, and the likes that are votes.

Ideas are the replies to the clip or the question (and to the bot's own replies under them:
the rest of a caption, the option replies), read from the thread view, and the replies and
mentions in the bot's notifications, read a cursor page at a time back to the oldest post asked
about (a thread view is capped, and a mention outside the bot's threads speaks to the story
too). Votes are the likes on a question's option replies, found from the question's key, every
page of them. Every call here is safe to repeat, so a transient failure is tried again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from atproto_client import Client

from bot.platforms._retry import again_on_transient
from bot.platforms.base import Reply
from bot.platforms.bluesky.errors import NotFound
from bot.platforms.bluesky.records import Ref, get, when
from bot.platforms.bluesky.rkeys import MAX_OPTIONS, MAX_PARTS, OPTION, POST, AtUri, child, own_keys
from bot.platforms.bluesky.session import Account
from bot.platforms.bluesky.votes import Blocklist, Like
from story_state.errors import PermanentError

__all__ = ["Reader", "blocks_bot"]

log = logging.getLogger(__name__)
T = TypeVar("T")

PLATFORM = "bluesky"
_THREAD_DEPTH = MAX_PARTS + 1  # the bot's deepest reply under a post, and a reply to it
_MAX_PAGES = 20
_GET_POSTS_BATCH = 25


def blocks_bot(author: Any) -> bool:
    """Whether the bot's account blocks ``author`` on Bluesky, or ``author`` blocks it."""
    viewer = get(author, "viewer")
    return bool(get(viewer, "blocking") or get(viewer, "blocked_by"))


class Reader:
    """The bot account's reads, and the people met in them (display name or handle → DID, for
    the credit line's mentions; None where two people share a name)."""

    def __init__(
        self,
        account: Account,
        *,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None],
        pauses: Sequence[float],
        page_size: int,
    ) -> None:
        self.account = account
        self.people: dict[str, str | None] = {}
        self._clock = clock
        self._sleep = sleep
        self._pauses = tuple(pauses)
        self._page = page_size  # notifications and likes are read in pages of this many
        self._options: dict[str, tuple[str, ...]] = {}  # question URI → option reply URIs

    # -- plumbing ----------------------------------------------------------------------------

    def call(self, action: str, fn: Callable[[Client], T]) -> T:
        """A call that is safe to repeat, tried again on a transient failure."""
        return again_on_transient(lambda: self.account.call(action, fn), self._sleep, self._pauses)

    def record(self, uri: str) -> Ref | None:
        """The record at ``uri`` as its repo holds it, or None where there is none."""
        parsed = AtUri.parse(uri)
        if parsed is None or parsed.collection != POST:
            raise PermanentError(f"{uri!r} is not a Bluesky post URI")

        def fetch(client: Client) -> Any:
            return client.com.atproto.repo.get_record(
                params={"repo": parsed.did, "collection": POST, "rkey": parsed.rkey}
            )

        try:
            found = self.call(f"reading {uri}", fetch)
        except NotFound:
            return None
        return Ref(str(found.uri), str(found.cid), found.value)

    def thread(self, uri: str) -> Any:
        def read(client: Client) -> Any:
            return client.get_post_thread(uri, depth=_THREAD_DEPTH, parent_height=0).thread

        try:
            return self.call(f"reading the replies to {uri}", read)
        except NotFound:
            if self.record(uri) is not None:
                log.info("Bluesky post %s is not in the AppView yet: no replies yet", uri)
            else:
                log.warning("Bluesky post %s is gone; no replies read from it", uri)
            return None

    # -- people --------------------------------------------------------------------------------

    def person(self, author: Any) -> None:
        did = str(get(author, "did") or "")
        if not did or did == self.account.did:
            return
        for name in {str(get(author, "display_name") or ""), str(get(author, "handle") or "")}:
            if name:
                known = self.people.get(name, did)
                self.people[name] = did if known == did else None

    def learn_people(self, uri: str) -> None:
        """Who replied under ``uri`` (and under its parent): for a restarted process's credits."""
        seen = [uri]
        record = self.record(uri)
        parent = get(get(record.value, "reply"), "parent") if record else None
        if parent is not None:
            seen.append(str(get(parent, "uri")))
        for target in seen:
            for node in get(self.thread(target), "replies") or []:
                post = get(node, "post")
                if post is not None:
                    self.person(get(post, "author"))

    # -- replies and mentions --------------------------------------------------------------------

    def replies(self, wanted: Sequence[str]) -> list[Reply]:
        """Replies by others to the posts ``wanted`` (and to the bot's replies under them), and
        mentions of the bot since the oldest of them, in the order they were posted."""
        if not wanted:
            return []
        me = self.account.did
        heads: dict[str, str] = {}  # a post replies may answer → the wanted post it belongs to
        found: dict[str, tuple[Any, str]] = {}  # reply URI → (post view, wanted URI)
        since: datetime | None = None
        for uri in wanted:
            heads[uri] = uri
            thread = self.thread(uri)
            if thread is None or get(thread, "post") is None:
                continue
            made = when(get(get(get(thread, "post"), "record"), "created_at"), self._clock())
            since = made if since is None else min(since, made)
            self._walk(thread, uri, me, heads, found)
        for view, head in self._from_notifications(me, heads, since, set(found)):
            found.setdefault(str(get(view, "uri")), (view, head))
        replies = []
        for view, head in found.values():
            author = get(view, "author")
            if blocks_bot(author):
                continue  # blocked on Bluesky itself, either way: not read at all
            self.person(author)
            replies.append(self._reply(view, head))
        return sorted(replies, key=lambda r: (r.posted_at, r.remote_id))

    def _walk(
        self,
        node: Any,
        head: str,
        me: str,
        heads: dict[str, str],
        found: dict[str, tuple[Any, str]],
    ) -> None:
        """Replies by others to ``node``, and to the bot's own replies under it (the rest of a
        caption, the options of a question), which belong to ``head``."""
        parsed = AtUri.parse(head)
        own = own_keys(parsed.rkey) if parsed is not None else set()
        for child_node in get(node, "replies") or []:
            post = get(child_node, "post")
            if post is None:  # a blocked or deleted reply
                continue
            uri = str(get(post, "uri"))
            if str(get(get(post, "author"), "did")) == me:
                mine = AtUri.parse(uri)
                if mine is not None and mine.rkey in own:
                    heads[uri] = head
                    self._walk(child_node, head, me, heads, found)
                continue
            found.setdefault(uri, (post, head))

    def _from_notifications(
        self, me: str, heads: dict[str, str], since: datetime | None, known: set[str]
    ) -> list[tuple[Any, str]]:
        """Replies and mentions from the bot's notifications, checked to still exist."""
        first = next(iter(heads))
        picked: dict[str, str] = {}
        cursor: str | None = None
        for _ in range(_MAX_PAGES if since is not None else 1):
            params: dict[str, Any] = {"limit": self._page, "reasons": ["reply", "mention"]}
            if cursor:
                params["cursor"] = cursor

            def page(client: Client, params: dict[str, Any] = params) -> Any:
                return client.app.bsky.notification.list_notifications(params=params)

            answer = self.call("reading notifications", page)
            notes = list(get(answer, "notifications") or [])
            for note in notes:
                uri = str(get(note, "uri"))
                if uri in known or str(get(get(note, "author"), "did")) == me:
                    continue
                record = get(note, "record")
                reply = get(record, "reply")
                parent = str(get(get(reply, "parent"), "uri") or "")
                root = AtUri.parse(str(get(get(reply, "root"), "uri") or ""))
                if parent in heads:
                    picked[uri] = heads[parent]
                elif get(note, "reason") == "mention" and (root is None or root.did != me):
                    made = when(get(record, "created_at"), self._clock())
                    if since is None or made >= since:
                        picked[uri] = first
            cursor = get(answer, "cursor")
            oldest = when(get(notes[-1], "indexed_at"), self._clock()) if notes else None
            if not cursor or not notes or (since is not None and oldest and oldest < since):
                break
        return self._views(picked)

    def _views(self, picked: dict[str, str]) -> list[tuple[Any, str]]:
        """The posts ``picked`` (URI → the wanted post) that still exist, with their head."""
        views: list[tuple[Any, str]] = []
        uris = list(picked)
        for start in range(0, len(uris), _GET_POSTS_BATCH):
            batch = uris[start : start + _GET_POSTS_BATCH]

            def fetch(client: Client, batch: list[str] = batch) -> Any:
                return client.get_posts(batch)

            for view in get(self.call("reading replies", fetch), "posts") or []:
                views.append((view, picked[str(get(view, "uri"))]))
        return views

    def _reply(self, view: Any, head: str) -> Reply:
        author = get(view, "author")
        record = get(view, "record")
        handle = str(get(author, "handle") or get(author, "did"))
        reposts = int(get(view, "repost_count") or 0) + int(get(view, "quote_count") or 0)
        return Reply(
            platform=PLATFORM,
            remote_id=str(get(view, "uri")),
            author_handle=handle,
            author_name=str(get(author, "display_name") or "") or handle,
            text=str(get(record, "text") or ""),
            in_reply_to=head,
            posted_at=when(get(record, "created_at"), self._clock()),
            likes=int(get(view, "like_count") or 0),
            boosts=reposts,
        )

    # -- votes ---------------------------------------------------------------------------------

    def remember_options(self, question: str, options: Sequence[str]) -> None:
        self._options[question] = tuple(options)

    def option_uris(self, question: str) -> tuple[str, ...]:
        """The question's option replies, found from its key (a restarted adapter too)."""
        cached = self._options.get(question)
        if cached:
            return cached
        parsed = AtUri.parse(question)
        if parsed is None:
            raise PermanentError(f"{question!r} is not a Bluesky post URI")
        uris: list[str] = []
        for position in range(1, MAX_OPTIONS + 2):
            uri = str(parsed.sibling(child(parsed.rkey, OPTION, position)))
            record = self.record(uri)
            if record is None:
                break
            if get(get(get(record.value, "reply"), "parent"), "uri") != question:
                break
            uris.append(uri)
        if uris:
            self._options[question] = tuple(uris)
        return tuple(uris)

    def votes(self, options: Sequence[str], blocklist: Blocklist) -> list[Like]:
        """Every like by others on the option replies ``options``, as votes for their position;
        a like is marked blocked by ``blocklist`` or by a block on Bluesky, either way."""
        me = self.account.did
        found: list[Like] = []
        for position, uri in enumerate(options, start=1):
            for like in self._likes(uri):
                actor = get(like, "actor")
                did = str(get(actor, "did"))
                if did == me:
                    continue
                handle = str(get(actor, "handle") or did)
                moment = when(get(like, "created_at"), self._clock())
                found.append(
                    Like(
                        voter=did,
                        handle=handle,
                        position=position,
                        created_at=moment,
                        indexed_at=when(get(like, "indexed_at"), moment),
                        blocked=blocks_bot(actor) or blocklist.blocks(handle, did),
                    )
                )
        return found

    def _likes(self, uri: str) -> list[Any]:
        """Every like of ``uri`` the AppView knows (withdrawn likes are gone), all pages."""
        found: list[Any] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES * 10):

            def page(client: Client, cursor: str | None = cursor) -> Any:
                return client.get_likes(uri, cursor=cursor, limit=self._page)

            answer = self.call(f"reading the likes of {uri}", page)
            batch = list(get(answer, "likes") or [])
            found += batch
            cursor = get(answer, "cursor")
            if not cursor or not batch:
                break
        return found
