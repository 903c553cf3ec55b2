"""Platform adapters behind one port (see base.py)."""

from bot.platforms.base import (
    Limits,
    Media,
    OutgoingPost,
    Platform,
    Poll,
    PollTally,
    PostRef,
    Reply,
)

__all__ = [
    "Limits",
    "Media",
    "OutgoingPost",
    "Platform",
    "Poll",
    "PollTally",
    "PostRef",
    "Reply",
]
