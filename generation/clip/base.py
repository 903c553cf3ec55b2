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


@dataclass(frozen=True)
class ClipInfo:
    path: Path
    duration_s: float


class ClipAssembler(Protocol):
    def assemble(self, request: ClipRequest, out: Path) -> ClipInfo: ...
