"""The X adapter (``adapter.py``) and its chunked API v2 media upload (``media.py``)."""

# Nothing is imported here: the adapter needs its optional library (the extra), while the doctor
# and the tests use the other modules without it. Import ``<package>.adapter`` for the platform.
__all__: list[str] = []
