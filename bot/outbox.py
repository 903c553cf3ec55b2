"""The outbox: record each intended post before making it, store the remote id after."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.platforms.base import OutgoingPost, Platform
from story_state.db import session_scope
from story_state.errors import PermanentError, PlatformError, RateLimited
from story_state.lifecycle import PostState
from story_state.models import Post


def idempotency_key(slug: str, number: int, kind: str, platform: str) -> str:
    return f"{slug}:{number}:{kind}:{platform}"


def ensure_rows(
    session: Session, episode_id: int, kind: str, keys: Mapping[str, str]
) -> list[Post]:
    """One PENDING row per platform (``keys``: platform → idempotency key), created once."""
    rows = []
    for platform, key in keys.items():
        row = session.scalars(select(Post).where(Post.idempotency_key == key)).first()
        if row is None:
            row = Post(
                episode_id=episode_id,
                platform=platform,
                kind=kind,
                idempotency_key=key,
                state=PostState.PENDING,
            )
            session.add(row)
        rows.append(row)
    session.flush()
    return rows


class Outbox:
    """Sends pending rows; each row is committed before and after its platform call."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        platforms: Mapping[str, Platform],
        retry_base: timedelta,
        max_attempts: int,
    ) -> None:
        self._factory = factory
        self._platforms = platforms
        self._retry_base = retry_base
        self._max_attempts = max_attempts

    def send(
        self,
        post_ids: list[int],
        build: Callable[[Post], OutgoingPost],
        now: datetime,
    ) -> bool:
        """Try every pending row in ``post_ids``; True when all of them are SENT."""
        all_sent = True
        for post_id in post_ids:
            with session_scope(self._factory) as session:
                row = session.get(Post, post_id)
                if row is None or row.state is PostState.SENT:
                    continue
                if row.state is PostState.FAILED or (
                    row.next_attempt_at is not None and row.next_attempt_at > now
                ):
                    all_sent = False
                    continue
                outgoing = build(row)
                row.in_reply_to = outgoing.in_reply_to
                row.attempts += 1
                platform = self._platforms[row.platform]
            # The attempt is committed before the call: a crash here leaves a PENDING row
            # that the next start sends again under the same idempotency key.
            try:
                ref = platform.publish(outgoing)
            except PlatformError as exc:
                all_sent = False
                self._record_failure(post_id, exc, now)
                continue
            with session_scope(self._factory) as session:
                row = session.get(Post, post_id)
                assert row is not None
                row.remote_id = ref.remote_id
                row.url = ref.url
                row.state = PostState.SENT
                row.sent_at = now
                row.last_error = None
        return all_sent

    def _record_failure(self, post_id: int, exc: PlatformError, now: datetime) -> None:
        with session_scope(self._factory) as session:
            row = session.get(Post, post_id)
            assert row is not None
            row.last_error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, RateLimited) and exc.reset_at is not None:
                row.next_attempt_at = exc.reset_at
            else:
                row.next_attempt_at = now + self._retry_base * (2 ** min(row.attempts, 10))
            if isinstance(exc, PermanentError) or row.attempts >= self._max_attempts:
                row.state = PostState.FAILED
