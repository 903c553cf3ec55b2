"""Offline image backend: a seeded retro 1970s sci-fi still drawn with numpy and Pillow."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from generation.files import atomic_output
from generation.image._ground import paint_cave, paint_far, paint_near
from generation.image._paint import PALETTES, Arr, Canvas, resize
from generation.image._props import paint_city, paint_figure, paint_ship, paint_station
from generation.image._sky import paint_nebula, paint_planets, paint_sky, paint_stars, paint_sun
from generation.image.base import ImageRequest
from story_state.errors import GenerationError

MIN_SIDE, MAX_SIDE = 16, 4096

Pixels = np.ndarray[tuple[int, int, int], np.dtype[np.uint8]]
Ground = Literal["mountains", "desert", "ocean"]
Craft = Literal["none", "ship", "station"]

_VOCABULARY = """
ship: ship ships spaceship starship rocket freighter cruiser shuttle
station: station stations orbital satellite outpost wheel
city: city cities colony colonies dome domes tower towers settlement
desert: desert deserts dune dunes salt sand sands flats wasteland
mountains: mountain mountains peak peaks ridge ridges crag crags cliffs
ocean: ocean oceans sea seas water lake shore beach tide waves
cave: cave caves cavern caverns mine mines tunnel tunnels grotto
figure: astronaut explorer figure traveller traveler pilot captain stranger wanderer
"""
_WORDS: dict[str, frozenset[str]] = {
    name.strip(): frozenset(words.split())
    for name, _, words in (line.partition(":") for line in _VOCABULARY.strip().splitlines())
}


@dataclass(frozen=True)
class Scene:
    """What goes into one still, decided from the prompt's words and then the seed."""

    ground: Ground
    craft: Craft
    city: bool
    cave: bool
    figure: bool


def derive_seed(seed: int, prompt: str) -> int:
    """A stable 64-bit seed from the request's seed and prompt (never Python's ``hash``)."""
    digest = hashlib.sha256(f"{seed}\x1f{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def plan_scene(prompt: str, rng: np.random.Generator) -> Scene:
    """Keywords in the prompt choose the scene; whatever they leave open, the seed picks."""
    words = set(re.findall(r"[a-z]+", prompt.lower()))
    hit = {name for name, vocab in _WORDS.items() if words & vocab}
    rolls = rng.random(6)
    grounds: tuple[Ground, ...] = ("mountains", "desert", "ocean")
    ground: Ground = grounds[int(np.searchsorted([0.45, 0.72], rolls[0]))]
    for name in grounds:
        ground = name if name in hit else ground
    craft: Craft = "ship" if rolls[1] < 0.3 else "station" if rolls[1] < 0.5 else "none"
    craft = "ship" if "ship" in hit else "station" if "station" in hit else craft
    return Scene(
        ground=ground,
        craft=craft,
        city="city" in hit or bool(rolls[2] < 0.3),
        cave="cave" in hit or (not hit and bool(rolls[3] < 0.12)),
        figure="figure" in hit or bool(rolls[4] < 0.45),
    )


class ProceduralRenderer:
    """Paints a deterministic still from the request: same request, same bytes."""

    def __init__(self, compress_level: int = 1) -> None:
        self.compress_level = compress_level

    def render(self, request: ImageRequest, out: Path) -> Path:
        for side, name in ((request.width, "width"), (request.height, "height")):
            if not MIN_SIDE <= side <= MAX_SIDE:
                raise GenerationError(
                    f"procedural image {name} must be {MIN_SIDE}..{MAX_SIDE} px, got {side}"
                )
        pixels = paint(request)
        with atomic_output(out) as tmp:
            Image.fromarray(pixels).save(tmp, format="PNG", compress_level=self.compress_level)
        return out


def paint(request: ImageRequest) -> Pixels:
    """The whole picture as 8-bit RGB rows."""
    rng = np.random.default_rng(derive_seed(request.seed, request.prompt))
    scene = plan_scene(request.prompt, rng)
    h, w = request.height, request.width
    pal = PALETTES[int(rng.integers(len(PALETTES)))]
    horizon = h * float(rng.uniform(0.55, 0.68))
    sun_visible = bool(rng.random() < 0.6)
    sun_y = horizon * float(rng.uniform(0.55, 0.92)) if sun_visible else -0.3 * h
    sun = (w * float(rng.uniform(0.1, 0.9)), sun_y)
    img = np.zeros((h, w, 3), dtype=np.float32)
    c = Canvas(img, rng, pal, horizon, sun, sun_visible)
    paint_sky(c)
    paint_nebula(c)
    paint_stars(c)
    paint_sun(c)
    paint_planets(c)
    if scene.craft == "ship":
        paint_ship(c)
    elif scene.craft == "station":
        paint_station(c)
    paint_far(c, scene.ground)
    if scene.city:
        lift = 0.0 if scene.ground == "ocean" else c.uniform(0.02, 0.1)
        paint_city(c, horizon + h * lift)
    profile = paint_near(c, scene.ground, footing=scene.figure)
    if scene.cave:
        profile = paint_cave(c)
    if scene.figure:
        paint_figure(c, profile)
    grain = 0.035 if "grain" in request.style.lower() else 0.022
    return _film(c.img, rng, grain)


def _film(img: Arr, rng: np.random.Generator, grain: float) -> Pixels:
    """Bloom, a warm faded grade, a soft vignette and fine grain; the clip stage adds more."""
    h, w, _ = img.shape
    glow = np.maximum(img.max(axis=2) - 0.7, 0.0)
    glow = resize(resize(glow, max(2, w // 16), max(2, h // 16)), w, h)
    img += glow[..., None] * np.array([0.25, 0.22, 0.18], dtype=np.float32)
    np.clip(img, 0.0, 1.0, out=img)
    curve = img * img
    curve *= 3.0 - 2.0 * img
    curve -= img
    curve *= 0.35
    img += curve
    img *= np.array([1.05, 1.0, 0.9], dtype=np.float32)
    img += np.array([0.035, 0.025, 0.03], dtype=np.float32)
    ys = (np.arange(h, dtype=np.float32)[:, None] + 0.5) / h - 0.5
    xs = (np.arange(w, dtype=np.float32)[None, :] + 0.5) / w - 0.5
    img *= (1.0 - 0.5 * np.clip((xs * xs + ys * ys) * 2.0, 0.0, 1.0) ** 1.4)[..., None]
    noise = rng.standard_normal((h, w), dtype=np.float32)
    noise *= grain
    img += noise[..., None]
    np.clip(img, 0.0, 1.0, out=img)
    img *= 255.0
    img += 0.5
    return img.astype(np.uint8)
