"""Turning what followers post into clean plain text, and judging whether it may be used."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from html import unescape
from html.parser import HTMLParser

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
# "@ana", "@ana@example.social", "@storybot@127.0.0.1:8000" (Takahe names local accounts with
# the port), and the ":" or "," typed after a mention that opens a reply ("@storybot: idea").
_MENTION = re.compile(r"(?<!\w)@([\w.-]+(?:@[\w.-]+(?::\d{1,5})?)?)[:,]?")
_HASHTAG = re.compile(r"(?<!\w)#(\w+)")
_SPACE = re.compile(r"\s+")
_REFORMABLE = re.compile(r"[@#]|://|www\.", re.IGNORECASE)
_MARKUP = re.compile(
    r"<\s*/?\s*(?:script|iframe|img|style|object|embed|svg|a|link|meta)\b|javascript:", re.I
)
_REPEAT = re.compile(r"(.)\1{5,}")
# A word (or a phrase of up to three) said four times or more in a row: padding.
_WORD_RUN = re.compile(r"(?<!\w)(\w+(?:\W+\w+){0,2}?)(?:\W+\1(?!\w)){3,}", re.IGNORECASE)
_WORDS = re.compile(r"\w+")
# An address shown as a link's text ("example.com/page"): dropped with the link.
_ADDRESS = re.compile(r"^\S*[./]\S*$")
_HREF = re.compile(r"^[a-z][a-z0-9+.-]*://([^/?#]+)([^?#]*)", re.IGNORECASE)
MAX_LINKS = 2  # a reply with this many links is spam
MAX_MENTIONS = 4  # ... or with this many mentions of other accounts
# Control, format (bidi overrides, zero-width) and combining marks stacked in zalgo text.
_STRIP_CATEGORIES = {"Cc", "Cf", "Co", "Cs"}
_BLOCK_TAGS = {"p", "br", "div", "li"}
_ASCII_CONTROLS = dict.fromkeys([*range(32), 127])
# Capitals whose lower-case letter looks like another Latin letter (Greek Ν → ν, read "v"):
# mapped before case folding. Lisu letters have no case and copy Latin capitals.
_CONFUSABLE_CAPITALS = str.maketrans(
    {
        "Η": "h",
        "Ν": "n",
        "Υ": "y",
        "Μ": "m",
        "Ζ": "z",
        "Ү": "y",
        **dict(zip("ꓮꓐꓚꓓꓰꓝꓖꓧꓲꓙꓗꓡꓟꓠꓳꓑꓣꓢꓔꓴꓦꓪꓫꓬꓜ", "abcdefghijklmnoprstuvwxyz", strict=True)),
    }
)
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


@dataclass(frozen=True)
class Reading:
    """A reply as people read it: its text, and each mention and link in it once.

    Mastodon's HTML names a mention or a link twice (the address in ``href``, the text
    shown); counted in the HTML, an ordinary reply with two mentions looked like spam.
    """

    text: str
    mentions: tuple[str, ...]  # handles, lower-case, without the leading "@"
    links: tuple[str, ...]


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.plain: list[str] = []  # text outside links, where typed addresses are counted
        self.mentions: list[str] = []
        self.links: list[str] = []
        self._skip = 0
        self._link: tuple[str, str, list[str]] | None = None  # kind, href, the text shown

    def _emit(self, text: str) -> None:
        if self._link is not None:
            self._link[2].append(text)
        else:
            self.parts.append(text)
            self.plain.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self._emit(" ")
        elif tag == "a":
            self._end_link()
            found = {name: value or "" for name, value in attrs}
            classes, rel = found.get("class", "").split(), found.get("rel", "").split()
            kind = (
                "tag"
                if "hashtag" in classes or "tag" in rel
                else "mention"
                if "mention" in classes
                else "link"
            )
            self._link = (kind, found.get("href", "").strip(), [])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        elif tag in _BLOCK_TAGS:
            self._emit(" ")
        elif tag == "a":
            self._end_link()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._emit(data)

    def close(self) -> None:
        super().close()
        self._end_link()

    def _end_link(self) -> None:
        if self._link is None:
            return
        kind, href, shown_parts = self._link
        self._link = None
        shown = "".join(shown_parts)
        if kind == "mention" or (kind == "link" and shown.strip().startswith("@")):
            handle = _handle(shown, href)
            self.mentions.append(handle)
            # As shown ("@ana"), unless the text shown is no plain mention of the handle.
            plain = _MENTION.fullmatch(shown.strip())
            self.parts.append(shown if plain else f" @{handle} " if handle else " ")
        elif kind == "tag" or not href:
            self.parts.append(shown)
        else:
            self.links.append(href)
            # The address shown as text goes with the link; words shown stay words.
            self.parts.append(" " if _ADDRESS.match(shown.strip()) else shown)


@lru_cache(maxsize=4096)  # a round's replies mention the bot, and the same friends, again and again
def _handle(shown: str, href: str) -> str:
    """``user@host`` from a mention's text ("@ana", "@ana@host") and address."""
    user, _, host = shown.strip().lstrip("@").partition("@")
    address = _HREF.match(href)
    if address is not None:
        path = address.group(2).strip("/")
        if not user:
            user = path.rsplit("/", 1)[-1].lstrip("@").partition("@")[0]
        if not host:  # Takahe: https://127.0.0.1:8000/@storybot@127.0.0.1:8000/
            at_host = path.rsplit("/", 1)[-1].lstrip("@").partition("@")[2]
            host = at_host or address.group(1).rpartition("@")[2]
    user = re.sub(r"[^\w.-]", "", user)
    host = re.sub(r"[^\w.:-]", "", host)
    return (f"{user}@{host}" if host else user).lower()


# One token of the HTML Mastodon-family servers send (sanitised: known tags, quoted
# attributes, character references): a tag, or text up to the next "<".
_TAG_OR_TEXT = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9]*)((?:\s+[a-zA-Z_:][-a-zA-Z0-9_:.]*"
    r"(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'))?)*)\s*(/?)>|([^<]+)"
)
_ATTRIBUTE = re.compile(r"([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'))?")
_RAW_TEXT_TAGS = frozenset({"script", "style", "textarea", "title", "plaintext", "xmp"})


def _feed_sanitised(parser: _TextExtractor, html: str) -> bool:
    """Feed ``html`` to ``parser`` as ``HTMLParser.feed`` would, if it is plain sanitised HTML.

    ``HTMLParser`` costs about 100 µs a reply in pure Python, and a busy round has thousands.
    Anything this tokenizer does not know (a comment, a stray "<", an unquoted attribute, a
    raw-text element such as <script>) makes it give up and return False; the caller then
    hands the reply to a fresh ``HTMLParser``.
    """
    position = 0
    for match in _TAG_OR_TEXT.finditer(html):
        if match.start() != position:
            return False  # something between two tokens that is neither
        position = match.end()
        closing, tag, attributes, self_closing, text = match.groups()
        if text is not None:
            parser.handle_data(unescape(text) if "&" in text else text)
            continue
        tag = tag.lower()
        if tag in _RAW_TEXT_TAGS:
            return False
        if closing:
            parser.handle_endtag(tag)
            continue
        # Only a link's attributes matter (see _TextExtractor).
        found = (
            [(a.group(1).lower(), _attribute_value(a)) for a in _ATTRIBUTE.finditer(attributes)]
            if tag == "a"
            else []
        )
        parser.handle_starttag(tag, found)
        if self_closing:
            parser.handle_endtag(tag)
    return position == len(html)


def _attribute_value(found: re.Match[str]) -> str | None:
    value = found.group(2) if found.group(2) is not None else found.group(3)
    return None if value is None else unescape(value)


def read_reply(raw: str, *, is_html: bool = False) -> Reading:
    """The text people see, with its mentions and links counted once each."""
    if not is_html:
        return Reading(raw, _mentions_in(raw), tuple(_URL.findall(raw)))
    parser = _TextExtractor()
    if _feed_sanitised(parser, raw):
        parser._end_link()
    else:
        parser = _TextExtractor()
        parser.feed(raw)
        parser.close()
    plain = "".join(parser.plain)
    return Reading(
        "".join(parser.parts),
        (*parser.mentions, *_mentions_in(plain)),
        (*parser.links, *_URL.findall(plain)),
    )


def _mentions_in(text: str) -> tuple[str, ...]:
    """The handles typed in ``text``; an address's "/@ana/123" is part of a link, not one."""
    return tuple(m.group(1).lower() for m in _MENTION.finditer(_URL.sub(" ", text)))


def html_to_text(html: str) -> str:
    return read_reply(html, is_html=True).text


def is_own(handle: str, own_handles: Collection[str]) -> bool:
    """Whether ``handle`` names the bot: "storybot" matches it on any server."""
    handle = handle.lower()
    user = handle.partition("@")[0]
    return any(own == handle or ("@" not in own and own == user) for own in own_handles)


def padding(text: str) -> int:
    """How many words of ``text`` are a word or phrase repeated four times or more in a row."""
    if not _some_word_four_times(text):
        return 0  # the common case, without counting the words twice
    return len(_WORDS.findall(text)) - len(_WORDS.findall(_collapse_runs(text)))


def _some_word_four_times(text: str) -> bool:
    words = _WORDS.findall(text.lower())
    if len(words) - len(set(words)) < 3:
        return False  # fewer than three repeats: no word is there four times (a cheap look)
    return max(Counter(words).values()) >= 4


def _collapse_runs(text: str) -> str:
    if not _some_word_four_times(text):
        return text  # no word four times: no run (the common case)
    for _ in range(8):  # collapsing may line up a new run ("a a a a b a b a b a b")
        shorter = _WORD_RUN.sub(r"\1", text)
        if shorter == text:
            break
        text = shorter
    return text


def _strip_marks(text: str) -> str:
    if text.isascii():  # most replies: control characters are all there is to strip
        return text.translate(_ASCII_CONTROLS)
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
    if text.isascii():  # most replies: nothing to normalise, fold or map
        return text.lower().translate(_ASCII_CONTROLS)
    text = unicodedata.normalize("NFKC", text).translate(_CONFUSABLE_CAPITALS).casefold()
    text = unicodedata.normalize("NFKD", text)
    kept = (
        ch
        for ch in text
        if unicodedata.category(ch) not in _STRIP_CATEGORIES
        and not unicodedata.category(ch).startswith("M")
    )
    return unicodedata.normalize("NFKC", "".join(kept).translate(_CONFUSABLES))


def clean_text(raw: str, *, is_html: bool = False, max_length: int = 400) -> str:
    """Plain, normalised text: no markup, links, mentions, hashtags or hidden characters,
    and a word repeated as padding ("go go go go go") said once."""
    text = html_to_text(raw) if is_html else raw
    # Normalise again after stripping: a removed control may have kept a letter and its
    # accent apart ("A\x00\u0301").
    text = unicodedata.normalize("NFKC", _strip_marks(unicodedata.normalize("NFKC", text)))
    # Removing one thing can join pieces into another ("@@ana"): repeat until nothing changes.
    for _ in range(4):
        before = text
        # Each only where its sign is (most replies have none): a search costs more.
        if "://" in text or "ww." in text.lower():
            text = _URL.sub(" ", text)
        if "@" in text:
            text = _MENTION.sub(" ", text)
        if "#" in text:
            text = _HASHTAG.sub(r"\1", text)
        text = _REPEAT.sub(lambda m: m.group(1) * 3, text)
        text = _SPACE.sub(" ", _collapse_runs(text)).strip()
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
    raw: str,
    cleaned: str,
    *,
    blocklist: tuple[re.Pattern[str], ...] = (),
    max_length: int = 400,
    is_html: bool = False,
    own_handles: Collection[str] = (),
    reading: Reading | None = None,
) -> str | None:
    """Why a suggestion may not be used, or None when it may.

    Links and mentions are counted as people see them (``read_reply``), the bot's own
    handles (``own_handles``) not at all.
    """
    if not cleaned or not any(ch.isalnum() for ch in cleaned):
        return "empty after cleaning"
    if _MARKUP.search(cleaned):
        return "markup or code"
    reading = reading or read_reply(raw, is_html=is_html)
    others = [m for m in reading.mentions if not is_own(m, own_handles)]
    if len(reading.links) >= MAX_LINKS or len(others) >= MAX_MENTIONS:
        return "link or mention spam"
    if len(cleaned) > max_length and len(raw) > 2 * max_length:
        return "too long"
    padded = padding(reading.text)
    if padded >= 6 and 2 * padded > len(_WORDS.findall(reading.text)):
        return "repeated-word padding"
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
