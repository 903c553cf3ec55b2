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
# Letters that look like Latin ones (Cyrillic, Greek, Armenian, Cherokee, small capitals, IPA),
# for matching the blocklist against a skeleton: "ԁаrn" must be caught like "darn".
_CONFUSABLES = str.maketrans(
    {
        **dict.fromkeys("аɑαᴀ", "a"),
        **dict.fromkeys("ʙвβ", "b"),
        **dict.fromkeys("сϲᴄ", "c"),
        **dict.fromkeys("ԁᴅᏧɗ", "d"),
        **dict.fromkeys("еεᴇҽ", "e"),
        **dict.fromkeys("ғ", "f"),
        **dict.fromkeys("ɡɢ", "g"),
        **dict.fromkeys("һнʜ", "h"),
        **dict.fromkeys("іιıɪӏ", "i"),
        **dict.fromkeys("јϳ", "j"),
        **dict.fromkeys("кκᴋ", "k"),
        **dict.fromkeys("ʟℓ", "l"),
        **dict.fromkeys("мᴍ", "m"),
        **dict.fromkeys("ոηɴп", "n"),
        **dict.fromkeys("оοᴏ", "o"),
        **dict.fromkeys("рρᴘ", "p"),
        **dict.fromkeys("ԛ", "q"),
        **dict.fromkeys("гʀᴦ", "r"),
        **dict.fromkeys("ѕꜱ", "s"),
        **dict.fromkeys("тτᴛ", "t"),
        **dict.fromkeys("υᴜ", "u"),
        **dict.fromkeys("νᴠ", "v"),
        **dict.fromkeys("ԝᴡω", "w"),
        **dict.fromkeys("хχ", "x"),
        **dict.fromkeys("уγʏ", "y"),
        **dict.fromkeys("ᴢ", "z"),
    }
)


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


def skeleton(text: str) -> str:
    """``text`` as the blocklist sees it: NFKC, case-folded, with no hidden characters or
    accents, and look-alike letters from other scripts mapped to the Latin ones."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    kept = (
        ch
        for ch in text
        if unicodedata.category(ch) not in _STRIP_CATEGORIES
        and not unicodedata.category(ch).startswith("M")
    )
    return unicodedata.normalize("NFKC", "".join(kept).translate(_CONFUSABLES))


def clean_text(raw: str, *, is_html: bool = False, max_length: int = 400) -> str:
    """Plain, normalised text: no markup, links, mentions, hashtags or hidden characters."""
    text = html_to_text(raw) if is_html else raw
    # Normalise again after stripping: a removed control may have kept a letter and its
    # accent apart ("A\x00\u0301").
    text = unicodedata.normalize("NFKC", _strip_marks(unicodedata.normalize("NFKC", text)))
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
    bare = skeleton(cleaned)
    for pattern in blocklist:
        if pattern.search(cleaned) or pattern.search(bare):
            return "blocked word"
    return None


def compile_blocklist(lines: list[str]) -> tuple[re.Pattern[str], ...]:
    """One entry a line: a plain word (matched as a whole word) or ``re:PATTERN``.

    Replies are matched as typed and as their ``skeleton``, so a plain word is also found
    behind full-width or look-alike letters, accents and zero-width characters.
    """
    patterns = []
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if entry.startswith("re:"):
            patterns.append(re.compile(entry[3:], re.IGNORECASE))
        else:
            for word in dict.fromkeys((entry, skeleton(entry))):
                patterns.append(re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE))
    return tuple(patterns)
