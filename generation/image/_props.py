"""Scene props for the procedural renderer: a ship, a ring station, a domed city, a figure."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from generation.image._paint import (
    RGB,
    Arr,
    Canvas,
    Point,
    Shape,
    box,
    col,
    ellipse,
    mix,
    paint_shapes,
    scale,
)
from generation.image._sky import paint_body


def place(
    pts: Sequence[Point], cx: float, cy: float, sx: float, sy: float, ang: float
) -> list[Point]:
    ca, sa = math.cos(ang), math.sin(ang)
    return [(cx + x * sx * ca - y * sy * sa, cy + x * sx * sa + y * sy * ca) for x, y in pts]


def glow(c: Canvas, x: float, y: float, radius: float, rgb: RGB, strength: float) -> None:
    """Additive soft light around a point, computed only near it."""
    ext = radius * 3 + 2
    x0, x1 = max(0, int(x - ext)), min(c.w, int(x + ext) + 1)
    y0, y1 = max(0, int(y - ext)), min(c.h, int(y + ext) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    d2 = ((c.xs[:, x0:x1] - x) ** 2 + (c.ys[y0:y1] - y) ** 2) / max(radius, 0.5) ** 2
    c.img[y0:y1, x0:x1] += col(rgb) * (strength * np.exp(-d2))[..., None]


def hull_parts(c: Canvas, lit: RGB, shade: RGB, dark: RGB, stripe: RGB) -> list[Shape]:
    """Ship parts in hull units: x from tail -0.5 to nose 0.5, y across, up negative."""
    parts: list[Shape] = [(box(-0.5, -0.62, -0.36, 0.62), shade)]
    for y in np.linspace(-0.35, 0.35, int(c.rng.integers(2, 4))):
        parts.append(
            ([(-0.5, y - 0.12), (-0.5, y + 0.12), (-0.57, y + 0.2), (-0.57, y - 0.2)], dark)
        )
    cuts = np.sort(c.rng.uniform(-0.3, 0.25, int(c.rng.integers(3, 6))))
    edges = [-0.36, *(float(k) for k in cuts), 0.36]
    painted = int(c.rng.integers(0, len(edges) - 1))
    for i, (x0, x1) in enumerate(itertools.pairwise(edges)):
        hh = c.uniform(0.34, 0.5)
        top = stripe if i == painted else mix(lit, shade, c.uniform(0.0, 0.25))
        parts.append((box(x0, -hh, x1, 0.0), top))
        parts.append((box(x0, 0.0, x1, hh), scale(top, 0.45)))
        parts.append((box(x0, -hh, x0 + 0.004, hh), dark))
        if c.chance(0.5):
            for wx in np.arange(x0 + 0.015, x1 - 0.015, 0.022):
                parts.append((box(float(wx), -0.2, float(wx) + 0.008, -0.13), c.pal.lights))
    parts.append(([(0.36, -0.44), (0.43, -0.38), (0.5, -0.1), (0.5, 0.0), (0.36, 0.0)], lit))
    parts.append(([(0.36, 0.0), (0.5, 0.0), (0.5, 0.1), (0.43, 0.38), (0.36, 0.44)], shade))
    for _ in range(int(c.rng.integers(4, 9))):
        x0, wd, hg = c.uniform(-0.34, 0.2), c.uniform(0.02, 0.08), c.uniform(0.08, 0.28)
        up = c.chance(0.6)
        parts.append((box(x0, -0.45 - hg, x0 + wd, -0.3) if up else box(x0, 0.3, x0 + wd,
                      0.45 + hg), mix(lit, shade, 0.2) if up else shade))  # fmt: skip
    parts.append((box(0.1, -0.72, 0.24, -0.4), mix(lit, shade, 0.1)))
    parts.append((box(0.13, -0.66, 0.22, -0.6), c.pal.lights))
    parts.append(([(-0.44, -0.62), (-0.36, -0.62), (-0.42, -0.95), (-0.45, -0.95)], shade))
    return parts


def paint_ship(c: Canvas, size: float = 1.0, centre: Point | None = None) -> None:
    """A long, blocky 1970s cruiser with segmented, striped hull panels and glowing engines."""
    p = c.pal
    length = c.unit * c.uniform(0.35, 0.6) * size
    thick = length * c.uniform(0.13, 0.19)
    cx, cy = c.w * c.uniform(0.25, 0.75), c.horizon * c.uniform(0.25, 0.55)
    cx, cy = centre or (cx, cy)
    ang, flip = c.uniform(-0.2, 0.2), -1.0 if c.chance(0.5) else 1.0
    lit, shade = mix(p.hull, p.sun, 0.25), scale(p.hull, 0.42)
    parts = hull_parts(c, lit, shade, scale(p.hull, 0.15), p.stripe)
    paint_shapes(c, [(place(pts, cx, cy, length * flip, thick, ang), rgb) for pts, rgb in parts])
    for ny in np.linspace(-0.35, 0.35, 3):
        (ex, ey), *_ = place([(-0.58, float(ny))], cx, cy, length * flip, thick, ang)
        glow(c, ex, ey, thick * 0.3, mix(p.lights, (0.6, 0.8, 1.0), 0.6), 0.8)


def paint_station(c: Canvas, size: float = 1.0, centre: Point | None = None) -> None:
    """A wheel station: shaded ring segments with lit windows, spokes, hub and spindle."""
    p = c.pal
    r = c.unit * c.uniform(0.1, 0.2) * size
    flat, ang = c.uniform(0.25, 0.45), c.uniform(-0.3, 0.3)
    cx, cy = c.w * c.uniform(0.2, 0.8), c.horizon * c.uniform(0.25, 0.5)
    cx, cy = centre or (cx, cy)
    lx, ly = c.sun[0] - cx, c.sun[1] - cy
    norm = math.hypot(lx, ly) + 1e-6
    back: list[Shape] = []
    front: list[Shape] = []
    n = 72
    for i in range(n):
        a0, a1 = 2 * math.pi * i / n, 2 * math.pi * (i + 1) / n
        mid = (a0 + a1) / 2
        facing = (math.cos(mid) * lx + math.sin(mid) * ly) / norm
        tone = mix(scale(p.hull, 0.3), mix(p.hull, p.sun, 0.3), 0.5 + 0.5 * facing)
        seg = [(math.cos(a0), math.sin(a0)), (math.cos(a1), math.sin(a1))]
        quad = [(x, y) for x, y in seg] + [(x * 0.82, y * 0.82) for x, y in reversed(seg)]
        shapes = [(place(quad, cx, cy, r, r * flat, ang), tone)]
        if c.chance(0.4):
            win = [(math.cos(mid) * k, math.sin(mid) * k) for k in (0.9, 0.93)]
            win += [(x + 0.02, y) for x, y in reversed(win)]
            shapes.append((place(win, cx, cy, r, r * flat, ang), p.lights))
        (back if math.sin(mid) < 0 else front).extend(shapes)
    hub: list[Shape] = [(place(box(-0.04, -1.3, 0.04, 0.9), cx, cy, r, r, ang), scale(p.hull, 0.6))]
    for k in range(int(c.rng.integers(3, 7))):
        a = 2 * math.pi * k / 6 + 0.3
        spoke = [(0.0, -0.02), (math.cos(a) * 0.85, math.sin(a) * 0.85 - 0.02)]
        spoke += [(x, y + 0.04) for x, y in reversed(spoke)]
        hub.append((place(spoke, cx, cy, r, r * flat, ang), scale(p.hull, 0.5)))
    hub.append((place(ellipse(0, 0, 0.14, 0.14), cx, cy, r, r, ang), mix(p.hull, p.sun, 0.2)))
    hub.append((place(ellipse(0, -1.3, 0.12, 0.04), cx, cy, r, r, ang), p.hull))
    paint_shapes(c, back + hub + front)
    (bx, by), *_ = place([(0.0, -1.3)], cx, cy, r, r, ang)
    glow(c, bx, by, r * 0.05, p.lights, 0.8)


def paint_city(c: Canvas, base: float, size: float = 1.0) -> None:
    """Towers with lit windows and saucer tops behind a row of shaded glass domes."""
    p = c.pal
    mid, half, s = (
        c.w * c.uniform(0.3, 0.7),
        c.w * c.uniform(0.14, 0.3) * min(size, 1.6),
        c.unit * c.uniform(0.7, 1.1) * size,
    )
    body = mix(p.ground, p.horizon, 0.3)
    lit_side = c.sun[0] > mid
    shapes: list[Shape] = []
    for _ in range(int(c.rng.integers(5, 11))):
        x, tw, th = (
            mid + c.uniform(-half, half),
            s * c.uniform(0.012, 0.03),
            s * c.uniform(0.08, 0.3),
        )
        top = base - th
        shapes.append((box(x - tw / 2, top, x + tw / 2, base + 2), body))
        sun_x = x if lit_side else x - tw / 2
        shapes.append((box(sun_x, top, sun_x + tw / 2, base + 2), mix(body, p.sun, 0.18)))
        roll = c.rng.random()
        if roll < 0.4:
            shapes.append((ellipse(x, top, tw * 1.9, tw * 0.45), mix(body, p.sun, 0.1)))
            shapes.append((ellipse(x, top + tw * 0.1, tw * 1.6, tw * 0.12), p.lights))
        elif roll < 0.75:
            shapes.append(([(x - tw / 2, top), (x + tw / 2, top), (x, top - tw * 2.5)], body))
        else:
            shapes.append((box(x - 0.6, top - th * 0.3, x + 0.6, top), body))
        step = max(2.0, s * 0.012)
        for row in np.arange(top + step, base - step, step):
            for cx in (x - tw * 0.25, x + tw * 0.25):
                if c.rng.random() < 0.35:
                    ww, wh = max(0.8, tw * 0.15), max(0.8, step * 0.35)
                    shapes.append((box(cx - ww, row, cx + ww, row + wh), p.lights))
    paint_shapes(c, shapes)
    for _ in range(int(c.rng.integers(2, 5))):
        r = s * c.uniform(0.035, 0.09)
        paint_body(c, mid + c.uniform(-half, half), base, r, mix(p.hull, p.horizon, 0.4),
                   scale(p.hull, 0.35), "dome")  # fmt: skip


def paint_figure(c: Canvas, profile: Arr | None) -> None:
    """A small lone spacesuited figure on the nearest crest, or on the plain with a shadow."""
    cands = c.rng.uniform(0.12 * c.w, 0.88 * c.w, 6)
    if profile is not None:
        x = float(min(cands, key=lambda v: float(profile[int(v)])))
        foot = float(profile[int(x)]) + 1.0
        height = c.h * c.uniform(0.07, 0.12)
    else:
        x = float(cands[0])
        foot = c.horizon + (c.h - c.horizon) * c.uniform(0.35, 0.7)
        height = min((foot - c.horizon) * c.uniform(0.45, 0.7), 0.16 * c.unit)
        away = math.copysign(height * 1.6, x - c.sun[0])
        shadow = [(x - height * 0.1, foot), (x + height * 0.1, foot)]
        shadow += [(x + away + height * 0.15, foot + height * 0.3)]
        shadow += [(x + away - height * 0.15, foot + height * 0.3)]
        paint_shapes(c, [(shadow, scale(c.pal.ground, 0.4))], opacity=0.55)
    face = 1.0 if c.sun[0] > x else -1.0
    suit, dark = scale(c.pal.ground, 0.35), scale(c.pal.ground, 0.2)
    parts: list[tuple[list[Point], RGB]] = [
        (box(-0.22, -0.84, -0.1, -0.5), dark),
        ([(-0.13, -0.45), (-0.02, -0.45), (-0.04, 0.0), (-0.15, 0.0)], suit),
        ([(0.02, -0.45), (0.13, -0.45), (0.16, 0.0), (0.05, 0.0)], suit),
        ([(-0.15, -0.8), (0.15, -0.8), (0.13, -0.42), (-0.13, -0.42)], suit),
        ([(0.12, -0.78), (0.19, -0.76), (0.17, -0.45), (0.12, -0.45)], suit),
        (ellipse(0.0, -0.9, 0.11, 0.11, n=20), suit),
        (ellipse(0.05, -0.91, 0.05, 0.035, n=12), mix(c.pal.sun, c.pal.lights, 0.5)),
        (box(-0.2, -1.15, -0.19, -0.82), dark),
    ]
    paint_shapes(c, [(place(pts, x, foot, height * face, height, 0.0), rgb) for pts, rgb in parts])
