"""The clip port: still + narration + subtitles + look → one MP4 the platforms accept."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class ClipRequest:
    still: Path
    narration: Path  # WAV
    cues: tuple[Cue, ...]
    seed: int  # picks the pan/zoom path and grain so re-renders are identical
    width: int = 1280
    height: int = 720
    fps: int = 24
    lead_in_s: float = 0.5  # silence before the narration starts
    tail_s: float = 1.0  # picture after it ends
    look: str = "film"  # "clean" | "film" | "vhs"
    music: Path | None = None  # any audio ffmpeg reads; looped or cut to the clip, ducked
    music_gain_db: float = -20.0  # the bed's level under the narration, before ducking


@dataclass(frozen=True)
class ClipInfo:
    path: Path
    duration_s: float
    srt: Path | None = None  # SubRip sidecar with the same cues, when there were any
    poster: Path | None = None  # a JPEG frame from a third of the way in, without subtitles
    size_bytes: int = 0


class ClipAssembler(Protocol):
    def assemble(self, request: ClipRequest, out: Path) -> ClipInfo: ...
