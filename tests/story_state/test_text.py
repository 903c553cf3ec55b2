"""Cleaning and judging follower text."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from story_state.text import (
    clean_text,
    compile_blocklist,
    is_own,
    padding,
    read_reply,
    reject_reason,
    shorten,
    skeleton,
)


@pytest.mark.parametrize(
    ("raw", "is_html", "expected"),
    [
        (
            '<p><span class="h-card"><a href="https://x.y/@bot">@<span>bot</span></a></span> '
            "the miners rebel!</p>",
            True,
            "the miners rebel!",
        ),
        ("<p>line one<br>line two</p><script>alert(1)</script>", True, "line one line two"),
        ("@ana@example.social a stowaway https://spam.example #SciFi", False, "a stowaway SciFi"),
        ("ｆｕｌｌｗｉｄｔｈ", False, "fullwidth"),
        ("so cooooooooool", False, "so coool"),
        ("hidden\u202etext\u200b here", False, "hiddentext here"),
        ("   spaced \n\n out   ", False, "spaced out"),
        ("@storybot@127.0.0.1:8000 the idea", False, "the idea"),  # Takahe: host and port
        ("@storybot: the idea", False, "the idea"),
        ("go go go go go home", False, "go home"),  # padding said once
        ("the end the end the end the end", False, "the end"),
        ("very very very dark", False, "very very very dark"),  # three is emphasis
    ],
)
def test_clean_text(raw: str, is_html: bool, expected: str) -> None:
    assert clean_text(raw, is_html=is_html) == expected


def test_zalgo_stacks_are_trimmed() -> None:
    out = clean_text("z" + "\u0301\u0302\u0303\u0304\u0305" * 10 + "algo")
    marks = [ch for ch in out if unicodedata.category(ch).startswith("M")]
    assert out.endswith("algo") and len(marks) <= 2


def test_shorten_never_cuts_mid_word() -> None:
    assert shorten("the derelict ship hums", 15) == "the derelict"
    assert shorten("short", 15) == "short"


def test_reject_reasons() -> None:
    blocklist = compile_blocklist(["darn", "re:b[a4]d+", "# a comment", ""])
    assert reject_reason("", "", blocklist=blocklist) == "empty after cleaning"
    assert reject_reason("!!!", "!!!") == "empty after cleaning"
    assert reject_reason("a http://a.b http://c.d", "a") == "link or mention spam"
    assert reject_reason("well darn it", "well darn it", blocklist=blocklist) == "blocked word"
    assert reject_reason("so b4ddd", "so b4ddd", blocklist=blocklist) == "blocked word"
    assert reject_reason("darned", "darned", blocklist=blocklist) is None  # whole words only
    assert reject_reason("the miners rebel", "the miners rebel", blocklist=blocklist) is None


@given(st.text(max_size=3000))
def test_clean_text_is_bounded_and_plain(raw: str) -> None:
    out = clean_text(raw, max_length=200)
    assert len(out) <= 200
    assert "\n" not in out and "  " not in out
    assert out == out.strip()
    assert clean_text(out, max_length=200) == out  # idempotent


@given(st.text(max_size=500))
def test_html_input_never_leaks_markup(raw: str) -> None:
    out = clean_text(f"<p>{raw}</p><script>x()</script>", is_html=True)
    assert ("<script>" not in out and "x()" not in out) or "x()" in raw


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("darn", "darn"),
        ("DaRn", "darn"),
        ("\u0501arn", "darn"),  # Cyrillic komi de
        ("d\u0430rn", "darn"),  # Cyrillic a
        ("da\u0433n", "darn"),  # Cyrillic ghe
        ("dar\u0578", "darn"),  # Armenian vo
        ("d\u03b1rn", "darn"),  # Greek alpha
        ("d\u0251rn", "darn"),  # Latin alpha
        ("\u1d05\u1d00\u0280\u0274", "darn"),  # small capitals
        ("\u13e7arn", "darn"),  # Cherokee
        ("d\u200bar\u2060n", "darn"),  # zero-width space, word joiner
        ("d\u00adarn", "darn"),  # soft hyphen
        ("\uff44\uff41\uff52\uff4e", "darn"),  # full-width
        ("\U0001d41d\U0001d41a\U0001d42b\U0001d427", "darn"),  # mathematical bold
        ("\u24d3\u24d0\u24e1\u24dd", "darn"),  # circled
        ("d\u0301a\u0336r\u0336n", "darn"),  # accents and strike-through
        ("\u202edarn\u202c", "darn"),  # bidi override
        ("Café au lait", "cafe au lait"),
        ("DA\u0397\u039d", "dahn"),  # Greek capital eta and nu read as H and N
        ("\ua4d3\ua4ee\ua4e3\ua4e0", "darn"),  # Lisu letters
    ],
)
def test_skeleton_maps_confusables_to_plain_latin(raw: str, expected: str) -> None:
    assert skeleton(raw) == expected


@pytest.mark.parametrize(
    ("text", "blocked"),
    [
        ("The \u0501arn ship explodes", True),
        ("The \uff44\uff41\uff52\uff4e ship", True),
        ("The d\u200barn ship", True),
        ("\u0501\u0430\u0433\u0578!!!", True),
        ("The D\u0336A\u0336R\u0336N\u0336 ship", True),
        ("The darned ship", False),  # still whole words only
        ("The \u217eam holds", False),  # roman numeral d: "dam", not the word
        ("Корабль тонет", False),  # Russian text stays allowed
    ],
)
def test_blocklist_sees_through_confusables(text: str, blocked: bool) -> None:
    blocklist = compile_blocklist(["darn"])
    cleaned = clean_text(text)
    assert (reject_reason(text, cleaned, blocklist=blocklist) == "blocked word") is blocked


def test_plain_replies_count_mentions_and_links_once() -> None:
    reading = read_reply("@Ana @ben@x.social: look https://a.example/@c and www.b.example")
    assert reading.mentions == ("ana", "ben@x.social")
    assert reading.links == ("https://a.example/@c", "www.b.example")


@pytest.mark.parametrize(
    ("handle", "own", "expected"),
    [
        ("storybot@127.0.0.1:8000", {"storybot"}, True),
        ("storybot@127.0.0.1:8000", {"storybot@127.0.0.1:8000"}, True),
        ("storybot@other.example", {"storybot@127.0.0.1:8000"}, False),
        ("storybotfan@x.y", {"storybot"}, False),
        ("ana", set(), False),
    ],
)
def test_is_own(handle: str, own: set[str], expected: bool) -> None:
    assert is_own(handle, own) is expected


def test_padding_counts_the_repeated_words() -> None:
    assert padding("go go go go go home") == 4
    assert padding("the end the end the end the end") == 6
    assert padding("very very very dark") == 0
    assert padding("a a a a b a b a b a b") == 9  # collapsing lines up a second run


def _skeleton_as_written(text: str) -> str:
    """The skeleton's definition, as first written (a generator, no shortcut, no memory)."""
    from story_state.text import _CONFUSABLE_CAPITALS, _CONFUSABLES, _STRIP_CATEGORIES

    text = unicodedata.normalize("NFKC", text).translate(_CONFUSABLE_CAPITALS).casefold()
    text = unicodedata.normalize("NFKD", text)
    kept = (
        ch
        for ch in text
        if unicodedata.category(ch) not in _STRIP_CATEGORIES
        and not unicodedata.category(ch).startswith("M")
    )
    return unicodedata.normalize("NFKC", "".join(kept).translate(_CONFUSABLES))


@settings(max_examples=600, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=4))
def test_the_skeleton_of_any_text_is_its_definition_however_often_asked(
    texts: list[str],
) -> None:
    """Non-ASCII text takes the long way, with printable ASCII kept as it comes and the last
    text's skeleton remembered: the same answers, in any order, asked again or not."""
    for text in [*texts, *reversed(texts), texts[0], texts[0]]:
        assert skeleton(text) == _skeleton_as_written(text), text
    assert skeleton("Ｆｕｌｌ\u200bwidth ÉCLAIR ☄") == "fullwidth eclair ☄"
