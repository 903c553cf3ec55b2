"""The Bluesky adapter: the story on the AT Protocol, through the atproto SDK.

A clip is one post with the video (or its still where the video is refused), and the rest of a
long caption as self-replies. A poll is a question post with one reply per option: a like on an
option reply is a vote (see ``votes.py`` for the one-vote rule). Ideas are the replies to the
clip or the question (and to the bot's own replies under them), and posts that mention the bot
outside its threads. Every record's key comes from the outbox key (``rkeys.py``), so a repeated
publish finds what the last attempt made instead of posting twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from story_state.clock import utcnow
from story_state.errors import (
    BackendUnavailable,
    PermanentError,
    PlatformError,
    RateLimited,
)

try:
    from atproto_client import Client, models
except ImportError as exc:  # pragma: no cover - the extra is installed wherever tests run
    raise BackendUnavailable(
        "the Bluesky platform needs the atproto SDK: pip install 'storybot[bluesky]'"
    ) from exc

from bot.platforms._retry import CALL_PAUSES_S, again_on_transient
from bot.platforms.base import Limits, Media, OutgoingPost, PollTally, PostRef, Reply
from bot.platforms.bluesky.errors import NotFound
from bot.platforms.bluesky.media import (
    STILL_ALT_PREFIX,
    STILL_NAME,
    VIDEO_ALT_GRAPHEMES,
    aspect,
    small_image,
)
from bot.platforms.bluesky.records import Ref, aspect_model, facet_model, get, iso, when
from bot.platforms.bluesky.rkeys import OPTION, PART, POST, AtUri, child, tid_for
from bot.platforms.bluesky.session import Account, SessionFile, make_client
from bot.platforms.bluesky.text import (
    CREDITS_MARK,
    Facet,
    facets,
    mentioned_handles,
    shorten,
    split_thread,
)
from bot.platforms.bluesky.votes import RULES, Like, count

__all__ = ["BlueskyPlatform"]

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_CAPTION_CHARS = 600  # a caption beyond one post (300 graphemes) continues as self-replies
MAX_PARTS = 6
MAX_OPTIONS = 4
MAX_OPTION_CHARS = 100
_THREAD_DEPTH = MAX_PARTS + 1
_MAX_PAGES = 20
_GET_POSTS_BATCH = 25


class BlueskyPlatform:
    """The Platform port on one Bluesky account (any PDS: bsky.social or your own)."""

    name = "bluesky"

    def __init__(
        self,
        service: str,
        handle: str,
        password: str | Callable[[], str],
        *,
        session_file: Path | None = None,
        language: str | None = "en",
        web_url: str = "https://bsky.app",
        video: bool = True,
        blocked: Callable[[], Collection[str]] = frozenset,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        call_pauses: Sequence[float] = CALL_PAUSES_S,
        client_factory: Callable[[str], Client] = make_client,
        page_size: int = 100,
    ) -> None:
        secret = password if callable(password) else (lambda: password)
        self.account = Account(
            service, handle, secret, SessionFile(session_file), client_factory=client_factory
        )
        self._language = language
        self._web_url = web_url.rstrip("/")
        self._video = video
        self._blocked = blocked
        self._clock = clock
        self._sleep = sleep
        self._pauses = tuple(call_pauses)
        self._page = page_size  # notifications and likes are read in pages of this many
        self._people: dict[str, str | None] = {}  # display name → DID (None: two people)
        self._handles: dict[str, str | None] = {}  # handle → DID, for @mentions in captions
        self._options: dict[str, tuple[str, ...]] = {}  # question URI → option reply URIs
        # Learnt from this PDS's own answer to a video upload; kept while the process runs.
        self.video_refused = False

    # -- plumbing ----------------------------------------------------------------------------

    def _read(self, action: str, fn: Callable[[Client], T]) -> T:
        """A call that is safe to repeat, tried again on a transient failure."""
        return again_on_transient(lambda: self.account.call(action, fn), self._sleep, self._pauses)

    @property
    def did(self) -> str:
        return self.account.did

    def close(self) -> None:
        self.account.close()

    def limits(self) -> Limits:
        return Limits(
            max_poll_options=MAX_OPTIONS,
            max_option_chars=MAX_OPTION_CHARS,
            min_poll_minutes=1,  # no poll on the server: the round closes when we say
            max_poll_minutes=10080,
            max_post_chars=MAX_CAPTION_CHARS,
            accepts_video=self._video and not self.video_refused,
        )

    def _url(self, uri: str) -> str | None:
        parsed = AtUri.parse(uri)
        if parsed is None:
            return None
        return f"{self._web_url}/profile/{self.account.handle}/post/{parsed.rkey}"

    def _ref(self, uri: str) -> PostRef:
        return PostRef(self.name, uri, self._url(uri))

    def _record(self, uri: str) -> Ref | None:
        """The record at ``uri`` as its repo holds it, or None where there is none."""
        parsed = AtUri.parse(uri)
        if parsed is None or parsed.collection != POST:
            raise PermanentError(f"{uri!r} is not a Bluesky post URI")

        def fetch(client: Client) -> Any:
            return client.com.atproto.repo.get_record(
                params={"repo": parsed.did, "collection": POST, "rkey": parsed.rkey}
            )

        try:
            found = self._read(f"reading {uri}", fetch)
        except NotFound:
            return None
        return Ref(str(found.uri), str(found.cid), found.value)

    # -- publishing --------------------------------------------------------------------------

    def publish(self, post: OutgoingPost) -> PostRef:
        me = self.did
        head_key = tid_for(post.idempotency_key)
        head_uri = str(AtUri(me, POST, head_key))
        text = post.text if post.poll is None else f"{post.text}\n\n{RULES}"
        parts = split_thread(text)
        if len(parts) > MAX_PARTS:
            log.warning("%s: %d posts of text, only %d sent", post.idempotency_key,
                        len(parts), MAX_PARTS)  # fmt: skip
            parts = parts[:MAX_PARTS]
        parent = root = None
        if post.in_reply_to is not None:
            parent = self._record(post.in_reply_to)
            if parent is None:
                raise PermanentError(f"cannot reply to {post.in_reply_to}: it is not there")
            above = get(get(parent.value, "reply"), "root")
            root = Ref(str(get(above, "uri")), str(get(above, "cid"))) if above else parent
        if CREDITS_MARK in text and not self._people and post.in_reply_to is not None:
            self._learn_people(post.in_reply_to)
        now = self._clock()

        head = self._ensure(
            head_key,
            lambda: self._post_record(parts[0], now, parent, root, self._embed(post.media)),
        )
        thread_root = root or head
        previous = head
        for number, part in enumerate(parts[1:], start=2):
            moment = now + timedelta(milliseconds=number)
            previous = self._ensure(
                child(head_key, PART, number),
                self._builder(part, moment, previous, thread_root),
            )
        if post.poll is not None:
            options = []
            for position, label in enumerate(post.poll.options, start=1):
                moment = now + timedelta(milliseconds=100 + position)
                made = self._ensure(
                    child(head_key, OPTION, position),
                    self._builder(f"{position}. {label}", moment, head, thread_root),
                )
                options.append(made.uri)
            self._options[head.uri] = tuple(options)
        if head.uri != head_uri:  # pragma: no cover - the PDS keeps the key it is given
            raise PermanentError(f"Bluesky made {head.uri}, not {head_uri}")
        return self._ref(head.uri)

    def _builder(self, text: str, moment: datetime, parent: Ref, root: Ref) -> Callable[[], Any]:
        return lambda: self._post_record(text, moment, parent, root, None)

    def _ensure(self, rkey: str, build: Callable[[], Any]) -> Ref:
        """The bot's post with key ``rkey``: the one there already, else made from ``build()``."""
        me = self.did
        uri = str(AtUri(me, POST, rkey))
        found = self._record(uri)
        if found is not None:
            log.info("Bluesky post %s is there already", uri)
            return found
        record = build()

        def create(client: Client) -> Any:
            return client.app.bsky.feed.post.create(me, record, rkey=rkey)

        try:
            made = self.account.call(f"posting {uri}", create)
        except RateLimited:
            raise
        except PlatformError:
            # The answer was lost, or the key was taken meanwhile (the PDS answers that with a
            # 500): what the repo holds decides.
            found = self._record(uri)
            if found is None:
                raise
            log.info("Bluesky post %s was made after all", uri)
            return found
        return Ref(str(made.uri), str(made.cid), record)

    def _post_record(
        self,
        text: str,
        moment: datetime,
        parent: Ref | None,
        root: Ref | None,
        embed: Any,
    ) -> Any:
        reply = None
        if parent is not None:
            reply = models.AppBskyFeedPost.ReplyRef(
                parent=parent.strong(), root=(root or parent).strong()
            )
        found = self._facets(text)
        return models.AppBskyFeedPost.Record(
            text=text,
            created_at=iso(moment),
            reply=reply,
            embed=embed,
            facets=[facet_model(f) for f in found] or None,
            langs=[self._language] if self._language else None,
        )

    def _facets(self, text: str) -> list[Facet]:
        for handle in mentioned_handles(text):
            if handle not in self._handles:
                self._handles[handle] = self._resolve(handle)
        people = {name: did for name, did in self._people.items() if did}
        return facets(text, handles=self._handles, people=people)

    def _resolve(self, handle: str) -> str | None:
        def resolve(client: Client) -> Any:
            return client.com.atproto.identity.resolve_handle(params={"handle": handle})

        try:
            return str(self._read(f"resolving @{handle}", resolve).did)
        except PermanentError:
            log.info("@%s does not resolve: it stays plain text", handle)
            return None

    def _learn_people(self, uri: str) -> None:
        """Who replied under the post this one answers (and under its parent): names → DIDs,
        for the credit line of a restarted process."""
        seen = [uri]
        record = self._record(uri)
        parent = get(get(record.value, "reply"), "parent") if record else None
        if parent is not None:
            seen.append(str(get(parent, "uri")))
        for target in seen:
            thread = self._thread(target)
            for node in get(thread, "replies") or []:
                post = get(node, "post")
                if post is not None:
                    self._person(get(post, "author"))

    def _person(self, author: Any) -> None:
        did = str(get(author, "did") or "")
        if not did or did == self.did:
            return
        for name in {str(get(author, "display_name") or ""), str(get(author, "handle") or "")}:
            if name:
                known = self._people.get(name, did)
                self._people[name] = did if known == did else None

    # -- media --------------------------------------------------------------------------------

    def _embed(self, media: tuple[Media, ...]) -> Any:
        if not media:
            return None
        if len(media) > 1:
            raise PermanentError("Bluesky takes one video a post; storybot sends one clip")
        item = media[0]
        if item.mime_type.startswith("video/") and self._video and not self.video_refused:
            try:
                data = item.path.read_bytes()
            except OSError as exc:
                raise PermanentError(f"cannot read {item.path}: {exc}") from exc
            try:
                blob = self._upload(data, item.path.name, item.mime_type)
            except RateLimited:
                raise
            except PermanentError as refused:
                # The PDS's answer (413 over its blob limit, 400 a type it refuses) is the truth
                # about what it takes: remember it and post the still.
                self.video_refused = True
                log.warning("Bluesky refused the video (%s): posting the still instead", refused)
            else:
                return models.AppBskyEmbedVideo.Main(
                    video=blob,
                    alt=shorten(item.alt_text, VIDEO_ALT_GRAPHEMES),
                    aspect_ratio=aspect_model(aspect(item.path.with_name(STILL_NAME))),
                )
        return self._still_embed(item)

    def _still_embed(self, item: Media) -> Any:
        path = item.path if item.mime_type.startswith("image/") else item.path.with_name(STILL_NAME)
        if not path.is_file():
            raise PermanentError(f"no video could be posted and there is no {path} instead")
        data, mime = small_image(path)
        blob = self._upload(data, path.name, mime)
        alt = (
            item.alt_text
            if path == item.path
            else (item.still_alt_text or f"{STILL_ALT_PREFIX} {item.alt_text}")
        )
        image = models.AppBskyEmbedImages.Image(
            image=blob, alt=alt, aspect_ratio=aspect_model(aspect(path))
        )
        return models.AppBskyEmbedImages.Main(images=[image])

    def _upload(self, data: bytes, name: str, mime: str) -> Any:
        # A repeated upload leaves at most an unreferenced blob, which the PDS removes.
        def upload(client: Client) -> Any:
            headers = {"Content-Type": mime}
            return client.com.atproto.repo.upload_blob(data, headers=headers).blob

        return self._read(f"uploading {name}", upload)

    # -- reading ------------------------------------------------------------------------------

    def _thread(self, uri: str) -> Any:
        def read(client: Client) -> Any:
            return client.get_post_thread(uri, depth=_THREAD_DEPTH, parent_height=0).thread

        try:
            return self._read(f"reading the replies to {uri}", read)
        except NotFound:
            if self._record(uri) is not None:
                log.info("Bluesky post %s is not in the AppView yet: no replies yet", uri)
            else:
                log.warning("Bluesky post %s is gone; no replies read from it", uri)
            return None

    def _blocked_set(self) -> frozenset[str]:
        return frozenset(h.lstrip("@").lower() for h in self._blocked())

    def _shut_out(self, author: Any, blocked: frozenset[str]) -> bool:
        """Whether a vote by ``author`` is left out: blocked here or on Bluesky."""
        handle = str(get(author, "handle") or "").lower()
        did = str(get(author, "did") or "")
        return _blocks(author) or handle in blocked or did in blocked

    def fetch_replies(self, posts: tuple[PostRef, ...]) -> list[Reply]:
        wanted = list(dict.fromkeys(p.remote_id for p in posts if p.platform == self.name))
        if not wanted:
            return []
        me = self.did
        heads: dict[str, str] = {}  # a post replies may answer → the wanted post it belongs to
        found: dict[str, tuple[Any, str]] = {}  # reply URI → (post view, wanted URI)
        since: datetime | None = None
        for uri in wanted:
            heads[uri] = uri
            thread = self._thread(uri)
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
            if _blocks(author):
                continue  # blocked on Bluesky itself, either way: not read at all
            self._person(author)
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
        own = _own_children(head)
        for child_node in get(node, "replies") or []:
            post = get(child_node, "post")
            if post is None:  # a blocked or deleted reply
                continue
            uri = str(get(post, "uri"))
            author = get(post, "author")
            if str(get(author, "did")) == me:
                parsed = AtUri.parse(uri)
                if parsed is not None and parsed.rkey in own:
                    heads[uri] = head
                    self._walk(child_node, head, me, heads, found)
                continue
            found.setdefault(uri, (post, head))

    def _from_notifications(
        self, me: str, heads: dict[str, str], since: datetime | None, known: set[str]
    ) -> list[tuple[Any, str]]:
        """Replies and mentions from the bot's notifications (a thread view is capped; a
        mention outside the bot's threads speaks to the story too), checked to still exist."""
        first = next(iter(heads))
        picked: dict[str, str] = {}
        cursor: str | None = None
        for _ in range(_MAX_PAGES if since is not None else 1):
            params: dict[str, Any] = {"limit": self._page, "reasons": ["reply", "mention"]}
            if cursor:
                params["cursor"] = cursor

            def page(client: Client, params: dict[str, Any] = params) -> Any:
                return client.app.bsky.notification.list_notifications(params=params)

            answer = self._read("reading notifications", page)
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
        if not picked:
            return []
        views: list[tuple[Any, str]] = []
        uris = list(picked)
        for start in range(0, len(uris), _GET_POSTS_BATCH):
            batch = uris[start : start + _GET_POSTS_BATCH]

            def fetch(client: Client, batch: list[str] = batch) -> Any:
                return client.get_posts(batch)

            for view in get(self._read("reading replies", fetch), "posts") or []:
                views.append((view, picked[str(get(view, "uri"))]))
        return views

    def _reply(self, view: Any, head: str) -> Reply:
        author = get(view, "author")
        record = get(view, "record")
        handle = str(get(author, "handle") or get(author, "did"))
        reposts = int(get(view, "repost_count") or 0) + int(get(view, "quote_count") or 0)
        return Reply(
            platform=self.name,
            remote_id=str(get(view, "uri")),
            author_handle=handle,
            author_name=str(get(author, "display_name") or "") or handle,
            text=str(get(record, "text") or ""),
            in_reply_to=head,
            posted_at=when(get(record, "created_at"), self._clock()),
            likes=int(get(view, "like_count") or 0),
            boosts=reposts,
        )

    # -- votes --------------------------------------------------------------------------------

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
            record = self._record(uri)
            if record is None:
                break
            parent = get(get(get(record.value, "reply"), "parent"), "uri")
            if parent != question:
                break
            uris.append(uri)
        if uris:
            self._options[question] = tuple(uris)
        return tuple(uris)

    def fetch_tally(self, poll: PostRef) -> PollTally:
        question = poll.remote_id
        parsed = AtUri.parse(question)
        if parsed is None or parsed.did != self.did:
            raise PermanentError(f"{question} is not one of the bot's Bluesky posts")
        if self._record(question) is None:
            raise PermanentError(f"the question post {question} was deleted: no votes to count")
        options = self.option_uris(question)
        if not options:
            raise PermanentError(f"Bluesky post {question} has no option replies: not a poll")
        blocked = self._blocked_set()
        likes: list[Like] = []
        for position, uri in enumerate(options, start=1):
            for like in self._likes(uri):
                actor = get(like, "actor")
                did = str(get(actor, "did"))
                if did == self.did:
                    continue
                moment = when(get(like, "created_at"), self._clock())
                likes.append(
                    Like(
                        voter=did,
                        handle=str(get(actor, "handle") or did),
                        position=position,
                        created_at=moment,
                        indexed_at=when(get(like, "indexed_at"), moment),
                        blocked=self._shut_out(actor, blocked),
                    )
                )
        counted = count(likes, len(options))
        return PollTally(
            self.name,
            counted.counts,
            voters=len(counted.voters),
            closed=False,  # the round closes on the bot's clock; likes stay open
            extra={
                "likes": counted.likes,
                "repeated": counted.repeated,
                "blocked": len(counted.excluded),
            },
        )

    def _likes(self, uri: str) -> list[Any]:
        """Every like of ``uri`` the AppView knows (withdrawn likes are gone), all pages."""
        found: list[Any] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES * 10):

            def page(client: Client, cursor: str | None = cursor) -> Any:
                return client.get_likes(uri, cursor=cursor, limit=self._page)

            answer = self._read(f"reading the likes of {uri}", page)
            batch = list(get(answer, "likes") or [])
            found += batch
            cursor = get(answer, "cursor")
            if not cursor or not batch:
                break
        return found


def _blocks(author: Any) -> bool:
    """Whether the bot's account blocks ``author`` on Bluesky, or ``author`` blocks it."""
    viewer = get(author, "viewer")
    return bool(get(viewer, "blocking") or get(viewer, "blocked_by"))


def _own_children(head: str) -> set[str]:
    """The keys the bot gives its own replies under ``head``: caption parts and options."""
    parsed = AtUri.parse(head)
    if parsed is None:
        return set()
    keys = {child(parsed.rkey, PART, n) for n in range(2, MAX_PARTS + 1)}
    return keys | {child(parsed.rkey, OPTION, n) for n in range(1, MAX_OPTIONS + 2)}
