"""Platform checks on finished clips, with ffprobe and with the ffmpeg-only fallback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest

from generation.clip.probe import mp4_boxes, probe_clip, validate_clip
from story_state.errors import GenerationError

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
TOOLS = ["ffprobe", "ffmpeg"]  # both are required: `make test` installs ffprobe (ffmpeg)


def _make(out: Path, *args: str, audio: bool = True, seconds: float = 1.0) -> Path:
    """A tiny test-pattern clip; ``args`` are the output options."""
    inputs = ["-f", "lavfi", "-i", f"testsrc=size=320x180:rate=24:duration={seconds}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    cmd = [FFMPEG, "-v", "error", "-y", *inputs, *args, str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("good") / "good.mp4"
    return _make(
        out, "-c:v", "libx264", "-profile:v", "high", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-movflags", "+faststart",
    )  # fmt: skip


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4:4:4 chroma, MP3 audio, and the index at the end (no faststart)."""
    out = tmp_path_factory.mktemp("bad") / "bad.mp4"
    return _make(out, "-c:v", "libx264", "-pix_fmt", "yuv444p", "-c:a", "libmp3lame")


@pytest.mark.parametrize("tool", TOOLS)
def test_a_platform_safe_clip_passes(good: Path, tool: str) -> None:
    probe = validate_clip(good, use=tool)  # type: ignore[arg-type]
    assert probe.tool == tool
    assert (probe.video_codec, probe.video_profile, probe.pix_fmt) == ("h264", "High", "yuv420p")
    assert (probe.audio_codec, probe.audio_profile) == ("aac", "LC")
    assert (probe.width, probe.height, probe.fps) == (320, 180, 24.0)
    assert probe.duration_s == pytest.approx(1.0, abs=0.1)
    assert probe.size_bytes == good.stat().st_size
    assert probe.faststart
    assert probe.boxes.index("moov") < probe.boxes.index("mdat")


@pytest.mark.parametrize("tool", TOOLS)
def test_every_violation_is_listed(bad: Path, tool: str) -> None:
    assert probe_clip(bad, use=tool).boxes[-1] == "moov"  # type: ignore[arg-type]
    with pytest.raises(GenerationError) as caught:
        validate_clip(bad, use=tool)  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith("bad.mp4 is not safe to post: ")
    assert "H.264 profile is High 4:4:4 Predictive, not High or Main" in message
    assert "pixel format is yuv444p, not yuv420p" in message
    assert "audio is mp3" in message and "not AAC-LC" in message
    assert "moov comes after mdat" in message
    assert message.count(";") == 3  # exactly those four


@pytest.mark.parametrize("tool", TOOLS)
def test_limits_on_size_length_and_bytes(good: Path, tool: str) -> None:
    with pytest.raises(GenerationError) as caught:
        validate_clip(
            good,
            max_width=160,
            max_height=160,
            max_seconds=0.5,
            max_bytes=100,
            use=tool,  # type: ignore[arg-type]
            name="episode.mp4",
        )
    message = str(caught.value)
    assert message.startswith("episode.mp4 is not safe to post: ")
    assert "frame is 320x180, over 160x160" in message
    assert "over 0.5s" in message
    assert "bytes, over 100" in message
    assert validate_clip(good, max_seconds=None, use=tool).duration_s  # type: ignore[arg-type]


@pytest.mark.parametrize("tool", TOOLS)
def test_a_silent_clip_and_a_non_video_are_refused(tmp_path: Path, tool: str) -> None:
    silent = _make(
        tmp_path / "silent.mp4", "-c:v", "libx264", "-pix_fmt", "yuv420p",
        "-movflags", "+faststart", audio=False,
    )  # fmt: skip
    with pytest.raises(GenerationError, match=r"silent.mp4 is not safe to post: no audio stream$"):
        validate_clip(silent, use=tool)  # type: ignore[arg-type]
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n")
    with pytest.raises(GenerationError, match="not a readable video file"):
        validate_clip(text, use=tool)  # type: ignore[arg-type]
    with pytest.raises(GenerationError, match="no clip to check"):
        validate_clip(tmp_path / "missing.mp4", use=tool)  # type: ignore[arg-type]


def test_box_walk_reads_large_and_open_ended_boxes(tmp_path: Path) -> None:
    def box(kind: bytes, payload: bytes) -> bytes:
        return (8 + len(payload)).to_bytes(4, "big") + kind + payload

    large = (1).to_bytes(4, "big") + b"mdat" + (16 + 5).to_bytes(8, "big") + b"12345"
    open_ended = (0).to_bytes(4, "big") + b"free" + b"rest of the file"
    path = tmp_path / "boxes.mp4"
    path.write_bytes(box(b"ftyp", b"isom") + large + box(b"moov", b"xx") + open_ended)
    assert mp4_boxes(path) == ("ftyp", "mdat", "moov", "free")
    path.write_bytes(box(b"ftyp", b"isom") + (3).to_bytes(4, "big") + b"junk")
    assert mp4_boxes(path) == ("ftyp",)  # a damaged size stops the walk


@pytest.mark.parametrize("tool", TOOLS)
def test_constrained_baseline_from_ultrafast_passes(tmp_path: Path, tool: str) -> None:
    clip = _make(
        tmp_path / "fast.mp4", "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "high",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "+faststart",
    )  # fmt: skip
    probe = validate_clip(clip, use=tool)  # type: ignore[arg-type]
    assert probe.video_profile == "Constrained Baseline"  # a subset of Main and High
