"""The Bluesky adapter: the story on the AT Protocol, through the atproto SDK.

A clip is one post with the video (or its still where the video is refused), and the rest of a
long caption as self-replies. A poll is a question post with one reply per option: a like on an
option reply is a vote (see ``votes.py`` for the one-vote rule and who counts for no option).
Ideas are the replies to the clip or the question (and to the bot's own replies under them), and
posts that mention the bot outside its threads: ``reading.py`` reads both. Every record's key
comes from the outbox key (``rkeys.py``), so a repeated publish finds what the last attempt made
instead of posting twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

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

from bot.platforms._retry import CALL_PAUSES_S
from bot.platforms.base import Limits, Media, OutgoingPost, PollTally, PostRef, Reply
from bot.platforms.bluesky.media import (
    STILL_ALT_PREFIX,
    STILL_NAME,
    VIDEO_ALT_GRAPHEMES,
    aspect,
    small_image,
)
from bot.platforms.bluesky.reading import Reader
from bot.platforms.bluesky.records import Ref, aspect_model, facet_model, get, iso
from bot.platforms.bluesky.rkeys import (
    MAX_OPTIONS,
    MAX_PARTS,
    OPTION,
    PART,
    POST,
    AtUri,
    child,
    tid_for,
)
from bot.platforms.bluesky.session import Account, SessionFile, make_client
from bot.platforms.bluesky.text import (
    CREDITS_MARK,
    Facet,
    facets,
    mentioned_handles,
    shorten,
    split_thread,
)
from bot.platforms.bluesky.votes import RULES, Blocklist, count

__all__ = ["BlueskyPlatform"]

log = logging.getLogger(__name__)

MAX_CAPTION_CHARS = 600  # a caption beyond one post (300 graphemes) continues as self-replies
MAX_OPTION_CHARS = 100


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
        blocked_domains: Collection[str] = (),
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
        self._reader = Reader(
            self.account, clock=clock, sleep=sleep, pauses=call_pauses, page_size=page_size
        )
        self._language = language
        self._web_url = web_url.rstrip("/")
        self._video = video
        # Accounts (handles or DIDs) read at every count, as the operator blocks people; and
        # handle domains (a Bluesky handle is a domain name: "spam.example" and under it).
        self._blocked = blocked
        self._blocked_domains = tuple(blocked_domains)
        self._clock = clock
        self._handles: dict[str, str | None] = {}  # handle → DID, for @mentions in captions
        # Learnt from this PDS's own answer to a video upload; kept while the process runs.
        self.video_refused = False

    # -- plumbing ----------------------------------------------------------------------------

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
        return self._reader.record(uri)

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
        if CREDITS_MARK in text and not self._reader.people and post.in_reply_to is not None:
            self._reader.learn_people(post.in_reply_to)
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
            self._reader.remember_options(head.uri, options)
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
        people = {name: did for name, did in self._reader.people.items() if did}
        return facets(text, handles=self._handles, people=people)

    def _resolve(self, handle: str) -> str | None:
        def resolve(client: Client) -> Any:
            return client.com.atproto.identity.resolve_handle(params={"handle": handle})

        try:
            return str(self._reader.call(f"resolving @{handle}", resolve).did)
        except PermanentError:
            log.info("@%s does not resolve: it stays plain text", handle)
            return None

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

        return self._reader.call(f"uploading {name}", upload)

    # -- reading ----------------------------------------------------------------------------

    def fetch_replies(self, posts: tuple[PostRef, ...]) -> list[Reply]:
        return self._reader.replies(
            list(dict.fromkeys(p.remote_id for p in posts if p.platform == self.name))
        )

    def option_uris(self, question: str) -> tuple[str, ...]:
        """The question's option replies, found from its key (a restarted adapter too)."""
        return self._reader.option_uris(question)

    def blocklist(self) -> Blocklist:
        """Whose likes count for no option, as the operator's settings say now."""
        return Blocklist.of(self._blocked(), self._blocked_domains)

    def fetch_tally(self, poll: PostRef) -> PollTally:
        question = poll.remote_id
        parsed = AtUri.parse(question)
        if parsed is None or parsed.did != self.did:
            raise PermanentError(f"{question} is not one of the bot's Bluesky posts")
        if self._reader.record(question) is None:
            raise PermanentError(f"the question post {question} was deleted: no votes to count")
        options = self.option_uris(question)
        if not options:
            raise PermanentError(f"Bluesky post {question} has no option replies: not a poll")
        counted = count(self._reader.votes(options, self.blocklist()), len(options))
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
