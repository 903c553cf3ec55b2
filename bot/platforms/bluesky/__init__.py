"""The Bluesky adapter (``adapter.py``: publishing, limits, the port) and its parts: reading
replies, mentions and the likes that are votes (``reading.py``), record keys derived from the
outbox key (``rkeys.py``), text that fits 300 graphemes with its facets (``text.py``), the vote
rule and who counts for no option (``votes.py``), the kept session (``session.py``), error
mapping (``errors.py``), the clip or its still (``media.py``) and reading the SDK's answers
(``records.py``)."""

# Nothing is imported here: the adapter needs its optional library (the extra), while the doctor
# and the tests use the other modules without it. Import ``<package>.adapter`` for the platform.
__all__: list[str] = []
