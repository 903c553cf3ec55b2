"""The Mastodon adapter (``adapter.py``) and its parts: server capabilities (``caps.py``), error
mapping (``errors.py``), media upload (``media.py``) and status HTML as text (``text.py``)."""

from bot.platforms.mastodon.adapter import MastodonPlatform, make_client

__all__ = ["MastodonPlatform", "make_client"]
