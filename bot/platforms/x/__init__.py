"""The X adapter (``adapter.py``) and its chunked API v2 media upload (``media.py``)."""

from bot.platforms.x.adapter import XPlatform

__all__ = ["XPlatform"]
