"""Drawing toolkit for the procedural renderer: canvas, palettes, noise and compositing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

Arr = NDArray[np.float32]
AnyFloat = NDArray[np.floating[Any]]  # numpy's stubs widen float32 arithmetic to float64
RGB = tuple[float, float, float]
Point = tuple[float, float]
Shape = tuple[Sequence[Point], RGB]


@dataclass(frozen=True)
class Palette:
    """One retro colour scheme, named after its sky."""

    name: str
    zenith: RGB
    sky: RGB
    horizon: RGB
    sun: RGB
    ground: RGB
    planet: tuple[RGB, RGB]
    lights: RGB
    hull: RGB
    stripe: RGB


PALETTES: tuple[Palette, ...] = (
    Palette("teal-orange", (0.02, 0.10, 0.14), (0.07, 0.34, 0.38), (0.98, 0.58, 0.28),
            (1.0, 0.86, 0.6), (0.16, 0.08, 0.06), ((0.95, 0.84, 0.66), (0.78, 0.45, 0.25)),
            (1.0, 0.74, 0.35), (0.78, 0.76, 0.7), (0.92, 0.42, 0.12)),
    Palette("magenta-indigo", (0.04, 0.02, 0.14), (0.22, 0.08, 0.36), (0.95, 0.38, 0.55),
            (1.0, 0.8, 0.8), (0.12, 0.04, 0.14), ((0.45, 0.85, 0.85), (0.2, 0.45, 0.62)),
            (0.55, 0.95, 1.0), (0.72, 0.7, 0.8), (0.95, 0.82, 0.25)),
    Palette("amber-brown", (0.12, 0.05, 0.03), (0.42, 0.2, 0.08), (1.0, 0.74, 0.34),
            (1.0, 0.93, 0.7), (0.1, 0.05, 0.03), ((0.96, 0.9, 0.72), (0.7, 0.5, 0.3)),
            (1.0, 0.85, 0.45), (0.8, 0.74, 0.62), (0.2, 0.55, 0.55)),
    Palette("ice-violet", (0.02, 0.03, 0.12), (0.14, 0.22, 0.45), (0.72, 0.78, 0.92),
            (0.95, 0.97, 1.0), (0.06, 0.07, 0.14), ((0.95, 0.6, 0.5), (0.6, 0.3, 0.35)),
            (1.0, 0.65, 0.35), (0.75, 0.78, 0.85), (0.85, 0.2, 0.2)),
    Palette("acid-olive", (0.02, 0.07, 0.05), (0.12, 0.3, 0.2), (0.85, 0.9, 0.45),
            (1.0, 1.0, 0.8), (0.05, 0.1, 0.08), ((0.9, 0.5, 0.75), (0.55, 0.25, 0.45)),
            (1.0, 0.9, 0.4), (0.7, 0.75, 0.68), (0.9, 0.55, 0.1)),
    Palette("crimson-rose", (0.1, 0.02, 0.05), (0.45, 0.08, 0.12), (1.0, 0.6, 0.45),
            (1.0, 0.9, 0.75), (0.14, 0.03, 0.04), ((0.7, 0.85, 1.0), (0.35, 0.5, 0.75)),
            (1.0, 0.8, 0.5), (0.8, 0.72, 0.7), (0.15, 0.35, 0.6)),
)  # fmt: skip


@dataclass
class Canvas:
    """The picture being painted, in linear floats, plus what every layer needs to know."""

    img: Arr
    rng: np.random.Generator
    pal: Palette
    horizon: float
    sun: Point
    sun_visible: bool
    xs: Arr = field(init=False)
    ys: Arr = field(init=False)

    def __post_init__(self) -> None:
        self.xs = np.arange(self.w, dtype=np.float32)[None, :] + 0.5
        self.ys = np.arange(self.h, dtype=np.float32)[:, None] + 0.5

    @property
    def h(self) -> int:
        return int(self.img.shape[0])

    @property
    def w(self) -> int:
        return int(self.img.shape[1])

    @property
    def unit(self) -> float:
        return float(min(self.h, self.w))

    def uniform(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)


def col(rgb: RGB) -> Arr:
    return np.asarray(rgb, dtype=np.float32)


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t)


def scale(a: RGB, k: float) -> RGB:
    return (a[0] * k, a[1] * k, a[2] * k)


def f32(a: object) -> Arr:
    """The array as float32, so that numpy's typing and arithmetic stay single precision."""
    return np.asarray(a, dtype=np.float32)


def smoothstep(e0: float | Arr, e1: float | Arr, x: Arr) -> Arr:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return f32(t * t * (3.0 - 2.0 * t))


def over(img: Arr, colour: AnyFloat | RGB, alpha: AnyFloat) -> None:
    """Composite ``colour`` (an RGB or a per-pixel array) onto ``img`` in place."""
    c = col(colour) if isinstance(colour, tuple) else colour
    diff = c - img
    diff *= alpha[..., None]
    img += diff


def resize(a: Arr, w: int, h: int) -> Arr:
    im = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))
    return np.asarray(im.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)


def fractal2d(rng: np.random.Generator, h: int, w: int, cells: int, octaves: int) -> Arr:
    """Fractal value noise in about [0, 1], ``cells`` lattice cells across the short side."""
    total = np.zeros((h, w), dtype=np.float32)
    amp, norm = 1.0, 0.0
    for i in range(octaves):
        n = cells * 2**i
        gh, gw = max(2, round(n * h / min(h, w)) + 1), max(2, round(n * w / min(h, w)) + 1)
        total += amp * resize(rng.random((gh, gw), dtype=np.float32), w, h)
        norm += amp
        amp *= 0.5
    return f32(np.clip(total / norm, 0.0, 1.0))


def line_noise(
    rng: np.random.Generator, n: int, cells: int, octaves: int, ridged: bool = False
) -> Arr:
    """1-D fractal noise of length ``n`` in [0, 1]; ``ridged`` gives sharp peaks."""
    x = np.linspace(0.0, 1.0, n, dtype=np.float32)
    total = np.zeros(n, dtype=np.float32)
    amp, norm = 1.0, 0.0
    for i in range(octaves):
        k = cells * 2**i
        pts = rng.random(k + 2, dtype=np.float32)
        t = x * k
        i0 = np.floor(t).astype(np.intp)
        f = smoothstep(0.0, 1.0, t - i0)
        v = pts[i0] * (1.0 - f) + pts[i0 + 1] * f
        total += amp * (1.0 - np.abs(2.0 * v - 1.0) if ridged else v)
        norm += amp
        amp *= 0.5
    return f32(total / norm)


def lattice(grid: Arr, u: Arr, v: Arr) -> Arr:
    """Sample a wrapping noise grid at arbitrary coordinates, smoothly interpolated."""
    gh, gw = grid.shape
    x0, y0 = np.floor(u), np.floor(v)
    fx, fy = smoothstep(0.0, 1.0, u - x0), smoothstep(0.0, 1.0, v - y0)
    xi, yi = x0.astype(np.intp) % gw, y0.astype(np.intp) % gh
    xj, yj = (xi + 1) % gw, (yi + 1) % gh
    top = grid[yi, xi] * (1.0 - fx) + grid[yi, xj] * fx
    bot = grid[yj, xi] * (1.0 - fx) + grid[yj, xj] * fx
    return f32(top * (1.0 - fy) + bot * fy)


def cell_edges(jitter: Arr, u: Arr, v: Arr) -> Arr:
    """Distance to the nearest Voronoi cell border (F2 - F1) on a wrapping jittered grid."""
    gh, gw, _ = jitter.shape
    fu, fv = np.floor(u), np.floor(v)
    iu, iv = fu.astype(np.intp), fv.astype(np.intp)
    fu, fv = u - fu, v - fv
    f1 = np.full(u.shape, np.inf, dtype=np.float32)
    f2 = f1.copy()
    for oy in (-1, 0, 1):
        for ox in (-1, 0, 1):
            jit = jitter[(iv + oy) % gh, (iu + ox) % gw]
            d = (fu - ox - jit[..., 0]) ** 2 + (fv - oy - jit[..., 1]) ** 2
            f2 = np.minimum(f2, np.maximum(f1, d))
            f1 = np.minimum(f1, d)
    return np.sqrt(f2) - np.sqrt(f1)


def ellipse(cx: float, cy: float, rx: float, ry: float, a0: float = 0.0, a1: float = 6.2832,
            n: int = 32) -> list[Point]:  # fmt: skip
    t = np.linspace(a0, a1, n)
    return [(cx + rx * float(np.cos(a)), cy + ry * float(np.sin(a))) for a in t]


def box(x0: float, y0: float, x1: float, y1: float) -> list[Point]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def raster(c: Canvas, shapes: Sequence[Shape], ss: int = 3) -> tuple[int, int, Arr] | None:
    """Filled polygons drawn in order, supersampled: (left, top, RGBA floats) over their bounds."""
    pts = [p for poly, _ in shapes for p in poly]
    if not pts:
        return None
    x0 = max(0, int(min(p[0] for p in pts)) - 2)
    y0 = max(0, int(min(p[1] for p in pts)) - 2)
    x1 = min(c.w, int(max(p[0] for p in pts)) + 3)
    y1 = min(c.h, int(max(p[1] for p in pts)) + 3)
    if x1 <= x0 or y1 <= y0:
        return None
    layer = Image.new("RGBA", ((x1 - x0) * ss, (y1 - y0) * ss), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for poly, rgb in shapes:
        fill = (*(int(np.clip(v, 0.0, 1.0) * 255 + 0.5) for v in rgb), 255)
        draw.polygon([((x - x0) * ss, (y - y0) * ss) for x, y in poly], fill=fill)
    small = layer.resize((x1 - x0, y1 - y0), Image.Resampling.BOX)
    return x0, y0, np.asarray(small, dtype=np.float32) / 255.0


def paint_shapes(c: Canvas, shapes: Sequence[Shape], opacity: float = 1.0, ss: int = 3) -> None:
    """Draw filled polygons in order, supersampled for clean edges, only over their bounds."""
    hit = raster(c, shapes, ss)
    if hit is None:
        return
    x0, y0, rgba = hit
    y1, x1 = y0 + rgba.shape[0], x0 + rgba.shape[1]
    over(c.img[y0:y1, x0:x1], rgba[..., :3], rgba[..., 3] * opacity)
