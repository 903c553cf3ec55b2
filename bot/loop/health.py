"""Which platforms answer: each read and post records its outcome, in its own short transaction.

A platform that fails is marked failing (since when, the last error) and skipped for that read;
the story goes on with the others, and its posts wait in the outbox to catch up in thread
order. `storybot status` and /admin show the marks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.redact import scrub
from story_state.db import session_scope
from story_state.models import PlatformHealth


def record(
    factory: sessionmaker[Session], platform: str, now: datetime, error: Exception | None = None
) -> None:
    """Note that ``platform`` answered (``error`` None) or failed with ``error``."""
    with session_scope(factory) as session:
        row = session.get(PlatformHealth, platform)
        if row is None:
            row = PlatformHealth(platform=platform, updated_at=now)
            session.add(row)
        row.updated_at = now
        if error is None:
            row.failing_since, row.last_error, row.last_ok_at = None, None, now
        else:
            row.failing_since = row.failing_since or now
            row.last_error = scrub(f"{type(error).__name__}: {error}")[:2000]


def failing(session: Session) -> list[dict[str, Any]]:
    """The platforms failing now, oldest failure first."""
    rows = session.scalars(
        select(PlatformHealth)
        .where(PlatformHealth.failing_since.is_not(None))
        .order_by(PlatformHealth.failing_since)
    ).all()
    return [
        {
            "platform": r.platform,
            "failing_since": r.failing_since.isoformat() if r.failing_since else None,
            "last_error": r.last_error,
            "last_ok_at": r.last_ok_at.isoformat() if r.last_ok_at else None,
        }
        for r in rows
    ]


__all__ = ["failing", "record"]
