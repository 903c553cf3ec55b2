"""The image port: one still per episode from a prompt and a seed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ImageRequest:
    prompt: str
    seed: int
    width: int = 1280
    height: int = 720
    style: str = ""  # story-wide style prefix ("35mm film still, grainy, 1970s sci-fi")


class ImageRenderer(Protocol):
    def render(self, request: ImageRequest, out: Path) -> Path:
        """Write a PNG to ``out`` and return it. Same request → same picture."""
        ...
