"""The Mastodon adapter: any server that speaks the Mastodon client API, through Mastodon.py."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar
from urllib.parse import urlparse

from story_state.clock import utcnow
from story_state.errors import (
    BackendUnavailable,
    PermanentError,
    PlatformError,
    RateLimited,
    TransientError,
)

try:
    import requests
    from mastodon import Mastodon
    from mastodon.errors import (
        MastodonNotFoundError,
    )
except ImportError as exc:  # pragma: no cover - the extra is installed wherever tests run
    raise BackendUnavailable(
        "the Mastodon platform needs Mastodon.py: pip install 'storybot[mastodon]'"
    ) from exc

from bot.platforms._retry import CALL_PAUSES_S, again_on_transient
from bot.platforms.base import Limits, OutgoingPost, Poll, PollTally, PostRef, Reply
from bot.platforms.mastodon.caps import (
    Capabilities,
    as_int,
    as_str,
    as_utc,
    conservative,
    get,
    items,
    parse_instance,
)
from bot.platforms.mastodon.errors import translated
from bot.platforms.mastodon.media import MediaUploader
from bot.platforms.mastodon.text import comparable, html_to_text

__all__ = ["Capabilities", "MastodonPlatform", "make_client"]

log = logging.getLogger(__name__)
T = TypeVar("T")

REQUEST_TIMEOUT_S = 60.0  # per connect/read, not per upload
# Mastodon.py picks /api/v1/media over /api/v2/media from the version it believes the server
# runs; Pleroma ("2.7.2 (compatible; ...)") and GoToSocial ("0.17.x") would get v1. Every
# current Mastodon-API server has v2 media, so the client is pinned to the Mastodon 4 API.
_API_LEVEL = (4, 0, 0)
_LOOKUP_LIMIT = 40  # the account's own recent statuses searched for an earlier attempt
_UNIQUE_TEXT = 40  # root posts at least this long are looked up too
# How far the server's clock may be behind ours when it dates an earlier attempt.
_CLOCK_SKEW = timedelta(minutes=2)
_REFRESH_RETRIES = 2
_REFRESH_BUDGET_S = 3.0
_CAPS_RETRY_S = 60.0
_MENTION_PAGE = 80  # Mastodon's largest notifications page
_MENTION_PAGES = 250  # 20,000 mentions a read at most


def _id_order(remote_id: str) -> tuple[int, int, str]:
    """Status and notification ids sort by time as numbers (Mastodon's are snowflakes)."""
    return (0, int(remote_id), "") if remote_id.isdigit() else (1, 0, remote_id)


def make_client(
    instance: str, token: str, *, request_timeout: float = REQUEST_TIMEOUT_S
) -> Mastodon:
    """A Mastodon.py client that throws on rate limits and never probes or checks versions."""
    client = Mastodon(
        access_token=token,
        api_base_url=instance,
        ratelimit_method="throw",
        version_check_mode="none",
        mastodon_version=".".join(map(str, _API_LEVEL)),
        request_timeout=request_timeout,
        user_agent="storybot",
        lang="en",  # validation messages in English: see _mastodon_errors._VALIDATION
    )
    client.mastodon_major, client.mastodon_minor, client.mastodon_patch = _API_LEVEL
    return client


def _reset(response: requests.Response) -> datetime | None:
    """When a 429 ends, from Mastodon's X-RateLimit-Reset (an ISO 8601 time)."""
    value = response.headers.get("X-RateLimit-Reset", "")
    try:
        return datetime.fromisoformat(value).astimezone(UTC) if value else None
    except ValueError:
        return None


class MastodonPlatform:
    """The Platform port on one Mastodon-API account."""

    name = "mastodon"
    # fetch_replies returns every reply to the posts asked about (the thread context, and every
    # mention since the oldest of them past its 4,096 cap): a missing one was deleted.
    reads_every_reply = True

    def __init__(
        self,
        instance: str,
        token: str,
        *,
        visibility: str = "public",
        language: str | None = "en",
        spoiler_text: str | None = None,
        media_deadline_s: float = 600.0,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        client: Mastodon | None = None,
        call_pauses: Sequence[float] = CALL_PAUSES_S,
    ) -> None:
        self._instance = instance
        self._client = client if client is not None else make_client(instance, token)
        self._visibility = visibility
        self._language = language
        self._spoiler_text = spoiler_text or None
        self._clock = clock
        self._sleep = sleep
        self._pauses = tuple(call_pauses)
        self._media = MediaUploader(
            self._client,
            clock=clock,
            sleep=sleep,
            deadline_s=media_deadline_s,
            call_pauses=self._pauses,
        )
        self._caps: Capabilities | None = None
        self._caps_failed_at: datetime | None = None
        self._me: str | None = None
        self._handles: tuple[str, ...] = ()
        self._poll_ids: dict[str, str] = {}  # status id → poll id, for polls posted here

    # -- capabilities ---------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """The server's advertised limits, read from /api/v2/instance, else v1, else assumed.

        A server whose instance documents cannot be read (404, 5xx, not JSON) still gets posts,
        with conservative limits; those are read again after a minute. A server that cannot be
        reached at all raises TransientError: nothing could be posted there anyway.
        """
        now = self._clock()
        failed = self._caps_failed_at
        recent = failed is not None and (now - failed).total_seconds() < _CAPS_RETRY_S
        if self._caps is not None and (self._caps.source != "defaults" or recent):
            return self._caps
        caps = self._again(self._read_capabilities)
        if caps.source == "defaults":
            self._caps_failed_at = now
        if self._caps is None or self._caps.source != caps.source:
            log.info(
                "Mastodon-API server %s: %s %s (%s), %s",
                caps.domain,
                caps.software_name,
                caps.version,
                f"/api/{caps.source}/instance" if caps.source != "defaults" else "limits assumed",
                "video accepted"
                if caps.media_known and caps.accepts_video
                else "images only"
                if caps.media_known
                else "media types unknown: the first video upload will tell",
            )
        self._caps = caps
        return caps

    def _read_capabilities(self) -> Capabilities:
        host = urlparse(self._instance).netloc or self._instance
        problems = []
        for version in ("v2", "v1"):
            document = self._instance_document(version)
            if isinstance(document, str):
                problems.append(f"/api/{version}/instance: {document}")
                log.info("%s: cannot read /api/%s/instance: %s", host, version, document)
                continue
            return parse_instance(document, version, host)
        why = "; ".join(problems)
        log.warning("%s: no readable instance document (%s); conservative limits", host, why)
        return conservative(host, why)

    def _instance_document(self, version: str) -> dict[str, object] | str:
        """The instance document, or why it could not be read (a server answer, not a network
        failure: those raise). Our own request, without Mastodon.py's trailing slash, which
        Takahe and others answer with 404."""
        client = self._client
        url = f"{(client.api_base_url or self._instance).rstrip('/')}/api/{version}/instance"
        headers = {"Accept": "application/json", "User-Agent": "storybot"}
        if client.access_token:
            headers["Authorization"] = f"Bearer {client.access_token}"
        try:
            response = client.session.get(url, headers=headers, timeout=client.request_timeout)
        except requests.RequestException as exc:
            raise TransientError(f"network error while reading the server's limits: {exc}") from exc
        status = response.status_code
        if status == 429:
            raise RateLimited("rate limited while reading the server's limits", _reset(response))
        if status == 401:
            raise PermanentError(
                "the Mastodon server refused the access token while reading its limits. "
                "Get a new one with `storybot login mastodon --instance URL`."
            )
        if status != 200:
            return f"HTTP {status}"
        try:
            document = response.json()
        except ValueError:
            return "the answer is not JSON"
        if not isinstance(document, dict):
            return "the answer is not a JSON object"
        return document

    def _again(self, call: Callable[[], T]) -> T:
        """A call that is safe to repeat, tried again on a transient failure."""
        return again_on_transient(call, self._sleep, self._pauses)

    def close(self) -> None:
        """Close the HTTP connections the client keeps open."""
        session = getattr(self._client, "session", None)
        if session is not None:
            session.close()

    def limits(self) -> Limits:
        now = self._clock()
        failed = self._caps_failed_at
        if self._caps is None and failed and (now - failed).total_seconds() < _CAPS_RETRY_S:
            return Limits()
        try:
            return self.capabilities().limits()
        except PlatformError as exc:
            self._caps_failed_at = now
            log.warning("using default Mastodon limits for now: %s", exc)
            return Limits()

    @property
    def video_refused(self) -> bool:
        """Whether this server refused a video upload (then stills are posted instead)."""
        return self._media.video_refused

    # -- publishing -----------------------------------------------------------------

    def publish(self, post: OutgoingPost) -> PostRef:
        caps = self.capabilities()
        # A restarted process cannot know whether its last attempt landed, and not every
        # server honours Idempotency-Key: look for the post before making it again.
        if (
            post.in_reply_to is not None
            or post.not_before is not None
            or len(comparable(post.text)) >= _UNIQUE_TEXT
        ):
            found = self._find_existing(post)
            if found is not None:
                log.info("%s is already posted as %s", post.idempotency_key, found.remote_id)
                return found
        media_ids = self._media.upload_all(post.media, caps)
        poll = self._poll(post.poll, caps) if post.poll is not None else None
        with translated(self._client, "posting a status", creating_status=True):
            status = self._client.status_post(
                post.text,
                in_reply_to_id=post.in_reply_to,
                media_ids=media_ids or None,
                visibility=self._visibility,
                spoiler_text=self._spoiler_text,
                language=self._language,
                idempotency_key=post.idempotency_key,
                poll=poll,
            )
        return self._ref(status)

    def _poll(self, poll: Poll, caps: Capabilities) -> object:
        wanted = int((poll.closes_at - self._clock()).total_seconds())
        seconds = caps.clamp_poll_seconds(wanted)
        if seconds != wanted:
            log.warning(
                "poll length %d s is outside what %s allows; using %d s",
                wanted,
                caps.domain,
                seconds,
            )
        return self._client.make_poll(list(poll.options), expires_in=seconds, multiple=False)

    def _ref(self, status: object) -> PostRef:
        remote_id = as_str(get(status, "id"))
        poll_id = as_str(get(status, "poll", "id"))
        if poll_id:
            self._poll_ids[remote_id] = poll_id
        url = get(status, "url") or get(status, "uri")
        return PostRef(self.name, remote_id, as_str(url) or None)

    def _account_id(self) -> str:
        if self._me is None:

            def read() -> object:
                with translated(self._client, "reading the bot's own account"):
                    return self._client.account_verify_credentials()

            account = self._again(read)
            self._me = as_str(get(account, "id"))
            self._handles = (as_str(get(account, "username")), as_str(get(account, "acct")))
        return self._me

    def own_handles(self) -> tuple[str, ...]:
        """The bot's own names as replies mention it: ``name`` and ``name@domain`` (the domain
        may carry a port), so the harvest never counts its own mention as a follower's."""
        self._account_id()
        domain = self.capabilities().domain
        names = {h for h in self._handles if h}
        return tuple(sorted(names | {f"{h.split('@')[0]}@{domain}" for h in names}))

    def _find_existing(self, post: OutgoingPost) -> PostRef | None:
        me = self._account_id()

        def read() -> object:
            with translated(self._client, "looking for an earlier attempt"):
                return self._client.account_statuses(me, limit=_LOOKUP_LIMIT)

        recent = self._again(read)
        parent = post.in_reply_to or ""
        text = comparable(post.text)
        for status in items(recent):
            if get(status, "reblog") is not None:
                continue
            if as_str(get(status, "in_reply_to_id")) != parent:
                continue
            if comparable(html_to_text(as_str(get(status, "content")))) != text:
                continue
            if post.not_before is not None:
                made = as_utc(get(status, "created_at"), post.not_before)
                if made < post.not_before - _CLOCK_SKEW:
                    continue  # the same words, posted before this post was meant: not ours
            return self._ref(status)
        return None

    # -- reading --------------------------------------------------------------------

    def fetch_replies(self, posts: tuple[PostRef, ...]) -> list[Reply]:
        wanted = list(dict.fromkeys(p.remote_id for p in posts if p.platform == self.name))
        if not wanted:
            return []
        me = self._account_id()
        domain = self.capabilities().domain
        statuses: list[object] = []
        for remote_id in wanted:
            statuses += self._again(partial(self._descendants, remote_id))
        statuses += self._mentions(min(wanted, key=_id_order))
        replies: dict[str, Reply] = {}
        for status in statuses:
            reply = self._reply(status, set(wanted), me, domain)
            if reply is not None and reply.remote_id not in replies:
                replies[reply.remote_id] = reply
        return sorted(replies.values(), key=lambda r: (r.posted_at, len(r.remote_id), r.remote_id))

    def _descendants(self, remote_id: str) -> list[object]:
        with translated(self._client, f"reading replies to {remote_id}"):
            try:
                return self._read_context(remote_id)
            except MastodonNotFoundError:
                # A deleted post must not stop the replies to the others from being read.
                log.warning("Mastodon status %s is gone; no replies read from it", remote_id)
                return []

    def _read_context(self, remote_id: str) -> list[object]:
        context = self._client.status_context(remote_id)
        waited = 0.0
        for _ in range(_REFRESH_RETRIES):
            # Mastodon >= 4.4 may still be fetching remote replies (Mastodon-Async-Refresh).
            info = self._client.get_async_refresh_info(context)
            if info is None:
                break
            hint = as_int(info[1]) or 1
            pause = min(float(hint), _REFRESH_BUDGET_S / _REFRESH_RETRIES)
            pause = min(pause, _REFRESH_BUDGET_S - waited)
            if pause <= 0:
                break
            self._sleep(pause)
            waited += pause
            context = self._client.status_context(remote_id)
        return items(get(context, "descendants"))

    def _mentions(self, oldest_wanted: str) -> list[object]:
        """Every mention since the oldest post asked about, page by page (newest first).

        Mastodon's thread context stops at 4,096 descendants; replies past that are still
        found here, as the mentions they carry. Pages are read until one reaches back past
        the oldest post asked about (status ids grow with time), or nothing older is left.
        """
        found: list[object] = []
        max_id: str | None = None
        for _ in range(_MENTION_PAGES):

            def read(before: str | None = max_id) -> object:
                with translated(self._client, "reading mentions"):
                    return self._client.notifications(
                        types=["mention"], limit=_MENTION_PAGE, max_id=before
                    )

            notes = items(self._again(read))
            if not notes:
                break
            for note in notes:
                status = get(note, "status")
                # Servers that ignore types[] send every kind: keep the mentions only.
                if get(note, "type") == "mention" and status is not None:
                    found.append(status)
            oldest = as_str(get(notes[-1], "status", "id")) or as_str(get(notes[-1], "id"))
            if _id_order(oldest) < _id_order(oldest_wanted):
                break  # this page reaches back before the posts being read
            max_id = as_str(get(notes[-1], "id"))
        return found

    def _reply(self, status: object, wanted: set[str], me: str, domain: str) -> Reply | None:
        parent = as_str(get(status, "in_reply_to_id"))
        account = get(status, "account")
        if parent not in wanted or as_str(get(account, "id")) == me:
            return None
        acct = as_str(get(account, "acct")) or as_str(get(account, "username"))
        return Reply(
            platform=self.name,
            remote_id=as_str(get(status, "id")),
            author_handle=acct if "@" in acct else f"{acct}@{domain}",
            author_name=as_str(get(account, "display_name")) or as_str(get(account, "username")),
            text=as_str(get(status, "content")),
            in_reply_to=parent,
            posted_at=as_utc(get(status, "created_at"), self._clock()),
            likes=as_int(get(status, "favourites_count")) or 0,
            boosts=as_int(get(status, "reblogs_count")) or 0,
        )

    def fetch_tally(self, poll: PostRef) -> PollTally:
        poll_id = self._poll_ids.get(poll.remote_id)

        def read() -> object:
            with translated(self._client, f"reading the poll of {poll.remote_id}"):
                if poll_id is not None:
                    return self._client.poll(poll_id)
                return get(self._client.status(poll.remote_id), "poll")

        data = self._again(read)
        if data is None:
            raise PermanentError(f"Mastodon status {poll.remote_id} has no poll")
        self._poll_ids[poll.remote_id] = as_str(get(data, "id"))
        counts = tuple(as_int(get(o, "votes_count")) or 0 for o in items(get(data, "options")))
        votes = as_int(get(data, "votes_count"))
        voters = as_int(get(data, "voters_count"))
        if voters is None:  # older servers; a multiple-choice poll has at least max(counts)
            multiple = bool(get(data, "multiple"))
            voters = max(counts, default=0) if multiple else (votes or sum(counts))
        return PollTally(
            self.name,
            counts,
            voters=voters,
            closed=bool(get(data, "expired")),
            extra={"votes": votes if votes is not None else sum(counts)},
        )
