"""Sky layers for the procedural renderer: gradient, sun, nebula, stars and planets."""

from __future__ import annotations

import math

import numpy as np

from generation.image._paint import (
    RGB,
    Arr,
    Canvas,
    col,
    f32,
    fractal2d,
    lattice,
    mix,
    over,
    resize,
    smoothstep,
)


def paint_sky(c: Canvas) -> None:
    """Three-stop gradient down to the horizon, a sun glow and a haze band."""
    p = c.pal
    t = np.clip(c.ys / max(c.horizon, 1.0), 0.0, 1.0)
    upper = smoothstep(0.0, 0.6, t)[..., None]
    lower = smoothstep(0.45, 1.0, t)[..., None]
    grad = col(p.zenith) + (col(p.sky) - col(p.zenith)) * upper
    grad = grad + (col(p.horizon) - grad) * lower
    c.img[:] = np.broadcast_to(grad, c.img.shape)
    sx, sy = c.sun
    d = np.sqrt((c.xs - sx) ** 2 + (c.ys - sy) ** 2) / c.unit
    glow = 0.35 * np.exp(-((d / 0.4) ** 2)) + 0.3 * np.exp(-((d / 0.1) ** 2))
    c.img += col(p.sun) * (glow * (1.0 if c.sun_visible else 0.45))[..., None]
    band = f32(np.exp(-(((c.ys - c.horizon) / (0.05 * c.h + 1.0)) ** 2)))
    over(c.img, mix(p.horizon, p.sun, 0.4), 0.35 * np.broadcast_to(band, c.img.shape[:2]))


def paint_nebula(c: Canvas) -> None:
    """Soft coloured gas in the upper sky, drawn at quarter size and scaled up."""
    sh, sw = max(4, c.h // 4), max(4, c.w // 4)
    n = resize(fractal2d(c.rng, sh, sw, 3, 4), c.w, c.h)
    fade = np.clip(1.0 - c.ys / max(c.horizon, 1.0), 0.0, 1.0) ** 1.5
    gas = smoothstep(0.5, 0.85, n) * fade * c.uniform(0.15, 0.35)
    tint = mix(c.pal.planet[0], c.pal.lights, c.uniform(0.0, 0.5))
    c.img += col(tint) * gas[..., None]


def paint_stars(c: Canvas) -> None:
    """Pinpoint stars, thinning towards the bright horizon, a few with glow and spikes."""
    count = int(c.w * c.h / c.uniform(500.0, 1100.0))
    if count == 0:
        return
    ys = c.rng.integers(0, c.h, count)
    xs = c.rng.integers(0, c.w, count)
    dim = np.clip(1.0 - ys / max(c.horizon, 1.0), 0.0, 1.0) ** 2
    bright = (c.rng.random(count, dtype=np.float32) ** 4 * 1.2 + 0.08) * dim
    tints = np.array([(1.0, 1.0, 1.0), (0.8, 0.9, 1.0), (1.0, 0.9, 0.75)], dtype=np.float32)
    rgb = tints[c.rng.integers(0, 3, count)] * bright[:, None]
    np.add.at(c.img, (ys, xs), rgb)
    big = bright > 0.55
    reach = max(1, int(c.unit / 180))
    for k in range(1, reach * 6 + 1):
        fall = (0.45 if k == 1 else 0.25) * (1.0 - k / (reach * 6 + 1)) ** 2
        for dy, dx in ((0, k), (0, -k), (k, 0), (-k, 0)):
            sel = big if k <= reach else big & (bright > 0.9)
            yy, xx = np.clip(ys[sel] + dy, 0, c.h - 1), np.clip(xs[sel] + dx, 0, c.w - 1)
            np.add.at(c.img, (yy, xx), rgb[sel] * fall)


def paint_body(c: Canvas, cx: float, cy: float, r: float, a: RGB, b: RGB, kind: str) -> None:
    """A lit sphere (banded giant, rocky moon) with an optional ring, over a bounding box."""
    rings = kind == "ringed"
    ext = r * (2.4 if rings else 1.05) + 2
    x0, x1 = max(0, int(cx - ext)), min(c.w, int(cx + ext) + 1)
    y0, y1 = max(0, int(cy - ext)), min(c.h, int(cy + ext) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    img = c.img[y0:y1, x0:x1]
    dx, dy = f32((c.xs[:, x0:x1] - cx) / r), f32((c.ys[y0:y1] - cy) / r)
    d = np.sqrt(dx * dx + dy * dy)
    lx, ly = c.sun[0] - cx, c.sun[1] - cy
    norm = math.hypot(lx, ly) + 1e-6
    lx, ly, lz = 0.9 * lx / norm, 0.9 * ly / norm, 0.44
    tilt = c.uniform(-0.5, 0.5)
    u = f32(dx * math.cos(tilt) + dy * math.sin(tilt))
    v = f32(-dx * math.sin(tilt) + dy * math.cos(tilt))
    ring_a = np.zeros_like(d)
    if rings:
        flat = c.uniform(0.18, 0.34)
        re = np.sqrt(u * u + (v / flat) ** 2)
        lanes = 0.55 + 0.45 * np.sin(re * c.uniform(18.0, 30.0)) ** 2
        ring_a = smoothstep(1.3, 1.4, re) * (1.0 - smoothstep(2.1, 2.3, re)) * lanes * 0.85
        over(img, mix(a, c.pal.sun, 0.3), ring_a * (v < 0))
    nz = np.sqrt(np.clip(1.0 - d * d, 0.0, 1.0))
    lit = np.clip(dx * lx + dy * ly + nz * lz, 0.0, 1.0) ** 0.8
    grid = c.rng.random((16, 16), dtype=np.float32)
    if kind == "dome":
        lon = np.arcsin(np.clip(dx / np.sqrt(np.clip(1.0 - dy * dy, 1e-4, 1.0)), -1.0, 1.0))
        tex = np.maximum(np.abs(np.sin(lon * 5.0)), np.abs(np.sin(dy * 9.0))) ** 8
    elif kind == "rocky":
        tex = lattice(grid, (dx + 2.0) * 2.5, (dy + 2.0) * 2.5) * 0.55
        tex = tex + lattice(grid, (dx + 3.0) * 6.0, (dy + 1.0) * 6.0) * 0.3
        tex = tex + lattice(grid, (dx + 5.0) * 15.0, (dy + 7.0) * 15.0) * 0.15
    else:
        wob = lattice(grid, (u + 2.0) * 2.0, (v + 2.0) * 8.0) * 1.5
        f1, f2 = c.uniform(6.0, 10.0), c.uniform(17.0, 29.0)
        tex = 0.5 + 0.3 * np.sin(v * f1 + wob) + 0.2 * np.sin(v * f2 + wob * 2.0)
    surf = col(a) + (col(b) - col(a)) * smoothstep(0.25, 0.85, tex)[..., None]
    rim = (1.0 - nz) ** 3 * lit
    body = surf * (0.05 + 0.95 * lit)[..., None] + col(c.pal.horizon) * (0.4 * rim)[..., None]
    inside = np.clip((1.0 - d) * r + 0.5, 0.0, 1.0)
    if kind == "dome":
        inside = inside * np.clip(-dy * r + 0.5, 0.0, 1.0)
    over(img, body, inside * (0.6 + 0.4 * lit))
    if rings:
        over(img, mix(a, c.pal.sun, 0.3), ring_a * (v >= 0))


def paint_planets(c: Canvas) -> None:
    """One large body, sometimes a moon; placed in the upper sky, often cut by the frame."""
    p = c.pal
    kind = str(c.rng.choice(["ringed", "banded", "rocky"], p=[0.4, 0.35, 0.25]))
    r = c.unit * c.uniform(0.1, 0.32)
    cx = c.w * c.uniform(0.05, 0.95)
    cy = c.horizon * c.uniform(0.15, 0.6)
    if abs(cx - c.sun[0]) < r * 2 and c.sun_visible:
        cx = (cx + c.w / 2) % c.w
    paint_body(c, cx, cy, r, p.planet[0], p.planet[1], kind)
    if c.chance(0.65):
        mr = c.unit * c.uniform(0.025, 0.06)
        mx = (cx + c.w * c.uniform(0.3, 0.7)) % c.w
        grey = (0.75, 0.72, 0.7)
        paint_body(c, mx, c.horizon * c.uniform(0.1, 0.5), mr, grey, p.planet[1], "rocky")


def paint_sun(c: Canvas) -> None:
    """A small hot disc where the light comes from, when it is in frame."""
    if not c.sun_visible:
        return
    sx, sy = c.sun
    r = max(1.5, c.unit * 0.028)
    x0, x1 = max(0, int(sx - r) - 1), min(c.w, int(sx + r) + 2)
    y0, y1 = max(0, int(sy - r) - 1), min(c.h, int(sy + r) + 2)
    d = np.sqrt((c.xs[:, x0:x1] - sx) ** 2 + (c.ys[y0:y1] - sy) ** 2)
    disc: Arr = np.clip(r - d + 0.5, 0.0, 1.0)
    over(c.img[y0:y1, x0:x1], mix(c.pal.sun, (1.0, 1.0, 1.0), 0.5), disc)
