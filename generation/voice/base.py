"""The voice port: narration text to a WAV file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Speech:
    path: Path
    duration_s: float


class Voice(Protocol):
    def synthesize(self, text: str, out: Path) -> Speech:
        """Write a mono WAV of ``text`` to ``out``."""
        ...
