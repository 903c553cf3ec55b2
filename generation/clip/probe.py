"""Checking a finished MP4 against what every platform accepts, before anyone posts it.

ffprobe (Debian's ``/usr/bin/ffprobe``) is preferred; the static ffmpeg from imageio-ffmpeg
ships without one, so ``ffmpeg -i`` output is parsed instead when it is missing. Box order
(``moov`` before ``mdat``, i.e. faststart) is read from the file itself.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from generation.tools import run_tool
from story_state.errors import BackendUnavailable, GenerationError

Tool = Literal["auto", "ffprobe", "ffmpeg"]

PROBE_TIMEOUT_S = 60.0
# Constrained Baseline is a strict subset of both: x264's ultrafast preset makes it.
PROFILES = ("High", "Main", "Constrained Baseline")
_DEBIAN_FFPROBE = Path("/usr/bin/ffprobe")
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_STREAM = re.compile(r"^\s*Stream #\d+:\d+\S*: (Video|Audio): (.*)$")
_SIZE = re.compile(r"^(\d+)x(\d+)")
_FPS = re.compile(r"^(\d+(?:\.\d+)?)(k?) fps$")
_PROFILE = re.compile(r"\(([^()]*)\)")


@dataclass(frozen=True)
class ClipProbe:
    """What a clip holds, as far as the platforms care."""

    path: Path
    size_bytes: int
    duration_s: float | None = None
    video_codec: str | None = None
    video_profile: str | None = None
    pix_fmt: str | None = None
    width: int = 0
    height: int = 0
    fps: float | None = None
    audio_codec: str | None = None
    audio_profile: str | None = None
    boxes: tuple[str, ...] = ()  # top-level MP4 boxes in file order
    tool: str = ""  # "ffprobe" or "ffmpeg": which one read the streams
    readable: bool = True

    @property
    def faststart(self) -> bool:
        """The index (moov) comes before the media (mdat): playback can start at once."""
        return "moov" in self.boxes and (
            "mdat" not in self.boxes or self.boxes.index("moov") < self.boxes.index("mdat")
        )


def find_ffprobe() -> str | None:
    found = shutil.which("ffprobe")
    if found is None and _DEBIAN_FFPROBE.is_file():
        found = str(_DEBIAN_FFPROBE)
    return found


def find_ffmpeg() -> str:
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as exc:
        raise BackendUnavailable(f"no ffmpeg: pip install imageio-ffmpeg ({exc})") from exc


def mp4_boxes(path: Path, limit: int = 64) -> tuple[str, ...]:
    """Top-level ISO-BMFF box types in file order, read from the headers alone."""
    boxes: list[str] = []
    with path.open("rb") as f:
        f.seek(0, 2)
        end = f.tell()
        at = 0
        while at + 8 <= end and len(boxes) < limit:
            f.seek(at)
            head = f.read(16)
            size, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if size == 1 and len(head) == 16:
                size = int.from_bytes(head[8:16], "big")
            elif size == 0:
                size = end - at
            if size < 8 or not kind.isascii():
                break  # not an MP4, or a damaged one: report what was readable
            boxes.append(kind.decode("ascii"))
            at += size
    return tuple(boxes)


def probe_clip(
    path: Path, *, use: Tool = "auto", ffprobe: str | None = None, ffmpeg: str | None = None
) -> ClipProbe:
    """Read a clip's streams with ffprobe (or ``ffmpeg -i`` when there is none)."""
    if not path.is_file():
        raise GenerationError(f"no clip to check at {path}")
    size = path.stat().st_size
    boxes = mp4_boxes(path)
    probe_exe = ffprobe or (find_ffprobe() if use != "ffmpeg" else None)
    if use == "ffprobe" and probe_exe is None:
        raise BackendUnavailable("no ffprobe: apt-get install ffmpeg")
    if probe_exe is not None and use != "ffmpeg":
        facts = _with_ffprobe(probe_exe, path)
        tool = "ffprobe"
    else:
        facts = _with_ffmpeg(ffmpeg or find_ffmpeg(), path)
        tool = "ffmpeg"
    return ClipProbe(path=path, size_bytes=size, boxes=boxes, tool=tool, **facts)


def validate_clip(
    path: Path,
    *,
    max_width: int = 1280,
    max_height: int = 1280,
    max_seconds: float | None = 140.0,
    max_bytes: int | None = None,
    use: Tool = "auto",
    ffprobe: str | None = None,
    ffmpeg: str | None = None,
    name: str | None = None,
) -> ClipProbe:
    """Probe ``path`` and raise :class:`GenerationError` naming every rule it breaks.

    ``name`` is what the message calls the file (a temp file stands in for its final name).
    """
    probe = probe_clip(path, use=use, ffprobe=ffprobe, ffmpeg=ffmpeg)
    problems = violations(
        probe,
        max_width=max_width,
        max_height=max_height,
        max_seconds=max_seconds,
        max_bytes=max_bytes,
    )
    if problems:
        label = name or path.name
        raise GenerationError(f"{label} is not safe to post: " + "; ".join(problems))
    return probe


def violations(
    probe: ClipProbe,
    *,
    max_width: int = 1280,
    max_height: int = 1280,
    max_seconds: float | None = 140.0,
    max_bytes: int | None = None,
) -> list[str]:
    """Every platform rule the probed clip breaks, in words; empty when it is fine."""
    if not probe.readable:
        return ["not a readable video file"]
    found: list[str] = []
    if probe.video_codec is None:
        found.append("no video stream")
    else:
        if probe.video_codec != "h264":
            found.append(f"video codec is {probe.video_codec}, not h264")
        elif probe.video_profile not in PROFILES:
            found.append(f"H.264 profile is {probe.video_profile}, not High or Main")
        if probe.pix_fmt != "yuv420p":
            found.append(f"pixel format is {probe.pix_fmt}, not yuv420p")
        if probe.width > max_width or probe.height > max_height:
            found.append(f"frame is {probe.width}x{probe.height}, over {max_width}x{max_height}")
        if probe.width % 2 or probe.height % 2 or probe.width <= 0 or probe.height <= 0:
            found.append(f"frame size {probe.width}x{probe.height} is not even")
    if probe.audio_codec is None:
        found.append("no audio stream")
    elif probe.audio_codec != "aac" or probe.audio_profile != "LC":
        found.append(f"audio is {probe.audio_codec} ({probe.audio_profile}), not AAC-LC")
    if probe.duration_s is None:
        found.append("duration unknown")
    elif max_seconds is not None and probe.duration_s > max_seconds:
        found.append(f"runs {probe.duration_s:.2f}s, over {max_seconds:g}s")
    if max_bytes is not None and probe.size_bytes > max_bytes:
        found.append(f"{probe.size_bytes} bytes, over {max_bytes}")
    if "moov" not in probe.boxes:
        found.append("no moov box: not an MP4 file")
    elif not probe.faststart:
        found.append("moov comes after mdat (no faststart): playback waits for the download")
    return found


def _run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    return run_tool(args, what=Path(args[0]).name, timeout_s=PROBE_TIMEOUT_S, check=False)


def _with_ffprobe(exe: str, path: Path) -> dict[str, Any]:
    args = [exe, "-v", "error", "-print_format", "json", "-show_streams", "-show_format"]
    proc = _run([*args, f"file:{path}"])
    try:
        data = json.loads(proc.stdout or b"{}")
    except json.JSONDecodeError:
        data = {}
    streams = [s for s in data.get("streams", []) if isinstance(s, dict)]
    if proc.returncode != 0 or not streams:
        return {"readable": False}
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
        ),
        None,
    )
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    facts: dict[str, Any] = {"duration_s": _float(data.get("format", {}).get("duration"))}
    if video is not None:
        rate = str(video.get("avg_frame_rate") or video.get("r_frame_rate") or "0/0")
        facts |= {
            "video_codec": video.get("codec_name"),
            "video_profile": video.get("profile"),
            "pix_fmt": video.get("pix_fmt"),
            "width": int(video.get("width", 0)),
            "height": int(video.get("height", 0)),
            "fps": _rate(rate),
        }
    if audio is not None:
        facts |= {"audio_codec": audio.get("codec_name"), "audio_profile": audio.get("profile")}
    return facts


def _with_ffmpeg(exe: str, path: Path) -> dict[str, Any]:
    """Parse the stream summary ``ffmpeg -i`` prints (it exits 1: no output was named)."""
    proc = _run([exe, "-hide_banner", "-nostdin", "-i", f"file:{path}"])
    text = proc.stderr.decode("utf-8", "replace")
    if "Input #0" not in text:
        return {"readable": False}
    match = _DURATION.search(text)
    facts: dict[str, Any] = {
        "duration_s": (
            int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3]) if match else None
        )
    }
    for line in text.splitlines():
        stream = _STREAM.match(line)
        if stream is None:
            continue
        kind, fields = stream[1], _split_fields(stream[2])
        codec, profile = _codec(fields[0])
        if kind == "Video" and "video_codec" not in facts and "attached pic" not in line:
            facts |= {"video_codec": codec, "video_profile": profile}
            if len(fields) > 1:
                facts["pix_fmt"] = re.match(r"[a-z0-9_]*", fields[1])[0]  # type: ignore[index]
            for field in fields[1:]:
                if size := _SIZE.match(field):
                    facts["width"], facts["height"] = int(size[1]), int(size[2])
                if fps := _FPS.match(field):
                    facts["fps"] = float(fps[1]) * (1000 if fps[2] else 1)
        elif kind == "Audio" and "audio_codec" not in facts:
            facts |= {"audio_codec": codec, "audio_profile": profile}
    return facts


def _split_fields(text: str) -> list[str]:
    """Split on commas outside parentheses: ``yuv420p(tv, bt709)`` stays one field."""
    fields, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            fields.append(text[start:i].strip())
            start = i + 1
    fields.append(text[start:].strip())
    return fields


def _codec(field: str) -> tuple[str, str | None]:
    """``h264 (High) (avc1 / 0x31637661)`` → ("h264", "High"); the tag group is not a profile."""
    name = field.split(" ", 1)[0]
    groups = [g for g in _PROFILE.findall(field) if " / 0x" not in g and "[" not in g]
    return name, groups[0] if groups else None


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _rate(value: str) -> float | None:
    try:
        rate = Fraction(value)
    except (ValueError, ZeroDivisionError):
        return None
    return float(rate) if rate > 0 else None
