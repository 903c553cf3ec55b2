"""Deterministic record keys: the outbox's idempotency key → a TID-shaped rkey, and AT URIs.

Bluesky has no idempotency key, but a client may choose a record's key. The same outbox key
always gives the same key, so a repeated ``createRecord`` cannot make a second post: the record
is there already, and its reference is returned instead. The posts that belong to one post (the
rest of a long caption, the options of a question) get keys derived from its key, so a restarted
adapter finds them from the post alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

POST = "app.bsky.feed.post"
# base32-sortable, as TIDs are written (https://atproto.com/specs/tid)
_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
# The timestamp part lies in 2023: a real past time that sorts like any other TID, never in the
# future (an AppView may treat a record "from the future" differently).
_EPOCH_US = int(datetime(2023, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
_SPAN_US = 365 * 24 * 3600 * 1_000_000
PART = "part"  # the rest of a caption longer than one post
OPTION = "option"  # one reply per poll option
MAX_PARTS = 6  # posts of one caption, the head included
MAX_OPTIONS = 4


def _encode(value: int) -> str:
    chars = []
    for _ in range(13):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def tid_for(key: str) -> str:
    """A valid TID (13 characters, top bit 0, 53-bit microseconds, 10-bit clock id) from ``key``."""
    digest = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:16], "big")
    micros = _EPOCH_US + digest % _SPAN_US
    clock_id = (digest >> 64) & 0x3FF
    return _encode((micros << 10) | clock_id)


def is_tid(rkey: str) -> bool:
    return (
        len(rkey) == 13
        and all(c in _ALPHABET for c in rkey)
        and _ALPHABET.index(rkey[0]) < 8  # the top bit is 0
    )


def child(rkey: str, kind: str, position: int) -> str:
    """The key of part ``position`` (2, 3, ...) or option ``position`` (1, 2, ...) of ``rkey``."""
    return tid_for(f"{rkey}/{kind}/{position}")


def own_keys(rkey: str) -> set[str]:
    """The keys the bot gives its own replies under ``rkey``: caption parts and options."""
    keys = {child(rkey, PART, n) for n in range(2, MAX_PARTS + 1)}
    return keys | {child(rkey, OPTION, n) for n in range(1, MAX_OPTIONS + 2)}


@dataclass(frozen=True)
class AtUri:
    did: str
    collection: str
    rkey: str

    @classmethod
    def parse(cls, uri: str) -> AtUri | None:
        """``at://did/collection/rkey``, or None for anything else."""
        if not uri.startswith("at://"):
            return None
        parts = uri[len("at://") :].split("/")
        if len(parts) != 3 or not all(parts):
            return None
        return cls(*parts)

    def __str__(self) -> str:
        return f"at://{self.did}/{self.collection}/{self.rkey}"

    def sibling(self, rkey: str) -> AtUri:
        return AtUri(self.did, self.collection, rkey)
