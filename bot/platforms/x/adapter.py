"""The X adapter: posts, polls and video through API v2 with OAuth 1.0a user context.

Capabilities. Posting (text, a poll, or one video) works on the free tier. Reading replies,
mentions and poll results needs a paid tier: with ``post_only=True`` (the default) the adapter
never reads and ``limits().can_read`` is False, so a story takes its votes and ideas from its
other platforms. With ``post_only=False`` the first 402/403 on a read (X answers
``client-not-enrolled`` when the tier lacks the endpoint) switches this instance to post-only,
logs why, and fetching then returns no replies (``fetch_tally`` raises PermanentError).

Idempotency. X takes no idempotency key, so ``publish`` follows this rule, which needs no
storage of its own:

1. a key already published by this process returns the same post, with no call;
2. when the account can read, the account's latest posts (``GET /2/users/:id/tweets``) are
   searched first for one with the same text (X's HTML escaping and t.co links undone) that
   replies to the same post; if there is one, it is returned and nothing is posted;
3. otherwise the post is made. X refuses a text equal to one of the account's recent posts
   with 403 "You are not allowed to create a Tweet with duplicate content": the post was most
   likely made by an attempt whose answer was lost (a crash, a restart). When the account can
   read, step 2 runs again; if the post is still not there, TransientError (the timeline may
   lag; if it keeps failing, another post has this text). A post-only account cannot look, so
   PermanentError says what to check and the outbox holds the post for the operator instead
   of posting it twice. Consequence: two posts of a story must never share their text.

Field names. X's current API reference says ``post.fields``/``referenced_posts``/``repost_count``
where older docs and recorded traffic say ``tweet.fields``/``referenced_tweets``/
``retweet_count``. Requests use the reference's names; a 400 that rejects them switches this
instance to the older names once. Answers are read in either dialect.

Errors are translated at the boundary: 429 → RateLimited (``reset_at`` from the exhausted
window's ``x-…-reset`` header), 5xx and network failures → TransientError, other 4xx →
PermanentError with X's own explanation. Apart from waiting for media processing (x_media),
nothing here sleeps or retries a failed call; the outbox does.
"""

from __future__ import annotations

import html
import logging
import re
import time
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any

import requests

from bot.platforms.base import Limits, OutgoingPost, PollTally, PostRef, Reply
from bot.platforms.x.media import CHUNK_BYTES, Uploaded, media_category, upload
from story_state.clock import utcnow
from story_state.errors import (
    BackendUnavailable,
    PermanentError,
    PlatformError,
    RateLimited,
    TransientError,
)

log = logging.getLogger(__name__)

MAX_POST_CHARS = 280
MAX_OPTION_CHARS = 25
MIN_POLL_MINUTES, MAX_POLL_MINUTES = 5, 10080
RECENT_LOOKUP = 20  # own posts searched for an earlier attempt
MAX_PAGES = 5  # pages of 100 per reply source and fetch
TIMEOUT = (10.0, 120.0)
_SNOWFLAKE_EPOCH_MS = 1288834974657
_URL = re.compile(r"https?://\S+")
_LEADING_MENTIONS = re.compile(r"^(?:@\w{1,15}\s+)+")
_ID = re.compile(r"^[0-9]{1,19}$")


class DuplicateContent(PermanentError):
    """X refused a post because its text equals one of the account's recent posts."""


class Forbidden(PermanentError):
    """402/403: the account's API tier or the app's permissions do not allow this call."""


@dataclass(frozen=True)
class _Dialect:
    fields_param: str
    post_fields: str
    expansions: str


_REFERENCE = _Dialect(
    "post.fields", "conversation_id,created_at,public_metrics", "author_id,referenced_posts"
)
_CLASSIC = _Dialect(
    "tweet.fields",
    "author_id,conversation_id,created_at,public_metrics,referenced_tweets",
    "author_id",
)


class XPlatform:
    """The Platform port on X (API v2); see the module docstring for the rules it follows."""

    name = "x"

    def __init__(
        self,
        consumer_key: str,
        consumer_secret: str,
        access_token: str,
        access_secret: str,
        *,
        post_only: bool = True,
        api_base: str = "https://api.x.com",
        media_deadline_s: float = 600.0,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
        user_id: str | None = None,
        media_chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        try:
            import tweepy
        except ImportError as exc:
            raise BackendUnavailable(
                "the X adapter needs tweepy: pip install 'storybot[x]'"
            ) from exc
        # tweepy signs OAuth 1.0a user-context requests; tweepy.Client itself cannot be pointed
        # at another host (tests, proxies) and has no v2 media upload, so requests carries them.
        handler = tweepy.OAuth1UserHandler(
            consumer_key, consumer_secret, access_token, access_secret
        )
        self._auth = handler.apply_auth()
        self._base = api_base.rstrip("/")
        self._session = session or requests.Session()
        self._can_read = not post_only
        self._deadline_s = media_deadline_s
        self._clock = clock
        self._sleep = sleep
        self._user_id = user_id
        self._chunk = media_chunk_bytes
        self._dialect = _REFERENCE
        self._published: dict[str, PostRef] = {}
        self._uploads: dict[str, tuple[Uploaded, ...]] = {}
        self._conversations: dict[str, str] = {}
        self._owns_session = session is None

    def close(self) -> None:
        """Close the HTTP session this adapter opened (a session passed in stays open)."""
        if self._owns_session:
            self._session.close()

    # -- the port -----------------------------------------------------------------

    def limits(self) -> Limits:
        return Limits(
            max_poll_options=4,
            max_option_chars=MAX_OPTION_CHARS,
            min_poll_minutes=MIN_POLL_MINUTES,
            max_poll_minutes=MAX_POLL_MINUTES,
            max_post_chars=MAX_POST_CHARS,
            accepts_video=True,
            can_read=self._can_read,
        )

    def publish(self, post: OutgoingPost) -> PostRef:
        if (done := self._published.get(post.idempotency_key)) is not None:
            return done
        body = self._body(post)  # refuses a malformed post before any call
        ref = self._find_posted(post) if self._can_read else None
        if ref is None:
            media_ids = self._media_ids(post)
            if media_ids:
                body["media"] = {"media_ids": media_ids}
            try:
                created = self._call("POST", "/2/tweets", json=body)
            except DuplicateContent as exc:
                ref = self._after_duplicate(post, exc)
            else:
                data = created.get("data")
                if not isinstance(data, dict) or not _ID.match(str(data.get("id", ""))):
                    raise PermanentError(f"X did not say which post it made: {_brief(created)}")
                ref = self._ref(str(data["id"]))
        self._published[post.idempotency_key] = ref
        self._uploads.pop(post.idempotency_key, None)
        return ref

    def fetch_replies(self, posts: tuple[PostRef, ...]) -> list[Reply]:
        ids = {p.remote_id for p in posts if p.platform == self.name}
        if not ids or not self._can_read:
            return []
        found: dict[str, Reply] = {}
        try:
            me = self._me()
            conversations = sorted({self._conversation(i) for i in ids})
            query = " OR ".join(f"conversation_id:{c}" for c in conversations)
            common = {"since_id": min(ids, key=int), "max_results": "100"}
            common["user.fields"] = "name,username"
            pages = chain(
                self._pages("/2/tweets/search/recent", {**common, "query": query}, "next_token"),
                self._pages(f"/2/users/{me}/mentions", common, "pagination_token"),
            )
            for page in pages:
                users = {u.get("id"): u for u in _includes(page, "users")}
                for tweet in _list(page.get("data")):
                    reply = self._reply(tweet, users, ids, me)
                    if reply is not None:
                        found.setdefault(reply.remote_id, reply)
        except Forbidden as exc:
            self._go_post_only(exc)
            return []
        return sorted(found.values(), key=lambda r: int(r.remote_id))

    def fetch_tally(self, poll: PostRef) -> PollTally:
        if not self._can_read:
            raise PermanentError("x: post-only (the API tier cannot read poll results)")
        try:
            body = self._call(
                "GET",
                f"/2/tweets/{_checked_id(poll.remote_id)}",
                params={
                    "expansions": "attachments.poll_ids",
                    "poll.fields": "duration_minutes,end_datetime,options,voting_status",
                },
            )
        except Forbidden as exc:
            self._go_post_only(exc)
            raise PermanentError(f"x: cannot read poll results: {exc}") from exc
        polls = _includes(body, "polls")
        if not isinstance(body.get("data"), dict) or not polls:
            raise PermanentError(f"x: post {poll.remote_id} has no poll: {_brief(body)}")
        options = sorted(_list(polls[0].get("options")), key=lambda o: int(o.get("position", 0)))
        counts = tuple(int(o.get("votes") or 0) for o in options)
        closed = polls[0].get("voting_status") == "closed"
        return PollTally(self.name, counts, voters=sum(counts), closed=closed)

    # -- publishing -----------------------------------------------------------------

    def _body(self, post: OutgoingPost) -> dict[str, Any]:
        if len(post.text) > MAX_POST_CHARS:
            raise PermanentError(
                f"x: post text has {len(post.text)} characters (max {MAX_POST_CHARS})"
            )
        if not post.text.strip() and not post.media:
            raise PermanentError("x: a post needs text or media")
        body: dict[str, Any] = {"text": post.text}
        if post.in_reply_to is not None:
            body["reply"] = {"in_reply_to_tweet_id": _checked_id(post.in_reply_to)}
        for media in post.media:
            media_category(media.mime_type)
        moving = [m for m in post.media if m.mime_type.startswith("video/") or "gif" in m.mime_type]
        if len(post.media) > 4 or (moving and len(post.media) > 1):
            raise PermanentError("x: a post carries one video or GIF, or up to 4 images")
        if post.poll is not None:
            if post.media:
                raise PermanentError("x: a post cannot carry both a poll and media")
            options = post.poll.options
            if not 2 <= len(options) <= 4:
                raise PermanentError(f"x: a poll has 2–4 options, not {len(options)}")
            for label in options:
                if not 1 <= len(label) <= MAX_OPTION_CHARS:
                    raise PermanentError(
                        f"x: poll option {label!r} has {len(label)} characters "
                        f"(1–{MAX_OPTION_CHARS})"
                    )
            body["poll"] = {
                "options": list(options),
                "duration_minutes": self._poll_minutes(post.poll.closes_at),
            }
        return body

    def _poll_minutes(self, closes_at: datetime) -> int:
        left = _aware(closes_at) - _aware(self._clock())
        return max(MIN_POLL_MINUTES, min(MAX_POLL_MINUTES, int(left.total_seconds() // 60)))

    def _media_ids(self, post: OutgoingPost) -> list[str]:
        if not post.media:
            return []
        cached = self._uploads.get(post.idempotency_key, ())
        margin = timedelta(minutes=10)
        if len(cached) == len(post.media) and all(
            _aware(u.expires_at) - margin > _aware(self._clock()) for u in cached
        ):
            return [u.media_id for u in cached]
        done = tuple(
            upload(
                self._call,
                m.path,
                m.mime_type,
                m.alt_text,
                clock=self._clock,
                sleep=self._sleep,
                deadline_s=self._deadline_s,
                chunk_bytes=self._chunk,
            )
            for m in post.media
        )
        # Kept so that a retry after a failed post does not upload the same video again.
        self._uploads[post.idempotency_key] = done
        return [u.media_id for u in done]

    def _find_posted(self, post: OutgoingPost) -> PostRef | None:
        """The account's recent post with this text and reply target, if there is one."""
        try:
            body = self._read(
                f"/2/users/{self._me()}/tweets",
                {"max_results": str(RECENT_LOOKUP), "exclude": "retweets"},
            )
        except Forbidden as exc:
            self._go_post_only(exc)
            return None
        wanted = _normalise(post.text)
        for tweet in _list(body.get("data")):
            if _normalise(html.unescape(str(tweet.get("text", "")))) == wanted and (
                _replied_to(tweet) == post.in_reply_to
            ):
                log.info("x: %s was already posted as %s", post.idempotency_key, tweet.get("id"))
                return self._ref(str(tweet["id"]))
        return None

    def _after_duplicate(self, post: OutgoingPost, exc: DuplicateContent) -> PostRef:
        """X says the text was posted recently: find that post, or say what to check."""
        ref = self._find_posted(post) if self._can_read else None
        if ref is not None:
            return ref
        if self._can_read:
            # Not (yet) among the latest posts: timeline lag, or another post has this text.
            raise TransientError(
                f"x: X refused {post.idempotency_key} as duplicate content ({exc}) and no "
                "recent post has this text in reply to the same post; will look again. If "
                "this repeats, another post has the same text: make the text unique"
            ) from exc
        raise PermanentError(
            f"x: X refused {post.idempotency_key} as duplicate content ({exc}). Most likely "
            "an earlier attempt already made this post; the account is post-only, so storybot "
            "cannot look it up. Check the account's posts, then retry or skip this post"
        ) from exc

    # -- reading --------------------------------------------------------------------

    def _me(self) -> str:
        if self._user_id is None:
            data = self._call("GET", "/2/users/me").get("data")
            if not isinstance(data, dict) or not _ID.match(str(data.get("id", ""))):
                raise PermanentError("x: /2/users/me did not name the account")
            self._user_id = str(data["id"])
        return self._user_id

    def _conversation(self, post_id: str) -> str:
        """The root of the thread ``post_id`` is in (search works per conversation)."""
        if post_id not in self._conversations:
            data = self._read(f"/2/tweets/{_checked_id(post_id)}", {}).get("data")
            found = data.get("conversation_id") if isinstance(data, dict) else None
            self._conversations[post_id] = str(found or post_id)
        return self._conversations[post_id]

    def _pages(
        self, path: str, params: Mapping[str, str], token_name: str
    ) -> Iterator[dict[str, Any]]:
        query = dict(params)
        for _ in range(MAX_PAGES):
            page = self._read(path, query)
            yield page
            meta = page.get("meta")
            token = meta.get("next_token") if isinstance(meta, dict) else None
            if not token:
                return
            query[token_name] = str(token)

    def _reply(
        self, tweet: dict[str, Any], users: Mapping[Any, Any], ours: set[str], me: str
    ) -> Reply | None:
        target = _replied_to(tweet)
        author = str(tweet.get("author_id") or "")
        if target not in ours or not author or author == me or not _ID.match(str(tweet.get("id"))):
            return None
        user = users.get(author) or {}
        metrics = tweet.get("public_metrics") or {}
        reposts = metrics.get("repost_count", metrics.get("retweet_count", 0))
        return Reply(
            platform=self.name,
            remote_id=str(tweet["id"]),
            author_handle=str(user.get("username") or author),
            author_name=str(user.get("name") or user.get("username") or author),
            text=_LEADING_MENTIONS.sub("", html.unescape(str(tweet.get("text", "")))),
            in_reply_to=str(target),
            posted_at=_posted_at(tweet),
            likes=int(metrics.get("like_count") or 0),
            boosts=int(reposts or 0) + int(metrics.get("quote_count") or 0),
        )

    def _read(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        """A GET that asks for the fields replies need, in the dialect X understands."""
        while True:
            dialect = self._dialect
            query = {**params, dialect.fields_param: dialect.post_fields}
            query["expansions"] = dialect.expansions
            try:
                return self._call("GET", path, params=query)
            except PermanentError as exc:
                rejected = str(exc)
                if (
                    dialect is _CLASSIC
                    or ": 400 " not in rejected
                    or not any(name in rejected for name in ("post.fields", "referenced_posts"))
                ):
                    raise
                log.warning("x: %s; using the older tweet.fields names from now on", exc)
                self._dialect = _CLASSIC

    def _go_post_only(self, exc: PlatformError) -> None:
        if self._can_read:
            log.warning(
                "x: this account's API access cannot read replies or polls (%s); switching "
                "to post-only: this story's votes and ideas will come from its other platforms",
                exc,
            )
        self._can_read = False

    # -- HTTP -----------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
    ) -> dict[str, Any]:
        """One request; the JSON answer, or the error translated into our tree."""
        what = f"{method} {path}"
        try:
            resp = self._session.request(
                method,
                self._base + path,
                params=params,
                json=json,
                data=data,
                files=files,
                auth=self._auth,
                timeout=TIMEOUT,
            )
        except requests.RequestException as exc:
            raise TransientError(f"x: {what}: {type(exc).__name__}: {exc}") from exc
        with resp:
            try:
                resp.raise_for_status()
            except requests.HTTPError as exc:
                raise _translate(resp, what) from exc
            if not resp.content:
                return {}
            try:
                body = resp.json()
            except ValueError as exc:
                raise TransientError(f"x: {what}: answer is not JSON") from exc
        return body if isinstance(body, dict) else {}

    def _ref(self, post_id: str) -> PostRef:
        return PostRef(self.name, post_id, f"https://x.com/i/web/status/{post_id}")


def _translate(resp: requests.Response, what: str) -> PlatformError:
    status = resp.status_code
    detail = _problem(resp)
    message = f"x: {what}: {status} {detail}"
    if status == 429:
        return RateLimited(message, _reset_at(resp.headers))
    if status >= 500:
        return TransientError(message)
    if status == 403 and "duplicate content" in detail.lower():
        return DuplicateContent(message)
    if status == 401:
        return PermanentError(f"{message} (check the four X credentials)")
    if status in (402, 403):
        return Forbidden(message)
    return PermanentError(message)


def _problem(resp: requests.Response) -> str:
    """X's explanation from any of its error shapes (problem+json, errors[], plain text)."""
    try:
        body = resp.json()
    except ValueError:
        return (resp.text or resp.reason or "").strip()[:300]
    if not isinstance(body, dict):
        return str(body)[:300]
    parts: list[str] = []
    for item in [body, *_list(body.get("errors"))]:
        for key in ("title", "detail", "message", "reason"):
            value = item.get(key)
            if isinstance(value, str) and value and value not in parts:
                parts.append(value)
    return "; ".join(parts)[:500] or _brief(body)


def _reset_at(headers: Mapping[str, str]) -> datetime | None:
    """When the exhausted limit resets: the 15-minute window or a 24-hour cap."""
    exhausted: list[int] = []
    fallback: int | None = None
    for prefix in ("x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour"):
        try:
            reset = int(headers.get(f"{prefix}-reset", ""))
        except ValueError:
            continue
        fallback = reset if prefix == "x-rate-limit" else fallback
        if headers.get(f"{prefix}-remaining") == "0":
            exhausted.append(reset)
    chosen = max(exhausted) if exhausted else fallback
    return datetime.fromtimestamp(chosen, UTC) if chosen is not None else None


def _replied_to(tweet: Mapping[str, Any]) -> str | None:
    refs = tweet.get("referenced_posts") or tweet.get("referenced_tweets") or ()
    for ref in _list(refs):
        if ref.get("type") == "replied_to":
            return str(ref.get("id"))
    return None


def _posted_at(tweet: Mapping[str, Any]) -> datetime:
    raw = tweet.get("created_at")
    if isinstance(raw, str):
        try:
            return _aware(datetime.fromisoformat(raw.replace("Z", "+00:00")))
        except ValueError:
            pass
    # X ids are snowflakes: the creation time is in the high bits.
    millis = (int(tweet["id"]) >> 22) + _SNOWFLAKE_EPOCH_MS
    return datetime.fromtimestamp(millis / 1000, UTC)


def _normalise(text: str) -> str:
    text = _URL.sub(" ", unicodedata.normalize("NFC", text))
    return " ".join(text.split())


def _includes(body: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    includes = body.get("includes")
    return _list(includes.get(kind)) if isinstance(includes, dict) else []


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _checked_id(value: str) -> str:
    if not _ID.match(value):
        raise PermanentError(f"x: {value!r} is not an X post id")
    return value


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _brief(body: Any) -> str:
    return str(body)[:300]
