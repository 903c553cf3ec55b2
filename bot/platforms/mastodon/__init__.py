"""The Mastodon adapter (``adapter.py``) and its parts: server capabilities (``caps.py``), error
mapping (``errors.py``), media upload (``media.py``) and status HTML as text (``text.py``)."""

# Nothing is imported here: the adapter needs its optional library (the extra), while the doctor
# and the tests use the other modules without it. Import ``<package>.adapter`` for the platform.
__all__: list[str] = []
