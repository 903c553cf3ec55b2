"""Outdoor scenes beyond plain landscapes: open space, a wreck, a storm, a base, an ice world."""

from __future__ import annotations

import itertools
import math

import numpy as np

from generation.image._ground import paint_far, paint_plain
from generation.image._paint import (
    RGB,
    Canvas,
    Point,
    Shape,
    col,
    ellipse,
    fractal2d,
    line_noise,
    mix,
    over,
    paint_shapes,
    resize,
    scale,
    smoothstep,
)
from generation.image._props import glow, hull_parts, paint_ship, paint_station, place
from generation.image._sky import paint_body, paint_nebula, paint_stars


def paint_space(c: Canvas, kind: str) -> None:
    """No ground: stars and gas, a planet's limb, and the ship or the station up close."""
    p = c.pal
    t = (c.ys / c.h)[..., None]
    c.img[:] = col(p.zenith) + (col(mix(p.zenith, p.sky, 0.6)) - col(p.zenith)) * t
    paint_nebula(c)
    paint_nebula(c)
    paint_stars(c)
    r = c.unit * c.uniform(1.0, 1.8) if kind == "orbit" else c.unit * c.uniform(0.25, 0.45)
    cx = c.w * c.uniform(0.2, 0.8)
    cy = c.h + r * c.uniform(0.55, 0.8) if kind == "orbit" else c.h * c.uniform(0.0, 1.0)
    paint_body(c, cx, cy, r, p.planet[0], p.planet[1], "banded")
    if kind == "orbit":
        at = (c.w * c.uniform(0.3, 0.7), c.h * c.uniform(0.3, 0.45))
        paint_station(c, c.uniform(1.5, 2.1), at)
    else:
        paint_ship(c, c.uniform(1.7, 2.3), (c.w * c.uniform(0.4, 0.6), c.h * c.uniform(0.4, 0.6)))


def _smoke(c: Canvas, x: float, y: float, width: float, drift: float) -> None:
    """A dark plume rising from (x, y), leaning with the wind."""
    n = resize(fractal2d(c.rng, max(4, c.h // 4), max(4, c.w // 4), 4, 4), c.w, c.h)
    rise = np.clip((y - c.ys) / max(y, 1.0), 0.0, 1.0)
    centre = x + drift * rise * c.w
    spread = width * (0.4 + 2.5 * rise)
    column = np.exp(-(((c.xs - centre) / spread) ** 2)) * (c.ys < y)
    alpha = column * smoothstep(0.3, 0.75, n) * (1.0 - rise * 0.6) * 0.85
    over(c.img, scale(c.pal.ground, 0.6), alpha)


def paint_wreck(c: Canvas) -> None:
    """A broken cruiser nose-down in the plain, its halves apart, smoke from the break."""
    p = c.pal
    paint_far(c, "desert")
    lit, shade = mix(scale(p.hull, 0.75), p.sun, 0.2), scale(p.hull, 0.32)
    parts = hull_parts(c, lit, shade, scale(p.hull, 0.1), scale(p.stripe, 0.6))
    cut = c.uniform(-0.1, 0.15)
    length = c.unit * c.uniform(1.0, 1.4)
    flip = -1.0 if c.chance(0.5) else 1.0
    ground_y = c.horizon + (c.h - c.horizon) * c.uniform(0.3, 0.45)
    tail_x = c.w * (0.5 - 0.12 * flip)
    aft = [(pts, rgb) for pts, rgb in parts if sum(x for x, _ in pts) / len(pts) < cut]
    fore = [(pts, rgb) for pts, rgb in parts if sum(x for x, _ in pts) / len(pts) >= cut]
    tilt = c.uniform(0.25, 0.4) * flip
    shapes: list[Shape] = [
        (place(pts, tail_x, ground_y, length * flip, length * 0.16, tilt), rgb) for pts, rgb in aft
    ]
    nose_x = tail_x + flip * length * c.uniform(0.55, 0.7)
    shapes += [(place(pts, nose_x, ground_y + c.h * 0.02, length * flip * 0.9, length * 0.15,
                      -tilt * 0.8), rgb) for pts, rgb in fore]  # fmt: skip
    paint_shapes(c, shapes)
    mound: list[Point] = [(0.0, c.h * 2.0)]
    sand = line_noise(c.rng, 24, 4, 3)
    for i, v in enumerate(sand):
        mound.append((c.w * i / 23, ground_y + c.h * (0.01 + 0.05 * float(v))))
    mound.append((float(c.w), c.h * 2.0))
    paint_shapes(c, [(mound, mix(p.ground, p.horizon, 0.35))])
    debris = [(ellipse(c.uniform(0.0, c.w), c.uniform(ground_y, c.h), c.unit * 0.02,
                       c.unit * 0.006, n=8), scale(p.hull, 0.25)) for _ in range(12)]  # fmt: skip
    paint_shapes(c, debris)
    bx = tail_x + flip * length * 0.45 * math.cos(tilt)
    _smoke(c, bx, ground_y - c.h * 0.05, c.unit * 0.03, c.uniform(0.1, 0.3) * flip)
    glow(c, bx, ground_y - c.h * 0.04, c.unit * 0.03, (1.0, 0.55, 0.2), 1.0)


def paint_storm(c: Canvas) -> None:
    """A dust storm: low churning cloud, a lightning fork, ridges lost in blowing sand."""
    p = c.pal
    paint_far(c, "mountains")
    clouds = resize(fractal2d(c.rng, max(4, c.h // 6), max(4, c.w // 12), 3, 5), c.w, c.h)
    dark = scale(mix(p.ground, p.zenith, 0.5), 0.9)
    lid = smoothstep(c.horizon * 0.2, c.horizon * 1.05, c.ys)
    cover = np.clip(smoothstep(0.25, 0.65, clouds) + (1.0 - lid) * 0.6, 0.0, 1.0)
    over(c.img, dark, cover * 0.92)
    bolt: list[Point] = [(c.w * c.uniform(0.2, 0.8), c.horizon * c.uniform(0.15, 0.3))]
    while bolt[-1][1] < c.horizon:
        x, y = bolt[-1]
        bolt.append((x + c.unit * c.uniform(-0.06, 0.06), y + c.unit * c.uniform(0.03, 0.07)))
    width = max(0.6, c.unit * 0.004)
    fork = [(x - width, y) for x, y in bolt] + [(x + width, y) for x, y in reversed(bolt)]
    flash = mix(p.lights, (0.9, 0.95, 1.0), 0.7)
    paint_shapes(c, [(fork, flash)])
    for x, y in bolt[::2]:
        glow(c, x, y, c.unit * 0.04, flash, 0.25)
    streaks = resize(c.rng.random((max(4, c.h // 3), 6), dtype=np.float32), c.w, c.h)
    dust = smoothstep(0.4, 0.9, streaks) * smoothstep(c.horizon * 0.5, float(c.h), c.ys)
    over(c.img, mix(p.horizon, p.ground, 0.45), np.clip(dust * 0.55 + 0.25, 0.0, 1.0))


def _hut(x: float, base: float, w: float, h: float, body: RGB, lamp: RGB) -> list[Shape]:
    """A prefab half-cylinder habitat with lit windows and a door."""
    shapes: list[Shape] = [(ellipse(x, base, w, h, math.pi, 2 * math.pi, 24), body)]
    for k in (-0.55, -0.25, 0.25, 0.55):
        wx = x + w * k
        shapes.append((ellipse(wx, base - h * 0.45, w * 0.05, h * 0.09, n=10), lamp))
    shapes.append(([(x - w * 0.08, base), (x + w * 0.08, base), (x + w * 0.08, base - h * 0.5),
                    (x - w * 0.08, base - h * 0.5)], scale(body, 0.4)))  # fmt: skip
    return shapes


def paint_base(c: Canvas) -> None:
    """An outpost on open ground: habitat huts, a radar dish, a lattice mast with a beacon."""
    p = c.pal
    paint_far(c, "mountains")
    row0 = int(min(c.h - 1, c.horizon + 0.07 * c.h))
    t = np.clip((c.ys[row0:] - row0) / max(c.h - row0, 1), 0.0, 1.0)[..., None]
    c.img[row0:] = col(mix(p.ground, p.horizon, 0.35)) + (col(p.ground) - col(mix(
        p.ground, p.horizon, 0.35))) * t  # fmt: skip
    base = c.horizon + (c.h - c.horizon) * c.uniform(0.3, 0.45)
    body, lamp = mix(p.hull, p.sun, 0.15), p.lights
    shapes: list[Shape] = []
    for _ in range(int(c.rng.integers(3, 6))):
        hw = c.unit * c.uniform(0.06, 0.14)
        shapes += _hut(c.w * c.uniform(0.15, 0.85), base + c.uniform(-0.02, 0.03) * c.h, hw,
                       hw * c.uniform(0.45, 0.7), body, lamp)  # fmt: skip
    mx, top = c.w * c.uniform(0.1, 0.9), base - c.h * c.uniform(0.45, 0.6)
    leg = c.unit * 0.035
    for s in (-1.0, 1.0):
        shapes.append(([(mx + s * leg, base), (mx + s * leg * 0.9, base), (mx + s * 0.002,
                        top), (mx + s * 0.004 * c.unit, top)], scale(p.hull, 0.3)))  # fmt: skip
    for k in range(1, 9):
        y, half = base - (base - top) * k / 9, leg * (1.0 - k / 9)
        shapes.append(([(mx - half, y), (mx + half, y), (mx + half, y - 1.2),
                        (mx - half, y - 1.2)], scale(p.hull, 0.3)))  # fmt: skip
    dx, dy, dr = c.w * c.uniform(0.1, 0.9), base - c.h * 0.08, c.unit * c.uniform(0.05, 0.08)
    shapes.append(([(dx - 1.5, base), (dx + 1.5, base), (dx + 1.0, dy), (dx - 1.0, dy)], body))
    shapes.append((ellipse(dx, dy - dr * 0.3, dr, dr * 0.45, 0.0, math.pi * 2, 24),
                   scale(body, 0.8)))  # fmt: skip
    paint_shapes(c, shapes)
    glow(c, mx, top, c.unit * 0.012, (1.0, 0.2, 0.15), 1.5)
    glow(c, mx, top, c.unit * 0.06, (1.0, 0.2, 0.15), 0.25)


def _ice_cliff(c: Canvas, lit: RGB, shade: RGB) -> list[Shape]:
    """A wall of broken ice rising on one side of the frame, faceted light and dark."""
    left = c.chance(0.5)
    edge, reach = (
        (0.0, c.w * c.uniform(0.3, 0.42)) if left else (float(c.w), -c.w * c.uniform(0.3, 0.42))
    )
    foot = c.horizon + (c.h - c.horizon) * 0.15
    top = c.horizon - c.h * c.uniform(0.25, 0.4)
    n = 7
    ridge = [(edge + reach * k / n, top + (foot - top) * (k / n) ** 1.5 * c.uniform(0.8, 1.1))
             for k in range(n + 1)]  # fmt: skip
    shapes: list[Shape] = [([(edge, float(c.h)), *ridge, (edge + reach, float(c.h))], shade)]
    for (x0, y0), (x1, y1) in itertools.pairwise(ridge):
        drop = (c.h - max(y0, y1)) * c.uniform(0.25, 0.6)
        shapes.append(([(x0, y0), (x1, y1), (x0 + (x1 - x0) * 0.4, max(y0, y1) + drop)], lit))
        shapes.append(([(x1, y1), (x0 + (x1 - x0) * 0.4, max(y0, y1) + drop),
                        (x1, max(y0, y1) + drop * 1.6)], mix(lit, shade, 0.45)))  # fmt: skip
    return shapes


def paint_ice(c: Canvas) -> None:
    """A blue-white ice plain cut by cracks, a gas giant rising, shards and a wall of ice."""
    p = c.pal
    r = c.unit * c.uniform(0.35, 0.55)
    paint_body(c, c.w * c.uniform(0.3, 0.7), c.horizon + r * c.uniform(0.1, 0.4), r,
               p.planet[0], p.planet[1], "banded")  # fmt: skip
    paint_plain(c, (0.72, 0.86, 0.98), (0.55, 0.74, 0.95), tint=0.3)
    lit = mix((0.85, 0.95, 1.0), p.sun, 0.2)
    shade = mix((0.25, 0.4, 0.6), p.zenith, 0.3)
    shapes: list[Shape] = []
    for k in range(int(c.rng.integers(6, 12))):
        depth = k / 12
        base = c.horizon + (c.h - c.horizon) * depth * 0.5 + 1.0
        x, tall = c.uniform(0.0, c.w), c.unit * c.uniform(0.05, 0.22) * (0.4 + depth)
        wide = tall * c.uniform(0.2, 0.4)
        tip = (x + wide * c.uniform(-0.6, 0.6), base - tall)
        side = 1.0 if c.sun[0] > x else -1.0
        shapes.append(([(x - wide, base), (x, base + wide * 0.1), tip], shade if side > 0 else lit))
        shapes.append(([(x, base + wide * 0.1), (x + wide, base), tip], lit if side > 0 else shade))
    paint_shapes(c, sorted(shapes, key=lambda s: s[0][0][1]) + _ice_cliff(c, lit, shade))


def paint_viewport(c: Canvas) -> None:
    """The rim of a big observation window, so that people in a space scene stand aboard."""
    p = c.pal
    sill, post = c.h * 0.82, c.w * 0.035
    frame = scale(p.hull, 0.22)
    shapes: list[Shape] = [
        ([(0.0, sill), (float(c.w), sill), (float(c.w), float(c.h)), (0.0, float(c.h))], frame),
        ([(0.0, sill), (float(c.w), sill), (float(c.w), sill + 2.0), (0.0, sill + 2.0)],
         mix(p.hull, p.lights, 0.4)),
        ([(0.0, 0.0), (post, 0.0), (post, float(c.h)), (0.0, float(c.h))], frame),
        ([(c.w - post, 0.0), (float(c.w), 0.0), (float(c.w), float(c.h)), (c.w - post, c.h)],
         frame),
        ([(0.0, 0.0), (float(c.w), 0.0), (float(c.w), c.h * 0.04), (0.0, c.h * 0.04)], frame),
    ]  # fmt: skip
    for s in (0.0, 1.0):
        x = s * c.w
        corner = c.unit * 0.12
        d = 1.0 if s == 0.0 else -1.0
        shapes.append(([(x, c.h * 0.04), (x + d * (post + corner), c.h * 0.04),
                        (x + d * post, c.h * 0.04 + corner)], frame))  # fmt: skip
        shapes.append(([(x, sill), (x + d * (post + corner), sill),
                        (x + d * post, sill - corner)], frame))  # fmt: skip
    paint_shapes(c, shapes)
