"""Post text for Bluesky: 300 graphemes a post, a self-reply thread beyond, facets by bytes.

Bluesky counts a post's length in graphemes (user-perceived characters: "👍🏽" is one) and
also caps it at 3000 UTF-8 bytes. Mentions and links are not found in the text by the
server: each is a facet with UTF-8 byte offsets that the client sends with the post.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import regex

MAX_GRAPHEMES = 300
MAX_BYTES = 3000
# The credit line the story loop writes (bot/loop/captions.py): names after it are people.
CREDITS_MARK = "Story ideas from "
_CREDITS_END = ". Thank you!"
_GRAPHEME = regex.compile(r"\X")
_LINK = regex.compile(r"(?<![\w/])https?://[^\s<>\"]+")
_MENTION = regex.compile(
    r"(?<![\w@.])@((?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+"
    r"[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)"
)
_SENTENCE_END = frozenset(".!?…:;")


def graphemes(text: str) -> int:
    return len(_GRAPHEME.findall(text))


def fits(text: str, limit: int = MAX_GRAPHEMES, max_bytes: int = MAX_BYTES) -> bool:
    return len(text.encode("utf-8")) <= max_bytes and graphemes(text) <= limit


def _break_at(window: list[str], whole: bool) -> int:
    """Where to end a part made of ``window`` (graphemes): a paragraph, a sentence, a word."""
    if whole:
        return len(window)
    floor = len(window) // 3  # never a part that is mostly empty
    for index in range(len(window) - 1, floor, -1):
        if window[index] == "\n" and window[index - 1] == "\n":
            return index
    for index in range(len(window) - 1, floor, -1):
        if window[index].isspace() and window[index - 1] in _SENTENCE_END:
            return index
    for index in range(len(window) - 1, floor, -1):
        if window[index].isspace():
            return index
    return len(window)


def _greedy(text: str, limit: int, max_bytes: int) -> list[str]:
    clusters = _GRAPHEME.findall(text)
    parts: list[str] = []
    start = 0
    while start < len(clusters):
        window: list[str] = []
        size = 0
        for cluster in clusters[start : start + limit]:
            size += len(cluster.encode("utf-8"))
            if size > max_bytes:
                break
            window.append(cluster)
        cut = _break_at(window, start + len(window) == len(clusters))
        part = "".join(window[:cut]).strip()
        if part:
            parts.append(part)
        start += cut
        while start < len(clusters) and clusters[start].isspace():
            start += 1
    return parts


def split_thread(text: str, limit: int = MAX_GRAPHEMES, max_bytes: int = MAX_BYTES) -> list[str]:
    """``text`` as one post, or as parts of a self-reply thread, each marked " (i/n)"."""
    text = text.strip()
    if fits(text, limit, max_bytes):
        return [text]
    reserve = len(" (1/9)")
    while True:
        parts = _greedy(text, limit - reserve, max_bytes - reserve)
        count = len(parts)
        marks = [f" ({i}/{count})" for i in range(1, count + 1)]
        if all(len(mark) <= reserve for mark in marks):
            return [part + mark for part, mark in zip(parts, marks, strict=True)]
        reserve = max(len(mark) for mark in marks)


Kind = Literal["link", "mention"]


@dataclass(frozen=True)
class Facet:
    """A rich-text feature over ``text.encode()[start:end]``."""

    start: int
    end: int
    kind: Kind
    value: str  # the link's URI, or the mentioned account's DID


def _bytes_at(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _links(text: str) -> list[tuple[int, int, str]]:
    found = []
    for match in _LINK.finditer(text):
        uri = match.group(0)
        while uri and uri[-1] in ".,;:!?'\"":
            uri = uri[:-1]
        if uri.endswith(")") and "(" not in uri:
            uri = uri[:-1]
        if len(uri) > len("https://"):
            found.append((match.start(), match.start() + len(uri), uri))
    return found


def mentioned_handles(text: str) -> list[str]:
    """The handles ``@name.example`` in ``text``, lower-case, in order, each once."""
    return list(dict.fromkeys(m.group(1).lower() for m in _MENTION.finditer(text)))


def _mentions(text: str, resolve: Mapping[str, str | None]) -> list[tuple[int, int, str]]:
    found = []
    for match in _MENTION.finditer(text):
        did = resolve.get(match.group(1).lower())
        if did:
            found.append((match.start(), match.end(), did))
    return found


def _credited(text: str, people: Mapping[str, str]) -> list[tuple[int, int, str]]:
    """The credited names the bot knows the accounts of, inside the credit line only."""
    begin = text.find(CREDITS_MARK)
    if begin < 0 or not people:
        return []
    begin += len(CREDITS_MARK)
    end = text.find(_CREDITS_END, begin)
    end = len(text) if end < 0 else end
    taken: list[tuple[int, int, str]] = []
    for name in sorted(people, key=len, reverse=True):
        if not name.strip():
            continue
        pattern = regex.compile(r"(?<!\w)" + regex.escape(name) + r"(?!\w)")
        for match in pattern.finditer(text, begin, end):
            overlaps = any(s < match.end() and match.start() < e for s, e, _ in taken)
            if not overlaps:
                taken.append((match.start(), match.end(), people[name]))
    return taken


def facets(
    text: str,
    *,
    handles: Mapping[str, str | None] | None = None,
    people: Mapping[str, str] | None = None,
) -> list[Facet]:
    """Links, ``@handle`` mentions (``handles``: handle → DID, None where it did not resolve)
    and credited names (``people``: display name → DID), sorted, none overlapping."""
    spans: list[tuple[int, int, Kind, str]] = [(s, e, "link", u) for s, e, u in _links(text)]
    spans += [(s, e, "mention", did) for s, e, did in _mentions(text, handles or {})]
    spans += [(s, e, "mention", did) for s, e, did in _credited(text, people or {})]
    chosen: list[Facet] = []
    taken: list[tuple[int, int]] = []
    for start, end, kind, value in sorted(spans, key=lambda span: (span[0], -span[1])):
        if any(s < end and start < e for s, e in taken):
            continue
        taken.append((start, end))
        chosen.append(Facet(_bytes_at(text, start), _bytes_at(text, end), kind, value))
    return chosen


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` graphemes at a word, with "…" where it was cut."""
    clusters = _GRAPHEME.findall(text)
    if len(clusters) <= limit:
        return text
    kept = "".join(clusters[: max(0, limit - 1)])
    space = kept.rfind(" ")
    if space > len(kept) // 2:
        kept = kept[:space]
    return kept.rstrip() + "…"
