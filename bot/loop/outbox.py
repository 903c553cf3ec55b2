"""The outbox: each intended post is a row written before the platform call.

A row holds everything needed to send it (text, media, poll) and the row it answers on the
same platform. Rows go out in creation order and only after their parent was sent, so a
platform that lags behind (rate limited, down for an hour) catches up later in thread order
while the other platforms carry on.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session, sessionmaker

from bot.loop import failpoints, health
from bot.platforms.base import Media, OutgoingPost, Platform, Poll
from bot.redact import scrub
from story_state.db import session_scope
from story_state.errors import PermanentError, PlatformError, RateLimited
from story_state.lifecycle import PostState
from story_state.models import Post

log = logging.getLogger(__name__)

# How long a claimed row stays another runner's: longer than one publish can take (a video's
# upload and processing wait is bounded by media_deadline_s, 600 s by default).
CLAIM_LEASE = timedelta(minutes=15)
# The longest wait between tries of a post on a platform that is down.
MAX_BACKOFF = timedelta(minutes=30)


# The claims whose platform call is running in this process right now.
_IN_FLIGHT: set[str] = set()


def runner_identity() -> str:
    """Who is sending: this host, this process, and this outbox (a pid can be reused)."""
    return f"{socket.gethostname()[:60]} pid={os.getpid()} run={uuid.uuid4().hex[:12]}"


def _claim_is_stale(owner: str | None, me: str) -> bool:
    """Whether a claim belongs to a runner that is gone: an earlier process on this host that
    no longer runs (or whose pid is now ours, as after a container restart). A claim made on
    another host, or by a live process here, is only taken over once its lease ends."""
    if not owner:
        return True
    host, _, rest = owner.partition(" pid=")
    my_host = me.partition(" pid=")[0]
    pid_text = rest.partition(" ")[0]
    if host != my_host or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        # This process (or an earlier one with its pid, as after a container restart): the
        # claim stands only while its call is running here.
        return owner not in _IN_FLIGHT
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def idempotency_key(slug: str, number: int, kind: str, platform: str) -> str:
    return f"{slug}:{number}:{kind}:{platform}"


def payload_of(post: OutgoingPost) -> dict[str, Any]:
    return {
        "text": post.text,
        "media": [
            {
                "path": str(m.path),
                "alt_text": m.alt_text,
                "mime_type": m.mime_type,
                "still_alt_text": m.still_alt_text,
            }
            for m in post.media
        ],
        "poll": {"options": list(post.poll.options), "closes_at": post.poll.closes_at.isoformat()}
        if post.poll
        else None,
    }


def outgoing(row: Post, in_reply_to: str | None) -> OutgoingPost:
    data = row.payload or {}
    poll = data.get("poll")
    return OutgoingPost(
        idempotency_key=row.idempotency_key,
        text=str(data.get("text", "")),
        in_reply_to=in_reply_to,
        media=tuple(
            Media(
                Path(m["path"]),
                m["alt_text"],
                m.get("mime_type", "video/mp4"),
                m.get("still_alt_text", ""),
            )
            for m in data.get("media", ())
        ),
        poll=Poll(tuple(poll["options"]), datetime.fromisoformat(poll["closes_at"]))
        if poll
        else None,
        not_before=row.created_at,
    )


def ensure_post(
    session: Session,
    *,
    episode_id: int,
    platform: str,
    kind: str,
    key: str,
    post: OutgoingPost,
    parent_post_id: int | None,
) -> Post:
    """The PENDING row for ``key``, created once; its payload is fixed at creation."""
    row = session.scalars(select(Post).where(Post.idempotency_key == key)).first()
    if row is None:
        row = Post(
            episode_id=episode_id,
            platform=platform,
            kind=kind,
            idempotency_key=key,
            state=PostState.PENDING,
            payload=payload_of(post),
            parent_post_id=parent_post_id,
        )
        session.add(row)
        session.flush()
    return row


class Outbox:
    """Sends due rows; each row is committed before and after its platform call."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        platforms: Mapping[str, Platform],
        retry_base: timedelta,
        max_attempts: int,
        *,
        owner: str | None = None,
        lease: timedelta = CLAIM_LEASE,
    ) -> None:
        self._factory = factory
        self._platforms = platforms
        self._retry_base = retry_base
        self._max_attempts = max_attempts
        self.owner = owner or runner_identity()
        self._lease = lease
        # Whether this process may still act (its runner lock is held); checked before a claim.
        self.guard: Callable[[], bool] = lambda: True

    def sweep(self, now: datetime) -> int:
        """Send every due PENDING row, oldest first; returns how many went out."""
        with session_scope(self._factory) as session:
            ids = list(
                session.scalars(
                    select(Post.id).where(Post.state == PostState.PENDING).order_by(Post.id)
                )
            )
        return sum(1 for post_id in ids if self._send_one(post_id, now))

    def send(self, post_ids: list[int], now: datetime) -> None:
        for post_id in post_ids:
            self._send_one(post_id, now)

    def _send_one(self, post_id: int, now: datetime) -> bool:
        with session_scope(self._factory) as session:
            row = session.get(Post, post_id)
            if row is None or row.state is not PostState.PENDING:
                return False
            if row.next_attempt_at is not None and row.next_attempt_at > now:
                return False
            platform = self._platforms.get(row.platform)
            if platform is None:
                return False  # that platform is not enabled in this run
            parent = session.get(Post, row.parent_post_id) if row.parent_post_id else None
            if parent is not None and parent.state is not PostState.SENT:
                return False  # thread order: the post it answers must go first
            message = outgoing(row, parent.remote_id if parent else None)
            if not self._claim(session, row, message, now):
                return False
        # The claim and the attempt are committed before the call: a crash here leaves a
        # PENDING row that the next start sends again under the same idempotency key.
        _IN_FLIGHT.add(self.owner)  # until the answer is stored or the failure recorded
        try:
            return self._publish(platform, message, post_id, now)
        finally:
            _IN_FLIGHT.discard(self.owner)

    def _publish(
        self, platform: Platform, message: OutgoingPost, post_id: int, now: datetime
    ) -> bool:
        failpoints.hit("before_publish")
        try:
            ref = platform.publish(message)
        except PlatformError as exc:
            self._record_failure(post_id, exc, now)
            health.record(self._factory, platform.name, now, exc)
            return False
        failpoints.hit("after_publish")  # posted, but its remote id is not stored yet
        with session_scope(self._factory) as session:
            row = session.get(Post, post_id)
            assert row is not None
            row.remote_id = ref.remote_id
            row.url = ref.url
            row.state = PostState.SENT
            row.sent_at = now
            row.last_error = None
            row.next_attempt_at = None
            row.claimed_by = row.claimed_until = None
        health.record(self._factory, platform.name, now)
        return True

    def _claim(self, session: Session, row: Post, message: OutgoingPost, now: datetime) -> bool:
        """Make the row ours with one conditional UPDATE, or leave it to the runner sending it.

        Two runners (a second container, a cron `tick` next to a runner whose lock connection
        dropped) can both see a row PENDING; only one UPDATE matches, so only one sends it.
        """
        if not self.guard():
            log.error("not sending %s: this runner no longer holds its lock", row.idempotency_key)
            return False
        # A claim is cleared when its call ends; one still standing belongs to a call in flight
        # (here or in another runner) or to a runner that died: never send over it.
        free = or_(Post.claimed_until.is_(None), Post.claimed_until <= now)
        held = row.claimed_by and row.claimed_until and row.claimed_until > now
        if held and _claim_is_stale(row.claimed_by, self.owner):
            free = or_(free, Post.claimed_by == row.claimed_by)
        result = session.execute(
            update(Post)
            .where(Post.id == row.id, Post.state == PostState.PENDING, free)
            .values(
                claimed_by=self.owner,
                claimed_until=now + self._lease,
                attempts=Post.attempts + 1,
                in_reply_to=message.in_reply_to,
            )
            .execution_options(synchronize_session=False)
        )
        if not isinstance(result, CursorResult) or result.rowcount != 1:
            log.info("%s is being sent by %s", row.idempotency_key, row.claimed_by)
            return False
        return True

    def _record_failure(self, post_id: int, exc: PlatformError, now: datetime) -> None:
        with session_scope(self._factory) as session:
            row = session.get(Post, post_id)
            assert row is not None
            row.claimed_by = row.claimed_until = None
            row.last_error = scrub(f"{type(exc).__name__}: {exc}")
            if isinstance(exc, RateLimited) and exc.reset_at is not None:
                row.next_attempt_at = exc.reset_at
            else:
                backoff = self._retry_base * (2 ** min(row.attempts, 10))
                row.next_attempt_at = now + min(backoff, MAX_BACKOFF)
            # Refused for good: held for the operator. A platform that is down or slow is
            # retried until it answers, then catches up in thread order.
            if isinstance(exc, PermanentError):
                row.state = PostState.FAILED
            log.warning("%s post %s: %s", row.platform, row.idempotency_key, row.last_error)
