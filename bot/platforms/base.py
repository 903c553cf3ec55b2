"""The platform port: publish posts and polls, read replies and tallies."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Limits:
    """What a platform accepts; the engine fits text and polls to the strictest one."""

    max_poll_options: int = 4
    max_option_chars: int = 50
    min_poll_minutes: int = 5
    max_poll_minutes: int = 10080
    max_post_chars: int = 500
    accepts_video: bool = True
    can_read: bool = True  # replies and poll results (X's free tier cannot)


@dataclass(frozen=True)
class Media:
    path: Path
    alt_text: str
    mime_type: str = "video/mp4"
    # Where a server takes no video and the clip's still goes instead, the still's alt text.
    still_alt_text: str = ""


@dataclass(frozen=True)
class Poll:
    options: tuple[str, ...]
    closes_at: datetime


@dataclass(frozen=True)
class OutgoingPost:
    """One post to make. ``idempotency_key`` makes a repeated call a no-op."""

    idempotency_key: str
    text: str
    in_reply_to: str | None = None
    media: tuple[Media, ...] = ()
    poll: Poll | None = None
    # When the post was first meant (its outbox row's creation): no earlier status can be an
    # attempt of it, so a status with the same text made before then is someone else's.
    not_before: datetime | None = None


@dataclass(frozen=True)
class PostRef:
    platform: str
    remote_id: str
    url: str | None = None


@dataclass(frozen=True)
class Reply:
    platform: str
    remote_id: str
    author_handle: str
    author_name: str
    text: str  # as the platform gives it (HTML on Mastodon)
    in_reply_to: str
    posted_at: datetime
    likes: int = 0
    boosts: int = 0


@dataclass(frozen=True)
class PollTally:
    platform: str
    counts: tuple[int, ...]  # per option, in poll order
    voters: int
    closed: bool = False
    extra: dict[str, int] = field(default_factory=dict)


class Platform(Protocol):
    name: str

    def limits(self) -> Limits: ...

    def publish(self, post: OutgoingPost) -> PostRef:
        """Make the post, or return the one already made with the same idempotency key."""
        ...

    def fetch_replies(self, posts: tuple[PostRef, ...]) -> list[Reply]:
        """Every reply to any of ``posts`` (not the bot's own)."""
        ...

    def fetch_tally(self, poll: PostRef) -> PollTally: ...
