"""The one wall clock: timezone-aware UTC. Code that decides takes ``now`` as an argument;
only the edges (adapters, the composition root, column defaults) read this clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Now, in UTC, timezone-aware."""
    return datetime.now(UTC)


__all__ = ["Clock", "utcnow"]
