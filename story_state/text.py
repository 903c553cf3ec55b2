"""Turning what followers post into clean plain text, and judging whether it may be used."""

from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"(?<!\w)@[\w.-]+(?:@[\w.-]+)?")
_HASHTAG = re.compile(r"(?<!\w)#(\w+)")
_SPACE = re.compile(r"\s+")
_REFORMABLE = re.compile(r"[@#]|://|www\.", re.IGNORECASE)
_MARKUP = re.compile(
    r"<\s*/?\s*(?:script|iframe|img|style|object|embed|svg|a|link|meta)\b|javascript:", re.I
)
_REPEAT = re.compile(r"(.)\1{5,}")
# Control, format (bidi overrides, zero-width) and combining marks stacked in zalgo text.
_STRIP_CATEGORIES = {"Cc", "Cf", "Co", "Cs"}
_BLOCK_TAGS = {"p", "br", "div", "li"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


def _strip_marks(text: str) -> str:
    out: list[str] = []
    marks = 0
    for ch in text:
        category = unicodedata.category(ch)
        if category in _STRIP_CATEGORIES:
            continue
        if category.startswith("M"):
            marks += 1
            if marks > 2:  # one accent is language; a stack of them is zalgo
                continue
        else:
            marks = 0
        out.append(ch)
    return "".join(out)


def clean_text(raw: str, *, is_html: bool = False, max_length: int = 400) -> str:
    """Plain, normalised text: no markup, links, mentions, hashtags or hidden characters."""
    text = html_to_text(raw) if is_html else raw
    text = _strip_marks(unicodedata.normalize("NFKC", text))
    # Removing one thing can join pieces into another ("@@ana"): repeat until nothing changes.
    for _ in range(4):
        before = text
        text = _URL.sub(" ", text)
        text = _MENTION.sub(" ", text)
        text = _HASHTAG.sub(r"\1", text)
        text = _REPEAT.sub(lambda m: m.group(1) * 3, text)
        text = _SPACE.sub(" ", text).strip()
        if text == before or not _REFORMABLE.search(text):
            break
    return shorten(text, max_length)


def shorten(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters at a word boundary, never mid-word."""
    if len(text) <= limit:
        return text
    cut = text[: limit + 1]
    space = cut.rfind(" ")
    cut = cut[:space] if space > limit // 2 else text[:limit]
    return cut.rstrip(" ,;:-–—")


def reject_reason(
    raw: str, cleaned: str, *, blocklist: tuple[re.Pattern[str], ...] = (), max_length: int = 400
) -> str | None:
    """Why a suggestion may not be used, or None when it may."""
    if not cleaned or not any(ch.isalnum() for ch in cleaned):
        return "empty after cleaning"
    if _MARKUP.search(cleaned):
        return "markup or code"
    if len(_URL.findall(raw)) >= 2 or len(_MENTION.findall(raw)) >= 4:
        return "link or mention spam"
    if len(cleaned) > max_length and len(raw) > 2 * max_length:
        return "too long"
    for pattern in blocklist:
        if pattern.search(cleaned):
            return "blocked word"
    return None


def compile_blocklist(lines: list[str]) -> tuple[re.Pattern[str], ...]:
    """One entry a line: a plain word (matched as a whole word) or ``re:PATTERN``."""
    patterns = []
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if entry.startswith("re:"):
            patterns.append(re.compile(entry[3:], re.IGNORECASE))
        else:
            patterns.append(re.compile(rf"(?<!\w){re.escape(entry)}(?!\w)", re.IGNORECASE))
    return tuple(patterns)
