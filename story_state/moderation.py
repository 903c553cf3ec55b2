"""Moderation before anything else sees a reply: pure rules in, a verdict out."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from functools import lru_cache

from story_state.injection import instructions_reason
from story_state.text import clean_text, read_reply, reject_reason, shorten


@dataclass(frozen=True)
class CanonRule:
    """A story-bible entry a suggestion must not contradict without the operator seeing it."""

    name: str
    patterns: tuple[re.Pattern[str], ...]

    def __reduce__(self) -> tuple[type[CanonRule], tuple[object, ...]]:
        return CanonRule, _values(self)  # picklable compiled, too (see _values)


@dataclass(frozen=True)
class Rules:
    blocklist: tuple[re.Pattern[str], ...] = ()
    blocked_accounts: frozenset[str] = frozenset()  # handles, lower-case, without leading @
    blocked_domains: frozenset[str] = frozenset()  # e.g. "spam.example" (and its subdomains)
    max_length: int = 400
    approval_mode: bool = False
    canon: tuple[CanonRule, ...] = field(default_factory=tuple)
    # The bot's own handles ("storybot", "storybot@example.social"): a mention of the bot
    # is how a reply reaches it, not spam. Lower-case, without the leading "@".
    own_handles: frozenset[str] = frozenset()

    def __reduce__(self) -> tuple[type[Rules], tuple[object, ...]]:
        return Rules, _values(self)


@dataclass(frozen=True)
class Verdict:
    text: str  # cleaned
    accepted: bool
    pending: bool = False  # held for the operator (approval mode or a canon flag)
    reason: str | None = None  # why it was rejected
    flag: str | None = None  # why it was held

    def __reduce__(self) -> tuple[type[Verdict], tuple[object, ...]]:
        return Verdict, _values(self)


def _values(instance: object) -> tuple[object, ...]:
    """A dataclass's field values in order: its pickle (for worker processes, ``judge_texts``).

    Compiled by mypyc, a frozen dataclass cannot be unpickled field by field.
    """
    return tuple(getattr(instance, f.name) for f in fields(instance))  # type: ignore[arg-type]


def normalise_handle(handle: str) -> str:
    return handle.strip().lstrip("@").lower()


def _blocked(handle: str, rules: Rules) -> str | None:
    handle = normalise_handle(handle)
    if handle in rules.blocked_accounts:
        return "blocked account"
    # "ana@spam.example" (Mastodon) is on a domain; so is a Bluesky handle, which is one
    # ("troll.spam.example"). A bare local name ("ana") is on none.
    domain = handle.rsplit("@", 1)[1] if "@" in handle else handle if "." in handle else ""
    if domain and any(
        domain == blocked or domain.endswith("." + blocked) for blocked in rules.blocked_domains
    ):
        return "blocked domain"
    return None


def contradiction(text: str, canon: Sequence[CanonRule]) -> str | None:
    for rule in canon:
        if any(p.search(text) for p in rule.patterns):
            return f"contradicts canon: {rule.name}"
    return None


def moderate(raw: str, author_handle: str, rules: Rules, *, is_html: bool = False) -> Verdict:
    """Clean ``raw`` and judge it; rejected text is kept (with the reason) but never used.

    Besides the text rules (``reject_reason``), text that speaks to the bot instead of the
    story ("ignore all previous instructions", "SYSTEM:", "<|im_start|>") is rejected with
    the reason "instructions to the bot (...)", whatever writer would have read it.
    """
    return for_author(judge_text(raw, rules, is_html=is_html), author_handle, rules)


def judge_text(raw: str, rules: Rules, *, is_html: bool = False) -> Verdict:
    """``moderate``'s verdict on the text alone, before the author's (``for_author``)."""
    if len(raw) <= _CACHED_LENGTH:
        return _judge_remembered(raw, rules, is_html)
    return _judge(raw, rules, is_html)


def judge_texts(texts: Sequence[tuple[str, bool]], rules: Rules) -> list[Verdict]:
    """``judge_text`` of each (raw, is_html): a worker process's share of a busy round."""
    return [judge_text(raw, rules, is_html=is_html) for raw, is_html in texts]


# A verdict as plain values (text, accepted, pending, reason, flag): how a worker process
# sends it back. Pickling thousands of Verdicts (a constructor call each on the way in, in
# the thread that gathers the results) cost 6x what plain tuples cost.
VerdictRow = tuple[str, bool, bool, str | None, str | None]


def verdict_rows(verdicts: Sequence[Verdict]) -> list[VerdictRow]:
    return [(v.text, v.accepted, v.pending, v.reason, v.flag) for v in verdicts]


def from_rows(rows: Sequence[VerdictRow]) -> list[Verdict]:
    return [
        Verdict(text, accepted, pending, reason, flag)
        for text, accepted, pending, reason, flag in rows
    ]


def for_author(judged: Verdict, author_handle: str, rules: Rules) -> Verdict:
    """The text's verdict for this author: none of a blocked account or domain is used."""
    blocked = _blocked(author_handle, rules)
    if blocked is not None:
        return Verdict(judged.text, accepted=False, reason=blocked)
    return judged


# A busy round repeats itself ("Open the hatch!" from a hundred people): a short reply's
# verdict is remembered by its text and the rules (a changed blocklist is other rules). Long
# replies are judged afresh, so the cache holds at most _CACHED_LENGTH × maxsize characters.
_CACHED_LENGTH = 2000


def _judge(raw: str, rules: Rules, is_html: bool) -> Verdict:
    """The verdict on the text alone (who wrote it is ``_blocked``'s concern)."""
    reading = read_reply(raw, is_html=is_html)
    # Judge the whole reply, not the part kept: cut at a word, a 50 KB reply ends just under
    # max_length and slipped past the length rule (and a blocked word past the cut, too).
    whole = clean_text(reading.text, max_length=sys.maxsize)
    text = shorten(whole, rules.max_length)
    reason = reject_reason(
        raw,
        whole,
        blocklist=rules.blocklist,
        max_length=rules.max_length,
        own_handles=rules.own_handles,
        reading=reading,
    ) or instructions_reason(whole)
    if reason is not None:
        return Verdict(text, accepted=False, reason=reason)
    flag = contradiction(text, rules.canon)
    if flag is not None:
        return Verdict(text, accepted=False, pending=True, flag=flag)
    if rules.approval_mode:
        return Verdict(text, accepted=False, pending=True, flag="awaiting approval")
    return Verdict(text, accepted=True)


_judge_remembered = lru_cache(maxsize=8192)(_judge)
