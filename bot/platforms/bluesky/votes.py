"""Votes on Bluesky: a like on one of the question's option replies, one vote a person.

Bluesky has no polls. The question post gets one reply per option, and a like on an option
reply is a vote for it. Likes are public, so the rule for a person who likes several options
can be applied, and is stated in the question post: only their first like counts (the earliest
``createdAt``, then the earliest indexing, then the lower option). Withdrawing that like makes
their next one count. A person is their DID, so a new handle is no second vote. Blocked
accounts, accounts under a blocked domain (``Blocklist``) and the bot itself count for no
option.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from story_state.moderation import normalise_handle

RULES = (
    "To vote, like one of the numbered replies below. One vote each: "
    "if you like more than one, only your first like counts."
)


def domain_key(domain: str) -> str:
    """A blocked domain as it is compared: "@.Spam.Example." → "spam.example"."""
    return domain.strip().lstrip("@.").rstrip(".").lower()


@dataclass(frozen=True)
class Blocklist:
    """Whose likes count for no option: accounts (a handle or a DID) and handle domains.

    A Bluesky handle is a domain name, so a blocked domain blocks the handle equal to it and
    every handle under it: "spam.example" blocks "spam.example" and "troll.spam.example", not
    "notspam.example" ("bsky.social" would block everyone there: the operator's choice). Case
    and a leading "@" do not matter, as for ideas (``normalise_handle``).
    """

    accounts: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()

    @classmethod
    def of(cls, accounts: Iterable[str] = (), domains: Iterable[str] = ()) -> Blocklist:
        return cls(
            frozenset(a for a in map(normalise_handle, accounts) if a),
            frozenset(d for d in map(domain_key, domains) if d),
        )

    def blocks(self, handle: str, did: str = "") -> bool:
        handle = normalise_handle(handle).rstrip(".")
        if handle in self.accounts or (did and did.lower() in self.accounts):
            return True
        return bool(handle) and any(
            handle == domain or handle.endswith("." + domain) for domain in self.domains
        )


@dataclass(frozen=True)
class Like:
    voter: str  # the account's DID
    handle: str
    position: int  # the option, 1-based
    created_at: datetime
    indexed_at: datetime
    blocked: bool = False


@dataclass(frozen=True)
class Count:
    counts: tuple[int, ...]
    voters: tuple[str, ...]  # the handles whose vote counted, in order of their vote
    likes: int  # every like on an option reply, blocked and repeated ones included
    repeated: int = 0  # people who liked more than one option (their first like counted)
    excluded: tuple[str, ...] = field(default_factory=tuple)  # blocked handles that liked


def count(likes: Iterable[Like], options: int) -> Count:
    """Votes per option under the one-vote rule above."""
    seen = list(likes)
    first: dict[str, Like] = {}
    repeated: set[str] = set()
    excluded: dict[str, None] = {}
    for like in sorted(seen, key=lambda v: (v.created_at, v.indexed_at, v.position, v.voter)):
        if like.blocked:
            excluded[like.handle] = None
            continue
        if like.voter in first:
            if first[like.voter].position != like.position:
                repeated.add(like.voter)
            continue
        first[like.voter] = like
    counts = [0] * options
    for like in first.values():
        if 1 <= like.position <= options:
            counts[like.position - 1] += 1
    return Count(
        counts=tuple(counts),
        voters=tuple(v.handle for v in first.values()),
        likes=len(seen),
        repeated=len(repeated),
        excluded=tuple(excluded),
    )
