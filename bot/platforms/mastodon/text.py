"""Mastodon's status HTML as plain text, to recognise a post we made earlier."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SPACE = re.compile(r"\s+")
# "@ana@example.social" and Takahe's "@storybot@127.0.0.1:8000" (the port is part of it).
_MENTION = re.compile(r"(?<![\w@])@([\w.]+)@[\w.-]+\w(?::\d{1,5}(?!\d))?")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "p"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


def comparable(text: str) -> str:
    """Text as Mastodon shows it, for "is this the post we made?": one space, short mentions."""
    return _SPACE.sub(" ", _MENTION.sub(r"@\1", text)).strip()
