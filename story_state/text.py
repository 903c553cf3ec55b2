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
from typing import NamedTuple

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
# "@ana", "@ana@example.social", "@storybot@127.0.0.1:8000" (Takahe names local accounts with
# the port), and the ":" or "," typed after a mention that opens a reply ("@storybot: idea").
_MENTION = re.compile(r"(?<!\w)@([\w.-]+(?:@[\w.-]+(?::\d{1,5})?)?)[:,]?")
_HASHTAG = re.compile(r"(?<!\w)#(\w+)")
_REFORMABLE = re.compile(r"[@#]|://|www\.", re.IGNORECASE)
_MARKUP = re.compile(
    r"<\s*/?\s*(?:script|iframe|img|style|object|embed|svg|a|link|meta)\b|javascript:", re.I
)
_REPEAT = re.compile(r"(.)\1{5,}")
# A word (or a phrase of up to three) said four times or more in a row: padding.
_WORD_RUN = re.compile(r"(?<!\w)(\w+(?:\W+\w+){0,2}?)(?:\W+\1(?!\w)){3,}", re.IGNORECASE)
_WORDS = re.compile(r"\w+")
# ASCII lower-cased, and what is no \w character a space (for bytes.translate: see cluster.py).
_LOWER_WORD = bytes(
    ord(chr(c).lower()) if c < 128 and (chr(c).isalnum() or c == ord("_")) else 32
    for c in range(256)
)
_ALNUM = re.compile(r"[^\W_]")  # a letter or a digit: str.isalnum()
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


class _Reader:
    """A reply's HTML as people read it, fed tag by tag: by ``_read_sanitised`` (the HTML
    Mastodon-family servers send) or, for anything else, by ``HTMLParser`` (``_TextExtractor``).

    A plain class (no parser in it), so that mypyc compiles it: the sanitised path's calls to
    it are native calls, where ``HTMLParser``'s handlers cost about 40 µs a reply.
    """

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.plain: list[str] = []  # text outside links, where typed addresses are counted
        self.mentions: list[str] = []
        self.links: list[str] = []
        self.skip = 0  # inside <script> or <style>
        self.link_kind = ""  # "mention", "tag" or "link" inside <a>; "" outside
        self.link_href = ""
        self.shown: list[str] = []  # the text shown inside <a>

    def emit(self, text: str) -> None:
        if self.link_kind:
            self.shown.append(text)
        else:
            self.parts.append(text)
            self.plain.append(text)

    def start(self, tag: str, link: tuple[str, str]) -> None:
        """A start tag; ``link`` is an <a>'s (kind, href) (``_link_of``)."""
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in _BLOCK_TAGS:
            self.emit(" ")
        elif tag == "a":
            self.end_link()
            self.link_kind, self.link_href = link
            self.shown = []

    def end(self, tag: str) -> None:
        if tag in ("script", "style") and self.skip:
            self.skip -= 1
        elif tag in _BLOCK_TAGS:
            self.emit(" ")
        elif tag == "a":
            self.end_link()

    def data(self, text: str) -> None:
        if not self.skip:
            self.emit(text)

    def end_link(self) -> None:
        kind, href = self.link_kind, self.link_href
        if not kind:
            return
        self.link_kind = ""
        shown = "".join(self.shown)
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

    def reading(self) -> Reading:
        """What was read, once the HTML has ended."""
        self.end_link()
        plain = "".join(self.plain)
        return Reading(
            "".join(self.parts),
            (*self.mentions, *_mentions_in(plain)),
            (*self.links, *_urls_in(plain)),
        )


def _link_of(attrs: list[tuple[str, str | None]]) -> tuple[str, str]:
    """An <a>'s kind (a mention, a hashtag or a link) and address, from its attributes."""
    found = {name: value or "" for name, value in attrs}
    classes, rel = found.get("class", "").split(), found.get("rel", "").split()
    kind = (
        "tag"
        if "hashtag" in classes or "tag" in rel
        else "mention"
        if "mention" in classes
        else "link"
    )
    return kind, found.get("href", "").strip()


_NO_LINK = ("", "")


class _TextExtractor(HTMLParser):
    """``HTMLParser`` feeding a ``_Reader``: for HTML that ``_read_sanitised`` does not know."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.reader = _Reader()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.reader.start(tag, _link_of(attrs) if tag == "a" else _NO_LINK)

    def handle_endtag(self, tag: str) -> None:
        self.reader.end(tag)

    def handle_data(self, data: str) -> None:
        self.reader.data(data)


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


# The HTML Mastodon-family servers send is sanitised: known tags, quoted attributes,
# character references. Split at each "<", a reply is text, then tag (to the next ">") and
# text in turn; a tag must be one whole tag as this reads it (``_TAG``, what is between "<"
# and ">"), and no text may hold a "<".
_TAG = re.compile(
    r"(/?)([a-zA-Z][a-zA-Z0-9]*)((?:\s+[a-zA-Z_:][-a-zA-Z0-9_:.]*"
    r"(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'))?)*)\s*(/?)"
)
_ATTRIBUTE = re.compile(r"([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'))?")
_RAW_TEXT_TAGS = frozenset({"script", "style", "textarea", "title", "plaintext", "xmp"})


class _Tag(NamedTuple):
    name: str  # lower-case
    closing: bool
    self_closing: bool
    link: tuple[str, str]  # an <a>'s (kind, href): ``_link_of``


# Tags read before, by what is between their "<" and ">": <p>, </span>, the bot's mention
# come again and again. A plain dict (emptied when full): an lru_cache's bookkeeping cost
# more than reading a tag.
_TAGS: dict[str, _Tag | None] = {}
_TAGS_MAX = 8192


def forget() -> None:
    """Empty the caches of tags and mention handles read (a benchmark's cold start)."""
    _TAGS.clear()
    _handle.cache_clear()


def _tag(inside: str) -> _Tag | None:
    """The tag "<``inside``>" is, or None if it is none the sanitised path reads."""
    found = _TAG.fullmatch(inside)
    if found is None:
        return None
    closing, name, attributes, self_closing = found.groups()
    name = name.lower()
    if name in _RAW_TEXT_TAGS:
        return None
    link = _NO_LINK
    if name == "a" and not closing:  # only a link's attributes matter (see _Reader.start)
        link = _link_of(
            [(a.group(1).lower(), _attribute_value(a)) for a in _ATTRIBUTE.finditer(attributes)]
        )
    return _Tag(name, bool(closing), bool(self_closing), link)


def _read_sanitised(html: str) -> Reading | None:
    """``html`` read as ``HTMLParser`` would feed it, if it is plain sanitised HTML.

    ``HTMLParser`` costs about 100 µs a reply in pure Python, and a busy round has thousands.
    Anything this reader does not know (a comment, a stray "<", an unquoted attribute, a
    raw-text element such as <script>) makes it give up and return None; the caller then
    hands the reply to ``HTMLParser``.
    """
    reader = _Reader()
    pieces = html.split("<")
    if pieces[0]:
        reader.data(unescape(pieces[0]) if "&" in pieces[0] else pieces[0])
    for index in range(1, len(pieces)):  # each: a tag's inside, ">", then text
        inside, closed, text = pieces[index].partition(">")
        if not closed:
            return None  # a stray "<", or a tag never closed
        if inside in _TAGS:
            tag = _TAGS[inside]
        else:
            tag = _tag(inside)
            if len(_TAGS) >= _TAGS_MAX:
                _TAGS.clear()
            _TAGS[inside] = tag
        if tag is None:
            return None
        if tag.closing:
            reader.end(tag.name)
        else:
            reader.start(tag.name, tag.link)
            if tag.self_closing:
                reader.end(tag.name)
        if text:
            reader.data(unescape(text) if "&" in text else text)
    return reader.reading()


def _attribute_value(found: re.Match[str]) -> str | None:
    value = found.group(2) if found.group(2) is not None else found.group(3)
    return None if value is None else unescape(value)


def read_reply(raw: str, *, is_html: bool = False) -> Reading:
    """The text people see, with its mentions and links counted once each."""
    if not is_html:
        return Reading(raw, _mentions_in(raw), _urls_in(raw))
    reading = _read_sanitised(raw)
    if reading is None:
        parser = _TextExtractor()
        parser.feed(raw)
        parser.close()
        reading = parser.reader.reading()
    return reading


def _urls_in(text: str) -> tuple[str, ...]:
    if "://" not in text and "ww." not in text.lower():
        return ()  # most replies: no address to look for (a search costs more)
    return tuple(_URL.findall(text))


def _mentions_in(text: str) -> tuple[str, ...]:
    """The handles typed in ``text``; an address's "/@ana/123" is part of a link, not one."""
    if "@" not in text:
        return ()
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
    # In ASCII a word (\w+) is a run of letters, digits and "_": split, not searched.
    words = _ascii_words(text) if text.isascii() else _WORDS.findall(text.lower())
    if len(words) - len(set(words)) < 3:
        return False  # fewer than three repeats: no word is there four times (a cheap look)
    return max(Counter(words).values()) >= 4


def _ascii_words(text: str) -> list[str]:
    r"""The lower-cased words (``\w+``) of ASCII ``text``."""
    return text.encode("ascii").translate(_LOWER_WORD).decode("ascii").split()


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
        return text if text.isprintable() else text.translate(_ASCII_CONTROLS)
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
    global _last_skeleton
    if text.isascii():  # most replies: nothing to normalise, fold or map
        text = text.lower()
        return text if text.isprintable() else text.translate(_ASCII_CONTROLS)
    last = _last_skeleton  # a reply's text is judged twice: by the blocklist, for injection
    if last[0] == text:
        return last[1]
    folded = unicodedata.normalize("NFKC", text).translate(_CONFUSABLE_CAPITALS).casefold()
    kept: list[str] = []
    for ch in unicodedata.normalize("NFKD", folded):
        if " " <= ch <= "~":  # printable ASCII: no mark, nothing hidden
            kept.append(ch)
            continue
        category = unicodedata.category(ch)
        if category not in _STRIP_CATEGORIES and not category.startswith("M"):
            kept.append(ch)
    found = unicodedata.normalize("NFKC", "".join(kept).translate(_CONFUSABLES))
    _last_skeleton = (text, found)  # one tuple, read whole: no thread sees half of a pair
    return found


_last_skeleton: tuple[str, str] = ("", "")


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
        text = " ".join(_collapse_runs(text).split())  # (as re.sub(r"\s+", " ", ...).strip())
        if text == before or not _reformable(text):
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
    if _ALNUM.search(cleaned) is None:
        return "empty after cleaning"
    if ("<" in cleaned or ":" in cleaned) and _MARKUP.search(cleaned):  # (most have neither)
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
    # ASCII text's skeleton is the text lower-cased: a pattern blind to case finds the same.
    same = cleaned.isascii() and bare == cleaned.lower()
    for pattern in blocklist:
        if same:
            # A plain word's pattern, blind to case, can only match ASCII text holding the
            # word lower-cased: a substring test, not a search with lookarounds.
            word = _plain_word(pattern)
            if word is not None and word not in bare:
                continue
        if pattern.search(cleaned) or (
            not (same and _case_blind(pattern)) and pattern.search(bare)
        ):
            return "blocked word"
    return None


def _reformable(text: str) -> bool:
    """Whether ``text`` has what cleaning removes (``_REFORMABLE``), without a search."""
    return "@" in text or "#" in text or "://" in text or "www." in text.lower()


# A plain word's blocklist pattern (``compile_blocklist``): the word, escaped, between
# lookarounds for word characters.
_PLAIN_WORD = re.compile(r"\(\?<!\\w\)(.+)\(\?!\\w\)")


@lru_cache(maxsize=256)
def _plain_word(pattern: re.Pattern[str]) -> str | None:
    """The lower-cased ASCII word a plain word's case-blind pattern matches, else None."""
    found = _PLAIN_WORD.fullmatch(pattern.pattern)
    if found is None or not _case_blind(pattern):
        return None
    word = re.sub(r"\\(.)", r"\1", found.group(1), flags=re.DOTALL)
    if re.escape(word) != found.group(1) or not word.isascii():
        return None
    return word.lower()


# An inline flag that turns IGNORECASE off in part of a pattern: "(?-i:...)", "(?s-i:...)".
_CASE_ON = re.compile(r"\(\?[aiLmsux]*-[msx]*i")


@lru_cache(maxsize=256)
def _case_blind(pattern: re.Pattern[str]) -> bool:
    """Whether ``pattern`` matches a text as it matches the text in other case."""
    return bool(pattern.flags & re.IGNORECASE) and _CASE_ON.search(pattern.pattern) is None


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
