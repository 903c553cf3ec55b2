"""One episode's media from its stored script: still → narration → subtitled clip."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from generation.clip.base import ClipAssembler, ClipRequest
from generation.clip.subtitles import split_lines, time_cues
from generation.image.base import ImageRenderer, ImageRequest
from generation.voice.base import Voice
from generation.writer.base import Writer


@dataclass(frozen=True)
class Generators:
    writer: Writer
    image: ImageRenderer
    voice: Voice
    clip: ClipAssembler


@dataclass(frozen=True)
class RenderJob:
    narration: str
    subtitles: tuple[str, ...]
    image_prompt: str
    style: str
    seed: int
    width: int = 1280
    height: int = 720
    fps: int = 24
    look: str = "film"
    music: Path | None = None  # an optional music bed under the narration
    music_gain_db: float = -20.0


@dataclass(frozen=True)
class RenderResult:
    still: Path
    audio: Path
    video: Path
    duration_s: float
    srt: Path | None = None
    poster: Path | None = None
    size_bytes: int = 0


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from any parts (never Python's salted ``hash``)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _no_checkpoint(name: str) -> None:
    """The default checkpoint: rendering does not stop to report where it is."""


def render_episode(
    generators: Generators,
    job: RenderJob,
    out_dir: Path,
    checkpoint: Callable[[str], None] = _no_checkpoint,
) -> RenderResult:
    """Render into ``out_dir``; every file is written atomically, so a rerun is safe.

    ``checkpoint(name)`` is called at named points (``"mid_render"``: the still and the voice
    written, the clip not yet); the bot passes its failpoints there, so crash tests can stop a
    render half-way without this layer knowing about them.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    still = generators.image.render(
        ImageRequest(
            prompt=job.image_prompt,
            seed=job.seed,
            width=job.width,
            height=job.height,
            style=job.style,
        ),
        out_dir / "still.png",
    )
    speech = generators.voice.synthesize(job.narration, out_dir / "narration.wav")
    checkpoint("mid_render")  # still and voice written, the clip not yet
    lines = job.subtitles or split_lines(job.narration)
    # Short lead-in and tail keep the clip within a second of its narration.
    lead_in, tail = 0.25, 0.5
    clip = generators.clip.assemble(
        ClipRequest(
            still=still,
            narration=speech.path,
            cues=time_cues(lines, speech.duration_s, lead_in),
            seed=job.seed,
            width=job.width,
            height=job.height,
            fps=job.fps,
            lead_in_s=lead_in,
            tail_s=tail,
            look=job.look,
            music=job.music,
            music_gain_db=job.music_gain_db,
        ),
        out_dir / "clip.mp4",
    )
    return RenderResult(
        still, speech.path, clip.path, clip.duration_s, clip.srt, clip.poster, clip.size_bytes
    )
