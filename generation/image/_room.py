"""A one-point-perspective room for the interiors: panelled shell, light strips, box props.

Room space: X right and Y down from the eye, in pixels at the picture plane, and depth ``d``
(0 at the frame, growing away); a point lands on screen at the vanishing point plus
``(X, Y) / (1 + d)``. The frame's edges are the walls, floor and ceiling at depth 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from generation.image._paint import (
    RGB,
    Arr,
    Canvas,
    Point,
    Shape,
    col,
    ellipse,
    f32,
    fractal2d,
    mix,
    over,
    raster,
    resize,
    scale,
    smoothstep,
)
from generation.image._sky import paint_body, paint_stars


@dataclass(frozen=True)
class Finish:
    """How the shell is surfaced: colours, panel rhythm and lights."""

    wall: RGB
    floor: RGB
    ceiling: RGB
    back: RGB
    light: RGB
    haze: RGB
    ribs: float = 1.2  # panel seams per unit of depth
    rib_width: float = 0.08  # fraction of a panel
    strip: float = 0.12  # half-width of the ceiling light strip (0: none)
    wall_lights: bool = False
    fog: float = 0.18


@dataclass(frozen=True)
class Room:
    c: Canvas
    vx: float
    vy: float
    back: float  # the back wall's scale, 0..1
    chamfer: float = 0.0  # 0: a box; up to ~0.7: corners cut off, an octagonal tube

    @property
    def deep(self) -> float:
        return 1.0 / self.back - 1.0

    @property
    def left(self) -> float:
        return -self.vx

    @property
    def right(self) -> float:
        return self.c.w - self.vx

    @property
    def top(self) -> float:
        return -self.vy

    @property
    def floor(self) -> float:
        return self.c.h - self.vy

    def at(self, x: float, y: float, d: float) -> Point:
        f = 1.0 / (1.0 + max(d, -0.5))
        return (self.vx + x * f, self.vy + y * f)

    def front(self, x0: float, y0: float, x1: float, y1: float, d: float) -> list[Point]:
        """A rectangle facing the camera at depth ``d``."""
        return [self.at(x0, y0, d), self.at(x1, y0, d), self.at(x1, y1, d), self.at(x0, y1, d)]

    def side(self, x: float, y0: float, y1: float, d0: float, d1: float) -> list[Point]:
        """A rectangle in a plane of constant X (like a wall), from depth d0 to d1."""
        return [self.at(x, y0, d0), self.at(x, y0, d1), self.at(x, y1, d1), self.at(x, y1, d0)]

    def flat(self, y: float, x0: float, x1: float, d0: float, d1: float) -> list[Point]:
        """A rectangle in a plane of constant Y (like the floor), from depth d0 to d1."""
        return [self.at(x0, y, d0), self.at(x1, y, d0), self.at(x1, y, d1), self.at(x0, y, d1)]

    def prism(self, x0: float, x1: float, y0: float, y1: float, d0: float, d1: float,
              rgb: RGB) -> list[Shape]:  # fmt: skip
        """A box: the faces the eye can see, shaded (top lit, sides dimmer, front plain)."""
        shapes: list[Shape] = []
        if y0 > 0:
            shapes.append((self.flat(y0, x0, x1, d0, d1), mix(rgb, (1.0, 1.0, 1.0), 0.15)))
        if y1 < 0:
            shapes.append((self.flat(y1, x0, x1, d0, d1), scale(rgb, 0.5)))
        if x1 < 0:
            shapes.append((self.side(x1, y0, y1, d0, d1), scale(rgb, 0.7)))
        if x0 > 0:
            shapes.append((self.side(x0, y0, y1, d0, d1), scale(rgb, 0.7)))
        shapes.append((self.front(x0, y0, x1, y1, d0), rgb))
        return shapes


def _lines(t: Arr, per_px: Arr, width: float) -> Arr:
    """Anti-aliased lines at whole values of ``t``, fading out where they crowd together."""
    dist = np.abs(t - np.round(t))
    line = 1.0 - smoothstep(width, width + per_px + 1e-6, dist)
    return f32(line * (1.0 - smoothstep(0.12, 0.35, per_px)))


def paint_shell(room: Room, fin: Finish) -> Arr:
    """Walls, floor, ceiling and back wall with seams, light strips and depth haze.

    Everything is worked out as single-channel fields first and turned into colour once:
    surface colour times shading, plus lamp colour times emission, blended into haze.
    Returns each pixel's depth (the back wall's for the back wall).
    """
    c = room.c
    dx, dy = c.xs - room.vx, c.ys - room.vy
    ex = np.where(dx >= 0, max(room.right, 1.0), max(-room.left, 1.0)).astype(np.float32)
    ey = np.where(dy >= 0, max(room.floor, 1.0), max(-room.top, 1.0)).astype(np.float32)
    rx, ry = np.abs(dx) / ex, np.abs(dy) / ey
    oct_ = (rx + ry) * (0.5 / (1.0 - 0.5 * room.chamfer))
    r = f32(np.maximum(np.maximum(rx, ry), oct_))
    open_ = r > room.back  # not the back wall
    rr = np.maximum(r, room.back)
    d = f32(1.0 / rr - 1.0)
    is_wall = (rx >= ry) & (rx >= oct_)
    below = dy >= 0
    u, v = f32(dx / (rr * ex)), f32(dy / (rr * ey))  # -1..1 across each surface
    # Surface index: 0 ceiling, 1 floor, 2 wall, 3 chamfer above, 4 chamfer below, 5 back.
    idx = below.astype(np.uint8) + np.uint8(2) * is_wall
    idx = np.where((oct_ > rx) & (oct_ > ry), idx + np.uint8(3), idx)
    idx = np.where(open_, idx, np.uint8(5))
    wall, floor, ceiling = col(fin.wall), col(fin.floor), col(fin.ceiling)
    table = np.stack([ceiling, floor, wall, (ceiling + wall) / 2, (floor + wall) / 2,
                      col(fin.back)])  # fmt: skip
    per_px = f32(fin.ribs / (rr * rr * np.maximum(ex, ey)))
    seams = _lines(d * fin.ribs, per_px, fin.rib_width * 0.5)
    across = f32(np.where(is_wall, v * 2.0, u * 3.0))
    seams = np.maximum(seams, _lines(across, f32(2.0 / (rr * ey)), 0.02) * 0.6) * open_
    near = np.exp(-d * 0.35)
    shade = (1.0 - 0.55 * seams) * (0.45 + 0.6 * near)
    emit = np.zeros_like(d)
    if fin.strip > 0:
        panel = smoothstep(0.15, 0.25, np.abs(d * fin.ribs - np.round(d * fin.ribs)))
        band = 1.0 - smoothstep(fin.strip * 0.8, fin.strip, np.abs(u))
        glow = 1.0 - smoothstep(0.0, fin.strip * 3.0, np.abs(u))
        emit += np.where(below, 0.22 * glow * near, 1.1 * band * panel * open_) * ~is_wall
    if fin.wall_lights:
        band = (1.0 - smoothstep(0.03, 0.06, np.abs(v + 0.55))) * is_wall * open_
        emit += 0.5 * band * np.exp(-d * 0.15)
    clear = np.exp(-d * fin.fog)
    img = table[idx]
    img *= (shade * clear)[..., None]
    img += col(fin.light) * (emit * clear)[..., None]
    img += col(fin.haze) * (1.0 - clear)[..., None]
    c.img[:] = img
    return d


def wash(c: Canvas, x: float, y: float, radius: float, rgb: RGB, strength: float) -> None:
    """A broad pool of light over the whole frame (lamps, the glow of a reactor)."""
    d2 = ((c.xs - x) ** 2 + (c.ys - y) ** 2) / max(radius, 1.0) ** 2
    c.img += col(rgb) * (strength / (1.0 + d2))[..., None]


def capsule(cx: float, cy: float, hw: float, hh: float, n: int = 12) -> list[Point]:
    """An upright stadium (a pod, a tank) centred on (cx, cy), half-width and half-height."""
    r = min(hw, hh)
    top = ellipse(cx, cy - hh + r, hw, r, math.pi, 2 * math.pi, n)
    bottom = ellipse(cx, cy + hh - r, hw, r, 0.0, math.pi, n)
    return top + bottom


def space_window(c: Canvas, poly: list[Point], planet: bool) -> None:
    """Deep space seen through ``poly``: a dark gradient, stars, sometimes a planet."""
    hit = raster(c, [(poly, (1.0, 1.0, 1.0))], ss=2)
    if hit is None:
        return
    x0, y0, rgba = hit
    hh, ww = rgba.shape[:2]
    sub = Canvas(np.zeros((hh, ww, 3), np.float32), c.rng, c.pal, hh * 1.8, (ww * 0.5, -hh),
                 False)  # fmt: skip
    t = (sub.ys / max(hh, 1))[..., None]
    top, bottom = col(c.pal.zenith), col(mix(c.pal.zenith, c.pal.sky, 0.7))
    sub.img[:] = top + (bottom - top) * t
    paint_stars(sub)
    if planet:
        r = sub.unit * sub.uniform(0.35, 0.7)
        sub.sun = (sub.uniform(-ww, 2 * ww), -hh * 0.5)
        paint_body(sub, sub.uniform(0.2, 0.8) * ww, hh + r * sub.uniform(0.1, 0.6), r,
                   c.pal.planet[0], c.pal.planet[1], "banded")  # fmt: skip
    over(c.img[y0 : y0 + hh, x0 : x0 + ww], sub.img, rgba[..., 3])


def mist(c: Canvas, top: float, rgb: RGB, strength: float) -> None:
    """Low drifting vapour (cryo frost, steam) thickening towards the bottom of the frame."""
    sh, sw = max(4, c.h // 6), max(4, c.w // 6)
    n = resize(fractal2d(c.rng, sh, sw, 3, 3), c.w, c.h)
    rise = smoothstep(top, float(c.h), c.ys)
    c.img += col(rgb) * (smoothstep(0.35, 0.9, n) * rise * strength)[..., None]
