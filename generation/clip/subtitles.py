"""Subtitles as pure functions: narration → screen lines → timed cues → ASS and SRT documents."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from generation.clip.base import Cue

FONT = "DejaVu Sans"  # ships with nearly every Linux image and with libass test setups
_SENTENCE = re.compile(r".+?(?:[.!?…]+[\"'”’)\]]*(?=\s|$)|$)", re.DOTALL)
_CLAUSE_BREAK = re.compile(r"(?<=[,;:—–])\s+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_SRT_BREAK = re.compile(r"\r\n?|[\u2028\u2029]")
_SRT_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]+")  # all but the newline
_WORD_JOINER = "\u2060"  # invisible; stops "\N", "\h", "\{" from forming after a backslash


def split_lines(text: str, max_chars: int = 42) -> tuple[str, ...]:
    """Screen-sized lines: whole sentences where they fit, else clauses, else balanced words.

    Short neighbouring sentences share a line. A line only exceeds ``max_chars`` when a single
    word is longer than that; words are never cut.
    """
    if max_chars < 8:
        raise ValueError(f"max_chars must be at least 8, got {max_chars}")
    flat = " ".join(text.split())
    sentences = [s.strip() for s in _SENTENCE.findall(flat) if s.strip()]
    pieces: list[str] = []
    for sentence in sentences:
        if len(sentence) <= max_chars:
            pieces.append(sentence)
            continue
        for clause in _pack(_CLAUSE_BREAK.split(sentence), max_chars):
            pieces.extend([clause] if len(clause) <= max_chars else _wrap(clause, max_chars))
    return tuple(_pack(pieces, max_chars))


def _pack(parts: Sequence[str], max_chars: int) -> list[str]:
    """Join neighbours with spaces while the result still fits."""
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + 1 + len(part) <= max_chars:
            lines[-1] = f"{lines[-1]} {part}"
        else:
            lines.append(part)
    return lines


def _wrap(text: str, max_chars: int) -> list[str]:
    """Fewest lines of at most ``max_chars``, as even in length as greedy filling allows."""
    words = text.split()
    count = math.ceil(len(text) / max_chars)
    width = math.ceil(len(text) / count)
    while True:
        lines = _pack(words, width)
        if len(lines) <= count or width >= max_chars:
            return lines
        width += 1


def time_cues(
    lines: Sequence[str], speech_duration_s: float, lead_in_s: float = 0.0
) -> tuple[Cue, ...]:
    """Share the speech time among lines by character count; cues touch end to start."""
    if speech_duration_s <= 0:
        raise ValueError(f"speech_duration_s must be positive, got {speech_duration_s}")
    if lead_in_s < 0:
        raise ValueError(f"lead_in_s must not be negative, got {lead_in_s}")
    lines = [line for line in lines if line.strip()]
    total = sum(len(line) for line in lines)
    cues: list[Cue] = []
    done = 0
    for line in lines:
        start = lead_in_s + speech_duration_s * done / total
        done += len(line)
        end = lead_in_s + speech_duration_s * done / total
        cues.append(Cue(start_s=start, end_s=end, text=line))
    return tuple(cues)


def escape_ass(text: str) -> str:
    """Make user-influenced text literal in an ASS Dialogue line: no tags, breaks or new events."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    text = text.replace("\\", "\\" + _WORD_JOINER)
    return text.replace("{", "\\{").replace("}", "\\}")


def _timestamp(seconds: float) -> str:
    centis = max(0, round(seconds * 100))
    hours, centis = divmod(centis, 360_000)
    minutes, centis = divmod(centis, 6_000)
    secs, centis = divmod(centis, 100)
    return f"{hours}:{minutes:02d}:{secs:02d}.{centis:02d}"


def to_ass(cues: Sequence[Cue], width: int, height: int) -> str:
    """An ASS document: pale-yellow sans with a dark outline and soft shadow, bottom centre."""
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    short = min(width, height)  # vertical frames get the same type size as landscape ones
    size = max(10, round(short * 0.058))
    outline = max(1.0, round(size * 0.09, 1))
    shadow = max(0.5, round(size * 0.05, 1))
    margin_h = max(8, round(width * 0.06))
    # Vertical players (Reels, Shorts) cover the bottom strip with captions and buttons.
    margin_v = max(6, round(height * (0.14 if height > width else 0.06)))
    # Colours are &HAABBGGRR: text (255, 238, 176), outline near-black, shadow half-transparent.
    style = (
        f"Style: Default,{FONT},{size},&H00B0EEFF,&H000000FF,&H00140C08,&H80000000,"
        f"-1,0,0,0,100,100,0.5,0,1,{outline},{shadow},2,{margin_h},{margin_h},{margin_v},1"
    )
    head = [
        "[Script Info]",
        "; storybot subtitles",
        "ScriptType: v4.00+",
        f"PlayResX: {width}",
        f"PlayResY: {height}",
        "WrapStyle: 0",
        "ScaledBorderAndShadow: yes",
        "YCbCr Matrix: TV.709",
        "",
        "[V4+ Styles]",
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, "
        "BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, "
        "BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding",
        style,
        "",
        "[Events]",
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
    ]
    events = [
        f"Dialogue: 0,{_timestamp(c.start_s)},{_timestamp(c.end_s)},Default,,0,0,0,,"
        f"{escape_ass(c.text)}"
        for c in cues
        if c.end_s > c.start_s
    ]
    return "\n".join([*head, *events]) + "\n"


def _srt_timestamp(seconds: float) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def srt_text(text: str) -> str:
    """Cue text for SubRip: LF line ends, no blank lines (one would end the cue early)."""
    text = _SRT_BREAK.sub("\n", text)
    lines = (" ".join(_SRT_CONTROL.sub(" ", line).split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def to_srt(cues: Sequence[Cue]) -> str:
    """A SubRip document of the same cues that :func:`to_ass` burns in, numbered from 1."""
    blocks: list[str] = []
    for cue in cues:
        text = srt_text(cue.text)
        if cue.end_s <= cue.start_s or not text:
            continue
        span = f"{_srt_timestamp(cue.start_s)} --> {_srt_timestamp(cue.end_s)}"
        blocks.append(f"{len(blocks) + 1}\n{span}\n{text}\n")
    return "\n".join(blocks)
