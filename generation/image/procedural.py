"""Offline image backend: a seeded retro 1970s sci-fi still drawn with numpy and Pillow."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from generation.files import atomic_output
from generation.image._bays import paint_cryo, paint_engine, paint_lab
from generation.image._decks import Lit, paint_airlock, paint_bridge, paint_corridor
from generation.image._exteriors import (
    paint_base,
    paint_ice,
    paint_space,
    paint_storm,
    paint_viewport,
    paint_wreck,
)
from generation.image._figures import paint_cast
from generation.image._ground import paint_cave, paint_far, paint_near
from generation.image._paint import PALETTES, RGB, Arr, Canvas, Palette, mix, resize
from generation.image._props import paint_city, paint_figure, paint_ship, paint_station
from generation.image._scenes import INTERIORS, KINDS, SPACE, Scene, SceneKind, plan_scene
from generation.image._sky import paint_nebula, paint_planets, paint_sky, paint_stars, paint_sun
from generation.image.base import ImageRequest
from story_state.errors import GenerationError

__all__ = ["KINDS", "ProceduralRenderer", "Scene", "derive_seed", "layout", "paint", "plan_scene"]

MIN_SIDE, MAX_SIDE = 16, 4096

Pixels = np.ndarray[tuple[int, int, int], np.dtype[np.uint8]]
_ROOMS: dict[str, Callable[[Canvas, RGB | None], Lit]] = {
    "cryo": paint_cryo, "corridor": paint_corridor, "airlock": paint_airlock,
    "bridge": paint_bridge, "engine": paint_engine, "lab": paint_lab,
}  # fmt: skip
_OUTDOORS: dict[str, Callable[[Canvas], None]] = {
    "wreck": paint_wreck, "storm": paint_storm, "base": paint_base, "ice": paint_ice,
}  # fmt: skip
_ICY = ("ice-violet", "magenta-indigo")


def derive_seed(seed: int, prompt: str) -> int:
    """A stable 64-bit seed from the request's seed and prompt (never Python's ``hash``)."""
    digest = hashlib.sha256(f"{seed}\x1f{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def layout(request: ImageRequest) -> Scene:
    """The scene ``paint`` will draw for this request (the same first draws of the same rng)."""
    rng = np.random.default_rng(derive_seed(request.seed, request.prompt))
    return plan_scene(request.prompt, rng)


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
    pal = _palette(scene.kind, rng)
    horizon = h * float(rng.uniform(0.55, 0.68))
    sun_visible = bool(rng.random() < 0.6)
    sun_y = horizon * float(rng.uniform(0.55, 0.92)) if sun_visible else -0.3 * h
    sun = (w * float(rng.uniform(0.1, 0.9)), sun_y)
    img = np.zeros((h, w, 3), dtype=np.float32)
    c = Canvas(img, rng, pal, horizon, sun, sun_visible)
    if scene.kind in INTERIORS:
        light_x, light = _ROOMS[scene.kind](c, scene.light)
    else:
        _outdoors(c, scene)
        light_x, light = c.sun[0], mix(pal.sun, pal.horizon, 0.3)
    paint_cast(c, scene.cast, light_x, light)
    if scene.cast and scene.kind in SPACE:
        paint_viewport(c)
    grain = 0.035 if "grain" in request.style.lower() else 0.022
    return _film(c.img, rng, grain)


def _palette(kind: SceneKind, rng: np.random.Generator) -> Palette:
    pool = [p for p in PALETTES if p.name in _ICY] if kind == "ice" else list(PALETTES)
    return pool[int(rng.integers(len(pool)))]


def _outdoors(c: Canvas, scene: Scene) -> None:
    """Sky, then what stands in it, then the ground, nearest last."""
    if scene.kind in SPACE:
        c.horizon, c.sun_visible = float(c.h), False
        paint_space(c, scene.kind)
        return
    kind = scene.kind
    if kind == "ice":
        c.horizon = c.h * c.uniform(0.5, 0.6)
    paint_sky(c)
    paint_nebula(c)
    paint_stars(c)
    paint_sun(c)
    paint_planets(c)
    if scene.craft == "ship" and kind != "wreck":
        paint_ship(c)
    elif scene.craft == "station":
        paint_station(c)
    if kind in _OUTDOORS:
        _OUTDOORS[kind](c)
    else:
        ground = kind if kind in ("desert", "mountains", "ocean") else "desert"
        ground = "mountains" if kind == "cave" else ground
        paint_far(c, ground)
        if kind == "city" or (scene.city and kind != "cave"):
            big = kind == "city"
            lift = 0.0 if ground == "ocean" else c.uniform(0.02, 0.1) + (0.12 if big else 0.0)
            paint_city(c, c.horizon + c.h * lift, 1.7 if big else 1.0)
        profile = paint_near(c, ground, footing=scene.figure)
        if kind == "cave":
            profile = paint_cave(c)
        if scene.figure and not scene.cast:
            paint_figure(c, profile)


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
