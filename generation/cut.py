"""The Community's Cut: every episode as one film, with title, chapter cards and end credits.

Cards are drawn once with Pillow; one ffmpeg pass repeats them, scrolls the credits, scales
any episode that differs in size or rate, joins everything with the concat filter and
encodes it with the clip assembler's settings. MP4 chapter marks come from an FFMETADATA
file. No frame passes through Python.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from generation._cards import chapter_card, credits_roll, title_card
from generation.clip.ffmpeg import SAMPLE_RATE, TIMEOUT_S, FfmpegAssembler, grain_filters
from generation.clip.probe import ClipProbe, probe_clip, validate_clip
from generation.files import atomic_output
from generation.tools import run_tool
from story_state.errors import GenerationError

FADE_S = 0.4
CREDITS_MAX_S = 60.0
EASY_SCREENS_PER_S, FAST_SCREENS_PER_S = 1 / 7, 1 / 2.5  # credit roll speeds, in frame heights
CREDITS_HEADING = "Told by its followers"
INLINE_GRAPH_MAX = 64_000  # longer graphs go through a file: one argument may hold 128 KiB
_META_SPECIAL = ("\\", "=", ";", "#", "\n")


@dataclass(frozen=True)
class Chapter:
    number: int
    title: str
    clip: Path


@dataclass(frozen=True)
class CutChapter:
    title: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class CutInfo:
    path: Path
    duration_s: float
    chapters: tuple[CutChapter, ...]  # title card, one per episode (card + clip), credits
    size_bytes: int = 0
    credited: int = 0  # names shown in the credits
    left_out: int = 0  # names that did not fit ("…and N more")


@dataclass(frozen=True)
class _Segment:
    """One input of the concat: a still card (maybe scrolling) or an episode clip."""

    source: Path
    frames: int
    card: bool
    probe: ClipProbe | None = None
    scroll: bool = False


def render_cut(
    chapters: Sequence[Chapter],
    *,
    title: str,
    credits: Sequence[str],
    out: Path,
    width: int = 1280,
    height: int = 720,
    fps: int = 24,
    card_seconds: float = 3.0,
    credits_seconds: float | None = None,
    date: str | None = None,
    assembler: FfmpegAssembler | None = None,
) -> CutInfo:
    """Join ``chapters`` (in the order given) between a title card and scrolling credits.

    ``credits`` are the contributors' names, shown once each in the order given. The roll
    runs at a relaxed pace, adding columns for long lists, then faster (up to
    ``CREDITS_MAX_S``); names beyond that are counted, not shown. ``credits_seconds`` fixes
    its length instead. Every episode file must exist and be readable.
    """
    if not chapters:
        raise ValueError("a cut needs at least one chapter")
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ValueError(f"frame size must be even and at least 16: {width}x{height}")
    if card_seconds <= 2 * FADE_S or not 1 <= fps <= 120:
        raise ValueError(f"card_seconds must exceed {2 * FADE_S}s and fps be 1..120")
    assembler = assembler or FfmpegAssembler()
    probes = [_probe_episode(c) for c in chapters]
    card_frames = round(card_seconds * fps)
    with tempfile.TemporaryDirectory(prefix=".cut-", dir=_parent(out)) as scratch:
        work = Path(scratch)
        segments = [_card(title_card(title, date, width, height), work / "title.png", card_frames)]
        for chapter, probe in zip(chapters, probes, strict=True):
            card = chapter_card(chapter.number, chapter.title, width, height)
            segments.append(_card(card, work / f"card-{len(segments)}.png", card_frames))
            frames = max(1, math.ceil((probe.duration_s or 0.0) * fps - 1e-6))
            segments.append(_Segment(chapter.clip, frames, card=False, probe=probe))
        roll_frames, shown, left_out = _credits(
            credits, work / "credits.png", width, height, fps, credits_seconds
        )
        segments.append(_Segment(work / "credits.png", roll_frames, card=True, scroll=True))
        marks = _chapter_marks(title, chapters, segments, fps)
        meta = work / "chapters.txt"
        meta.write_text(ffmetadata(title, marks), "utf-8")
        with atomic_output(out) as tmp:
            _run(_command(assembler, segments, meta, work, width, height, fps, tmp))
            probe = validate_clip(
                tmp, max_width=width, max_height=height, max_seconds=None, name=out.name
            )
    return CutInfo(
        path=out,
        duration_s=sum(s.frames for s in segments) / fps,
        chapters=marks,
        size_bytes=probe.size_bytes,
        credited=shown,
        left_out=left_out,
    )


def ffmetadata(title: str, chapters: Sequence[CutChapter]) -> str:
    """An FFMETADATA1 document: the film's title and one [CHAPTER] per mark, in ms."""

    def esc(text: str) -> str:
        for char in _META_SPECIAL:
            text = text.replace(char, "\\" + char)
        return text

    lines = [";FFMETADATA1", f"title={esc(title)}"]
    for mark in chapters:
        lines += [
            "[CHAPTER]",
            "TIMEBASE=1/1000",
            f"START={round(mark.start_s * 1000)}",
            f"END={round(mark.end_s * 1000)}",
            f"title={esc(mark.title)}",
        ]
    return "\n".join(lines) + "\n"


def _parent(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.parent


def _probe_episode(chapter: Chapter) -> ClipProbe:
    if not chapter.clip.is_file():
        raise GenerationError(f"chapter {chapter.number}: no clip at {chapter.clip}")
    probe = probe_clip(chapter.clip)
    if not probe.readable or probe.video_codec is None or not probe.duration_s:
        raise GenerationError(f"chapter {chapter.number}: {chapter.clip} is not a readable video")
    return probe


def _card(image: Image.Image, path: Path, frames: int) -> _Segment:
    image.save(path, format="PNG", compress_level=1)
    return _Segment(path, frames, card=True)


def _credits(
    names: Sequence[str],
    path: Path,
    width: int,
    height: int,
    fps: int,
    seconds: float | None,
) -> tuple[int, int, int]:
    """Draw the roll and choose its length: returns (frames, names shown, names left out)."""
    line = round(height * 0.06)
    longest = seconds or CREDITS_MAX_S
    easy = int((EASY_SCREENS_PER_S * height * longest - height) // line)
    fast = int((FAST_SCREENS_PER_S * height * longest - height) // line)
    roll = credits_roll(CREDITS_HEADING, names, width, height, max(easy, 4), max(fast, 4))
    roll.image.save(path, format="PNG", compress_level=1)
    distance = roll.image.height - height
    if seconds is None:
        seconds = min(CREDITS_MAX_S, max(4.0, distance / (EASY_SCREENS_PER_S * height)))
    return max(2, round(seconds * fps)), roll.shown, roll.left_out


def _chapter_marks(
    title: str, chapters: Sequence[Chapter], segments: Sequence[_Segment], fps: int
) -> tuple[CutChapter, ...]:
    """Title card; each chapter's card and clip together; the credits."""
    bounds = [0]
    for segment in segments:
        bounds.append(bounds[-1] + segment.frames)
    t = [b / fps for b in bounds]
    marks = [CutChapter(title, t[0], t[1])]
    for i, chapter in enumerate(chapters):
        start, end = t[1 + 2 * i], t[3 + 2 * i]
        marks.append(CutChapter(f"Chapter {chapter.number} — {chapter.title}", start, end))
    marks.append(CutChapter("Credits", t[-2], t[-1]))
    return tuple(marks)


def _command(
    assembler: FfmpegAssembler,
    segments: Sequence[_Segment],
    meta: Path,
    work: Path,
    width: int,
    height: int,
    fps: int,
    out: Path,
) -> list[str]:
    inputs: list[str] = []
    chains: list[str] = []
    fmt = f"aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=stereo"
    for i, seg in enumerate(segments):
        seconds = seg.frames / fps
        # One decoder thread each: the inputs are opened together but read one at a time.
        inputs += ["-threads", "1", "-i", f"file:{seg.source}"]
        if seg.card:
            video = [
                "format=yuv420p",
                f"loop=loop={seg.frames - 1}:size=1,settb=1/{fps},setpts=N",
                *([f"crop={width}:{height}:0:'(ih-oh)*n/{seg.frames - 1}'"] if seg.scroll else []),
                *grain_filters("film", i),
                f"fade=t=in:d={FADE_S}",
                f"fade=t=out:st={seconds - FADE_S:.6f}:d={FADE_S}",
            ]
        else:
            video = [
                f"scale={width}:{height}:force_original_aspect_ratio=decrease",
                f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2",
                f"fps={fps}",
                "format=yuv420p",
                "tpad=stop_mode=clone:stop_duration=1",  # a short video stream meets its audio
            ]
        video += [f"trim=end_frame={seg.frames}", "setpts=PTS-STARTPTS", "setsar=1"]
        chains.append(f"[{i}:v]" + ",".join(video) + f"[v{i}]")
        has_audio = seg.probe is not None and seg.probe.audio_codec is not None
        audio = (
            f"[{i}:a]aresample={SAMPLE_RATE},{fmt},apad"
            if has_audio
            else f"anullsrc=r={SAMPLE_RATE}:cl=stereo,{fmt}"
        )
        chains.append(f"{audio},atrim=duration={seconds:.6f},asetpts=PTS-STARTPTS[a{i}]")
    pads = "".join(f"[v{i}][a{i}]" for i in range(len(segments)))
    chains.append(f"{pads}concat=n={len(segments)}:v=1:a=1[v][a]")
    meta_index = len(segments)
    graph = ";".join(chains)
    if len(graph) <= INLINE_GRAPH_MAX:
        graph_args = ["-filter_complex", graph]
    else:  # ffmpeg 7+ reads an option's value from a file named after "-/"
        (work / "graph.txt").write_text(graph, "utf-8")
        graph_args = ["-/filter_complex", str(work / "graph.txt")]
    return [
        assembler.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *inputs,
        "-f", "ffmetadata", "-i", f"file:{meta}",
        *graph_args, "-map", "[v]", "-map", "[a]",
        *assembler.encoder_args(fps),
        "-map_metadata", str(meta_index), "-map_chapters", str(meta_index), str(out),
    ]  # fmt: skip


def _run(args: list[str]) -> None:
    run_tool(args, what="ffmpeg rendering the cut", timeout_s=TIMEOUT_S * 4)
