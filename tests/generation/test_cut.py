"""The Community's Cut: cards, chapters, credits and one continuous MP4, checked with ffprobe."""

from __future__ import annotations

import json
import subprocess
import wave
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image, ImageDraw

from generation._cards import credits_roll
from generation.clip.base import ClipRequest, Cue
from generation.clip.ffmpeg import FfmpegAssembler
from generation.cut import Chapter, CutChapter, ffmetadata, render_cut
from story_state.errors import GenerationError
from tests import needs

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
W, H, FPS = 320, 180, 24


def _tone(path: Path, seconds: float, freq: float) -> Path:
    t = np.arange(int(seconds * 22_050)) / 22_050
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(22_050)
        wav.writeframes((9000 * np.sin(2 * np.pi * freq * t)).astype(np.int16).tobytes())
    return path


@pytest.fixture(scope="module")
def episodes(tmp_path_factory: pytest.TempPathFactory) -> list[Chapter]:
    """Two tiny episodes; the second is vertical, so the cut has to fit it in."""
    folder = tmp_path_factory.mktemp("episodes")
    image = Image.new("RGB", (W, H), (40, 90, 160))
    ImageDraw.Draw(image).ellipse((200, 20, 300, 120), fill=(250, 200, 90))
    image.save(folder / "still.png")
    chapters = []
    for number, (size, title) in enumerate(
        [((W, H), "The salt road"), ((H, W), "Signal; = answered #2")], start=1
    ):
        voice = _tone(folder / f"voice-{number}.wav", 1.0, 200.0 * number)
        request = ClipRequest(
            still=folder / "still.png", narration=voice, seed=number, width=size[0],
            height=size[1], lead_in_s=0.25, tail_s=0.25,
            cues=(Cue(0.25, 1.25, f"Episode {number}"),),
        )  # fmt: skip
        clip = FfmpegAssembler().assemble(request, folder / f"episode-{number}.mp4")
        chapters.append(Chapter(number, title, clip.path))
    return chapters


def _ffprobe(path: Path) -> dict[str, Any]:
    ffprobe = needs.tool("ffprobe", "apt-get install ffmpeg")
    args = [ffprobe, "-v", "error", "-print_format", "json"]
    args += ["-show_chapters", "-show_streams", "-show_format", str(path)]
    return dict(json.loads(subprocess.run(args, capture_output=True, check=True).stdout))


def _frame(path: Path, at_s: float) -> np.ndarray:
    args = [FFMPEG, "-v", "error", "-ss", f"{at_s:.3f}", "-i", str(path), "-frames:v", "1"]
    raw = subprocess.run(
        [*args, "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True, check=True
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(H, W).astype(np.float64)


def _audio(path: Path) -> np.ndarray:
    args = [FFMPEG, "-v", "error", "-i", str(path), "-ac", "1", "-ar", "48000", "-f", "s16le", "-"]
    raw = subprocess.run(args, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.int16).astype(np.float64)


def test_cut_joins_cards_episodes_and_credits_with_chapters(
    episodes: list[Chapter], tmp_path: Path
) -> None:
    names = ["@ana@example.social", "ben", "cy\n(hostile=;#)", "ben"]
    info = render_cut(
        episodes, title="The Salt Road", credits=names, out=tmp_path / "cut" / "film.mp4",
        width=W, height=H, fps=FPS, card_seconds=1.0, date="25 November 2026",
    )  # fmt: skip
    assert info.path == tmp_path / "cut" / "film.mp4"
    assert sorted(p.name for p in info.path.parent.iterdir()) == ["film.mp4"]  # no leftovers
    assert (info.credited, info.left_out) == (3, 0)

    probe = _ffprobe(info.path)
    chapters = probe["chapters"]
    titles = [c["tags"]["title"] for c in chapters]
    assert titles == [
        "The Salt Road",
        "Chapter 1 — The salt road",
        "Chapter 2 — Signal; = answered #2",
        "Credits",
    ]
    starts = [float(c["start_time"]) for c in chapters]
    ends = [float(c["end_time"]) for c in chapters]
    assert starts[0] == 0.0
    assert all(a < b for a, b in zip(starts, ends, strict=True))
    assert all(b == pytest.approx(a, abs=0.002) for a, b in zip(ends, starts[1:], strict=False))
    assert starts == pytest.approx([c.start_s for c in info.chapters], abs=0.002)

    clips = [float(_ffprobe(c.clip)["format"]["duration"]) for c in episodes]
    credits = info.chapters[-1].end_s - info.chapters[-1].start_s
    expected = 1.0 + (1.0 + clips[0]) + (1.0 + clips[1]) + credits
    assert credits >= 4.0
    assert ends[1] - starts[1] == pytest.approx(1.0 + clips[0], abs=0.05)
    duration = float(probe["format"]["duration"])
    assert duration == pytest.approx(expected, abs=0.5)
    assert info.duration_s == pytest.approx(duration, abs=0.1)
    streams = {s["codec_type"]: s for s in probe["streams"]}
    for kind in ("video", "audio"):
        assert float(streams[kind]["duration"]) == pytest.approx(duration, abs=0.15), kind
    video = streams["video"]
    assert (video["codec_name"], video["profile"], video["pix_fmt"]) == ("h264", "High", "yuv420p")
    assert (video["width"], video["height"]) == (W, H)
    assert probe["format"]["tags"]["title"] == "The Salt Road"

    # Each episode's narration is heard inside its chapter, the cards are silent.
    sound = _audio(info.path)

    def rms(start: float, end: float) -> float:
        part = sound[int(start * 48_000) : int(end * 48_000)]
        return float(np.sqrt(np.mean(part**2)))

    for index in (1, 2):
        card_end = starts[index] + 1.0
        assert rms(starts[index] + 0.1, card_end - 0.1) < 50, f"card {index}"
        assert rms(card_end + 0.4, card_end + 1.1) > 1000, f"episode {index}"

    # The vertical episode is letterboxed, not stretched: dark bars at the sides.
    second = _frame(info.path, starts[2] + 1.6)
    assert second[:, :40].mean() < 30 and second[:, 140:180].mean() > 60

    # The credits roll shows text mid-way (the frame is not one flat colour), and it moves.
    middle = (starts[3] + ends[3]) / 2
    roll, later = _frame(info.path, middle), _frame(info.path, middle + 0.5)
    assert roll.max() - roll.min() > 100 and (roll > 150).mean() > 0.002
    assert np.abs(roll - later).mean() > 1.0


def test_a_missing_or_broken_episode_is_named(episodes: list[Chapter], tmp_path: Path) -> None:
    gone = Chapter(3, "Lost", tmp_path / "episode-3.mp4")
    with pytest.raises(GenerationError, match="chapter 3: no clip at"):
        render_cut([*episodes, gone], title="T", credits=[], out=tmp_path / "cut.mp4")
    broken = tmp_path / "episode-4.mp4"
    broken.write_text("not a video")
    with pytest.raises(GenerationError, match=r"chapter 4: .* not a readable video"):
        render_cut([Chapter(4, "Broken", broken)], title="T", credits=[], out=tmp_path / "cut.mp4")
    with pytest.raises(ValueError, match="at least one chapter"):
        render_cut([], title="T", credits=[], out=tmp_path / "cut.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode-4.mp4"]


def test_chapter_metadata_is_escaped() -> None:
    doc = ffmetadata("A=B; #1\\", [CutChapter("Chapter 1 — x=y\nz", 0.0, 2.5)])
    assert doc == (
        ";FFMETADATA1\n"
        "title=A\\=B\\; \\#1\\\\\n"
        "[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=2500\n"
        "title=Chapter 1 — x\\=y\\\nz\n"
    )


def test_long_credit_lists_take_columns_then_count_the_rest() -> None:
    def roll(count: int) -> tuple[int, int, int, int]:
        names = [f"@follower{i}@example.social" for i in range(count)]
        r = credits_roll("Told by", names, 1280, 720, easy_lines=40, max_lines=120)
        return r.shown, r.left_out, r.columns, r.image.height

    assert roll(3)[:3] == (3, 0, 1)
    assert roll(30)[:3] == (30, 0, 1)
    assert roll(120)[:3] == (120, 0, 4)  # 36 relaxed rows a column
    shown, left_out, columns, height = roll(10_000)
    assert columns == 4 and shown + left_out == 10_000 and left_out > 9000
    assert height <= 120 * round(720 * 0.06) + 2 * 720  # the roll stays within max_lines
    ink = np.asarray(credits_roll("Told by", ["x"] * 2 + ["y"], 320, 180, 10, 10).image)
    assert ink.shape == (180 * 2 + 4 * round(180 * 0.06), 320)  # heading, gap, 2 names


def test_a_long_filter_graph_goes_through_a_file(
    episodes: list[Chapter], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("generation.cut.INLINE_GRAPH_MAX", 0)
    info = render_cut(
        episodes[:1], title="Short", credits=["ana"], out=tmp_path / "short.mp4",
        width=W, height=H, fps=FPS, card_seconds=1.0, credits_seconds=1.5,
    )  # fmt: skip
    chapters = _ffprobe(info.path)["chapters"]
    assert [c["tags"]["title"] for c in chapters] == [
        "Short", "Chapter 1 — The salt road", "Credits"
    ]  # fmt: skip
    assert float(chapters[-1]["end_time"]) - float(chapters[-1]["start_time"]) == pytest.approx(1.5)
