"""The sanitised-HTML fast path reads every reply exactly as ``HTMLParser`` does.

``read_reply`` tokenizes the HTML Mastodon-family servers send with one regular expression and
hands anything else to ``HTMLParser``. Each case here is read both ways and must agree to the
character: the recorded Mastodon and Takahe markup, markup built from their pieces at random,
and input the fast path must refuse (comments, stray "<", unquoted attributes, <script>).
"""

from __future__ import annotations

import random

import pytest

from story_state import text
from story_state.text import Reading, read_reply
from tests.bot.test_reply_html import (
    BOT_CARD,
    FRIEND_CARD,
    HASHTAG,
    LINK,
    MENTIONED,
    REPLIED,
    TAKAHE,
)


def _slow(html: str) -> Reading:
    parser = text._TextExtractor()
    parser.feed(html)
    parser.close()
    return parser.reader.reading()


def _fast_accepts(html: str) -> bool:
    return text._read_sanitised(html) is not None


PIECES = (
    BOT_CARD,
    FRIEND_CARD,
    LINK,
    HASHTAG,
    "<p>",
    "</p>",
    "<br>",
    "<br />",
    "<BR/>",
    " the miners rebel ",
    "caf&eacute; &amp; &lt;b&gt; &#128640;",
    "@ana@example.social ",
    "https://example.com/a?b=1&amp;c=2 ",
    '<a href="https://example.com/x?y=1&amp;z=2" rel="nofollow">example.com/x</a>',
    '<a href="https://example.com/@cy">@cy</a>',
    "<span class='invisible'>hidden?</span>",
    "<em>so</em> <strong>loud</strong>",
    "> quoted & raw",
    "\u202e\u0301 zalgo\u0300\u0301\u0302",
    "<ul><li>one</li><li>two</li></ul>",
    "a > b, c >> d ",
    "<P CLASS='x'>shouting</P>",
    '<a href="https://example.com/@dee" class="u-url mention">@dee@example.com</a>',
    "<br/>\n\t",
)


@pytest.mark.parametrize("html", [MENTIONED, REPLIED, TAKAHE, LINK, HASHTAG])
def test_recorded_markup_takes_the_fast_path_and_reads_the_same(html: str) -> None:
    assert _fast_accepts(html)
    assert read_reply(html, is_html=True) == _slow(html)


def test_random_sanitised_markup_reads_the_same() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        html = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 9)))
        assert _fast_accepts(html), html
        assert read_reply(html, is_html=True) == _slow(html), html


@pytest.mark.parametrize(
    "html",
    [
        "<p>a <!-- hidden --> b</p>",
        "<p>a < b and c</p>",
        "<p>1 <2</p>",
        "<a href=https://evil.example/>click</a>",
        "<p>ok</p><script>alert(1)</script><p>the end</p>",
        "<style>p{}</style><p>styled</p>",
        '<p>unclosed <a href="https://example.com"',
        "<![CDATA[x]]><p>y</p>",
        "< p>spaced</p>",
        '<p><a href="https://example.com/x>y">z</a></p>',
        "<p>the end <",
        "<p>a<b</p>",
        "<p>x</p><!DOCTYPE html>",
        "<p>ok</p><textarea><p>not a tag</p></textarea>",
    ],
)
def test_markup_the_fast_path_does_not_know_goes_to_html_parser(html: str) -> None:
    assert not _fast_accepts(html)
    assert read_reply(html, is_html=True) == _slow(html)


def test_forget_empties_the_tags_read_and_reads_the_same_after() -> None:
    before = read_reply(MENTIONED, is_html=True)
    assert text._TAGS
    text.forget()
    assert not text._TAGS and text._handle.cache_info().currsize == 0
    assert read_reply(MENTIONED, is_html=True) == before
