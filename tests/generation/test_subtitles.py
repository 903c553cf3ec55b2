"""Subtitle lines, cue timing and the ASS document, including hostile narration text."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generation.clip.base import Cue
from generation.clip.subtitles import escape_ass, split_lines, srt_text, time_cues, to_ass, to_srt

STORY = (
    "The ship drifted past the last beacon. Nobody aboard remembered the way home, "
    "and the radio only hissed. Vey waited. Then, somewhere out beyond the dead moons of "
    "Kessler's Reach, a signal answered."
)


def test_lines_fit_and_keep_every_word_in_order() -> None:
    lines = split_lines(STORY, max_chars=42)
    assert all(len(line) <= 42 for line in lines)
    assert " ".join(lines).split() == STORY.split()


def test_sentences_end_lines_and_short_ones_share() -> None:
    lines = split_lines("Vey waited. Nothing came. Then the lights died all at once.", 42)
    assert lines == ("Vey waited. Nothing came.", "Then the lights died all at once.")


def test_long_sentences_break_after_clauses_first() -> None:
    lines = split_lines(
        "Nobody aboard remembered the way home, and the radio only hissed.", max_chars=42
    )
    assert lines == ("Nobody aboard remembered the way home,", "and the radio only hissed.")


def test_clause_free_text_wraps_into_even_lines() -> None:
    text = "the quiet engines turned over slowly in the dark cold hold of the freighter"
    lines = split_lines(text, max_chars=42)
    assert len(lines) == 2
    assert abs(len(lines[0]) - len(lines[1])) <= 10


def test_sentence_ends_need_a_following_space() -> None:
    assert split_lines("Version 2.5 of the drive failed.", 42) == (
        "Version 2.5 of the drive failed.",
    )
    assert split_lines('She said "Run." He ran.', 20) == ('She said "Run."', "He ran.")


def test_a_word_longer_than_a_line_stays_whole() -> None:
    word = "Supercalifragilisticexpialidocious-class"
    assert split_lines(f"A {word} freighter.", max_chars=20) == ("A", word, "freighter.")


def test_blank_text_has_no_lines() -> None:
    assert split_lines(" \n\t ") == ()


@given(
    st.lists(st.text(alphabet="abcdefghij.,!? ", min_size=1, max_size=14), max_size=40),
    st.integers(min_value=8, max_value=60),
)
def test_split_never_cuts_or_loses_words(words: list[str], max_chars: int) -> None:
    text = " ".join(words)
    lines = split_lines(text, max_chars)
    assert " ".join(lines).split() == text.split()
    for line in lines:
        assert len(line) <= max_chars or " " not in line


def test_cues_share_the_speech_by_length_and_touch() -> None:
    lines = ("a" * 10, "b" * 30, "c" * 20)
    cues = time_cues(lines, speech_duration_s=6.0, lead_in_s=0.5)
    assert [c.text for c in cues] == list(lines)
    assert cues[0].start_s == pytest.approx(0.5)
    assert cues[-1].end_s == pytest.approx(6.5)
    for before, after in itertools.pairwise(cues):
        assert before.end_s == after.start_s
    assert [c.end_s - c.start_s for c in cues] == pytest.approx([1.0, 3.0, 2.0])


def test_cues_skip_blank_lines_and_check_inputs() -> None:
    assert time_cues(("", "  "), 3.0) == ()
    assert len(time_cues(("one", "", "two"), 3.0)) == 2
    with pytest.raises(ValueError, match="speech_duration_s"):
        time_cues(("x",), 0.0)
    with pytest.raises(ValueError, match="lead_in_s"):
        time_cues(("x",), 1.0, lead_in_s=-1)


def _dialogues(doc: str) -> list[str]:
    return [line for line in doc.splitlines() if line.startswith("Dialogue:")]


def test_ass_document_has_style_sized_to_the_frame() -> None:
    cues = (Cue(0.5, 2.25, "First line."), Cue(2.25, 61.5, "Second, longer line."))
    doc = to_ass(cues, 1280, 720)
    assert "PlayResX: 1280\nPlayResY: 720" in doc
    assert "DejaVu Sans" in doc
    assert _dialogues(doc) == [
        "Dialogue: 0,0:00:00.50,0:00:02.25,Default,,0,0,0,,First line.",
        "Dialogue: 0,0:00:02.25,0:01:01.50,Default,,0,0,0,,Second, longer line.",
    ]

    def style(d: str, field: int) -> int:
        line = next(line for line in d.splitlines() if line.startswith("Style:"))
        return int(line.split(",")[field])

    size, margin_v = 2, 21
    assert style(to_ass(cues, 640, 360), size) * 2 == pytest.approx(style(doc, size), abs=1)
    vertical = to_ass(cues, 720, 1280)
    assert style(vertical, size) == style(doc, size)  # sized by the short side
    assert style(vertical, margin_v) > 2 * style(doc, margin_v)  # above the players' buttons


def test_hostile_text_cannot_add_tags_breaks_or_events() -> None:
    hostile = "{\\an8}hack\\N\nDialogue: 0,0:00:00.00,9:00:00.00,Default,,0,0,0,,{\\fs200}owned}"
    doc = to_ass((Cue(0.0, 1.0, hostile),), 320, 180)
    (text,) = [d.split(",", 9)[9] for d in _dialogues(doc)]
    assert re.search(r"(?<!\\)[{}]", text) is None  # every brace is escaped: no override block
    assert re.search(r"\\[Nnh]", text) is None  # no line breaks or hard spaces
    assert "\\{\\\u2060an8\\}hack\\\u2060N" in text
    assert text.replace("\\{", "{").replace("\\}", "}").replace("\u2060", "") == " ".join(
        hostile.split()
    )


def test_escape_leaves_plain_text_alone() -> None:
    assert escape_ass("Captain Vey: 3, 2, 1... go!") == "Captain Vey: 3, 2, 1... go!"


def test_srt_numbers_cues_with_millisecond_times() -> None:
    cues = (Cue(0.25, 2.0, "First line."), Cue(2.0, 3723.4567, "Second, longer line."))
    assert to_srt(cues) == (
        "1\n00:00:00,250 --> 00:00:02,000\nFirst line.\n"
        "\n"
        "2\n00:00:02,000 --> 01:02:03,457\nSecond, longer line.\n"
    )


def test_srt_normalises_line_breaks_and_skips_empty_cues() -> None:
    cues = (
        Cue(0.0, 1.0, "  top\r\n\r\n  bottom\rline\u2028x \x07bell "),
        Cue(1.0, 1.0, "zero length"),
        Cue(2.0, 1.5, "backwards"),
        Cue(1.0, 2.0, " \n\t "),
        Cue(2.0, 3.0, "{\\an8}kept as text <i>too</i>"),
    )
    doc = to_srt(cues)
    assert "\r" not in doc
    blocks = doc.split("\n\n")
    assert blocks[0] == "1\n00:00:00,000 --> 00:00:01,000\ntop\nbottom\nline\nx bell"
    assert blocks[1] == "2\n00:00:02,000 --> 00:00:03,000\n{\\an8}kept as text <i>too</i>\n"
    assert len(blocks) == 2


def test_srt_of_no_cues_is_empty() -> None:
    assert to_srt(()) == ""


@given(st.lists(st.text(max_size=30), max_size=8))
def test_srt_cue_text_never_holds_a_blank_line(texts: list[str]) -> None:
    cues = tuple(Cue(float(i), i + 0.5, text) for i, text in enumerate(texts))
    doc = to_srt(cues)
    blocks = [b for b in doc.split("\n\n") if b]
    assert len(blocks) == sum(1 for t in texts if srt_text(t))
    for number, block in enumerate(blocks, start=1):
        lines = block.rstrip("\n").split("\n")
        assert lines[0] == str(number)
        assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", lines[1])
        assert all(line.strip() for line in lines[2:])
