"""Ground layers for the procedural renderer: ridges, salt flats, sea and a cave mouth."""

from __future__ import annotations

import numpy as np

from generation.image._paint import (
    RGB,
    Arr,
    Canvas,
    cell_edges,
    col,
    f32,
    fractal2d,
    lattice,
    line_noise,
    mix,
    over,
    resize,
    scale,
    smoothstep,
)


def _texture(c: Canvas, cells: int, stretch: int = 1) -> Arr:
    """Fractal texture at reduced size; ``stretch`` elongates it vertically, like gullies."""
    small = fractal2d(c.rng, max(4, c.h // (2 * stretch)), max(4, c.w // 2), cells, 4)
    return resize(small, c.w, c.h)


def _ridge(
    c: Canvas, tex: Arr, base: float, amp: float | Arr, cells: int, ridged: bool, haze: float
) -> Arr:
    """One silhouette layer: lit and shadowed faces, misty at its foot, returns its profile."""
    prof = base - amp * line_noise(c.rng, c.w, cells, 7, ridged)
    row0 = max(0, min(c.h - 1, int(prof.min())))
    ys, t = c.ys[row0:], tex[row0:]
    side = np.tanh((c.xs[0] - c.sun[0]) / (0.08 * c.w))
    win = max(3, c.w // 20)
    slope = np.convolve(np.gradient(prof), np.ones(win, dtype=np.float32) / win, mode="same")
    gain = np.clip(0.4 * c.h / (amp + 1.0), 2.5, 8.0).astype(np.float32)
    facing = np.tanh(-slope * side * gain)
    depth = ys - prof
    below = np.clip(depth / (amp + 0.1 * c.h), 0.0, 1.0)
    rim = np.exp(-depth / (0.006 * c.h + 1.0)) * (0.5 - 0.4 * haze)
    fade = np.exp(-depth / (0.4 * amp + 0.02 * c.h))
    step = max(1, c.w // 300)
    relief = np.roll(t, step, axis=1) - np.roll(t, -step, axis=1)
    relief = np.tanh(relief * side / (float(relief.std()) + 1e-6)) * (0.15 - 0.1 * haze)
    light = 0.75 + 0.4 * facing * fade - 0.3 * below + rim + relief
    light = light * (1.0 + (0.5 - 0.35 * haze) * (t - 0.5))
    rock = col(mix(c.pal.ground, c.pal.horizon, haze)) * light[..., None]
    mist = smoothstep(base - amp * 0.3, base + 0.03 * c.h, ys) * (0.05 + 0.5 * haze)
    rock = rock + (col(c.pal.horizon) - rock) * mist[..., None]
    over(c.img[row0:], rock, np.clip(ys - prof[None, :] + 0.5, 0.0, 1.0))
    return prof


def paint_far(c: Canvas, ground: str) -> None:
    """What sits on the horizon, before any city is placed in front of it."""
    hz, h = c.horizon, c.h
    if ground == "mountains":
        tex = _texture(c, 8)
        _ridge(c, tex, hz, h * c.uniform(0.12, 0.26), 3, True, 0.8)
        _ridge(c, tex, hz + 0.03 * h, h * c.uniform(0.08, 0.16), 4, True, 0.6)
        _ridge(c, tex, hz + 0.07 * h, h * c.uniform(0.05, 0.1), 5, True, 0.4)
    elif ground == "desert":
        flat = smoothstep(0.55, 0.62, line_noise(c.rng, c.w, 5, 3))
        mesas = hz - h * c.uniform(0.03, 0.07) * flat * (0.6 + 0.4 * line_noise(c.rng, c.w, 9, 3))
        over(c.img, mix(c.pal.ground, c.pal.horizon, 0.6), np.clip(c.ys - mesas + 0.5, 0.0, 1.0))
        paint_plain(c)
    else:
        isl = smoothstep(0.6, 0.7, line_noise(c.rng, c.w, 3, 2))
        top = hz - h * 0.08 * isl * line_noise(c.rng, c.w, 6, 5, ridged=True)
        over(c.img, mix(c.pal.ground, c.pal.horizon, 0.65), np.clip(c.ys - top + 0.5, 0.0, 1.0))


def paint_near(c: Canvas, ground: str, footing: bool) -> Arr | None:
    """Foreground layers; returns the row a figure could stand on per column, if any."""
    h = c.h
    if ground == "mountains":
        tex = _texture(c, 6)
        prof = _ridge(c, tex, c.horizon + 0.17 * h, h * c.uniform(0.06, 0.12), 3, False, 0.2)
        if c.chance(0.6):
            prof = _crag(c, tex, h * c.uniform(0.15, 0.3))
        return prof
    if ground == "ocean":
        _sea(c)
        if footing or c.chance(0.5):
            return _crag(c, _texture(c, 6), h * c.uniform(0.12, 0.22))
    return None


def _crag(c: Canvas, tex: Arr, height: float) -> Arr:
    """A dark foreground outcrop rising on one side of the frame."""
    ramp = np.clip(np.linspace(1.6, -0.6, c.w, dtype=np.float32), 0.0, 1.0)
    ramp = ramp if c.chance(0.5) else ramp[::-1].copy()
    return _ridge(c, tex, c.h + 2.0, height * (0.15 + 0.85 * ramp), 4, True, 0.0)


def _plane(c: Canvas, row0: int) -> tuple[Arr, Arr, Arr]:
    """Ground-plane coordinates (across, depth) and distance below the horizon, per pixel."""
    dist = f32(np.broadcast_to(c.ys[row0:] - c.horizon + 0.5, (c.h - row0, c.w)))
    return f32((c.xs - c.w / 2) / dist), f32(c.h / dist), dist


def paint_plain(
    c: Canvas, far: RGB = (0.9, 0.87, 0.82), near: RGB = (0.88, 0.84, 0.78), tint: float = 0.6
) -> None:
    """A pale, cracked plain (salt; ice in blue) that mirrors a little of the sky at the horizon."""
    row0 = min(c.h - 1, int(np.ceil(c.horizon)))
    across, depth, dist = _plane(c, row0)
    near_t = smoothstep(0.0, 0.4 * c.h, dist)
    p = c.pal
    far_c, near_c = mix(far, p.horizon, tint), mix(near, p.ground, tint / 2)
    salt = col(far_c) + (col(near_c) - col(far_c)) * near_t[..., None]
    edge = cell_edges(c.rng.random((32, 32, 2), dtype=np.float32), across * 2.5, depth * 2.5)
    crack = (1.0 - smoothstep(0.02, 0.06, edge)) * smoothstep(0.02 * c.h, 0.3 * c.h, dist)
    salt = salt * (1.0 - 0.3 * crack)[..., None]
    mirror = np.clip((2.0 * c.horizon - c.ys[row0:, 0]).astype(np.intp), 0, c.h - 1)
    sheen = (1.0 - smoothstep(0.0, 0.06 * c.h, dist)) * 0.6
    salt = salt + (c.img[mirror] - salt) * sheen[..., None]
    region = c.img[row0:]
    over(region, salt, np.clip(c.ys[row0:] - c.horizon + 0.5, 0.0, 1.0) * np.ones_like(dist))


def _sea(c: Canvas) -> None:
    """Still water reflecting everything above it, rippled, with a glitter path under the sun."""
    row0 = min(c.h - 1, int(np.ceil(c.horizon)))
    across, depth, dist = _plane(c, row0)
    grid = c.rng.random((64, 64), dtype=np.float32)
    wave = lattice(grid, across * 2.0, depth * 14.0)
    shift = ((wave - 0.5) * dist * 0.25).astype(np.intp)
    xi = np.clip(np.arange(c.w)[None, :] + shift, 0, c.w - 1)
    mirror = np.clip((2.0 * c.horizon - c.ys[row0:]).astype(np.intp), 0, c.h - 1)
    refl = c.img[mirror, xi]
    k = (0.85 - 0.6 * smoothstep(0.0, 0.35 * c.h, dist))[..., None]
    deep = col(mix(c.pal.ground, c.pal.zenith, 0.5))
    water = (refl * k + deep * (1.0 - k)) * (0.8 + 0.35 * wave)[..., None]
    spread = 0.02 * c.w + dist * 0.5
    path = np.exp(-(((c.xs - c.sun[0]) / spread) ** 2)) * smoothstep(0.6, 0.8, wave)
    water = water + col(c.pal.sun) * (path * (0.9 if c.sun_visible else 0.35))[..., None]
    c.img[row0:] = water


def paint_cave(c: Canvas) -> Arr:
    """Frame the view with a ragged cave mouth; returns the cave floor's profile."""
    cx, rx = c.w * c.uniform(0.38, 0.62), c.w * c.uniform(0.26, 0.36)
    cy, top = c.h * c.uniform(0.45, 0.58), c.h * c.uniform(0.04, 0.16)
    ry = cy - top
    tex = _texture(c, 5)
    widen = 1.0 + 0.2 * np.clip((c.ys - cy) / c.h, 0.0, 1.0)
    e = np.sqrt(((c.xs - cx) / (rx * widen)) ** 2 + ((np.minimum(c.ys, cy) - cy) / ry) ** 2)
    e = e + (tex - 0.5) * 0.45
    floor = c.h * c.uniform(0.82, 0.9) - c.h * 0.08 * line_noise(c.rng, c.w, 4, 6)
    arch = np.clip((e - 1.0) * rx * 0.5 + 0.5, 0.0, 1.0)
    rock_a = np.maximum(arch, np.clip(c.ys - floor[None, :] + 0.5, 0.0, 1.0))
    lip = np.where(c.ys >= floor, np.exp(-np.abs(c.ys - floor) / (0.015 * c.h)), 0.0)
    rim = np.exp(-np.clip(e - 1.0, 0.0, None) * 9.0) + lip * (arch < 0.5)
    rim = np.clip(rim, 0.0, 1.0) * (0.4 + 0.6 * tex)
    depth = np.exp(-np.clip(e - 1.0, 0.0, None) * 2.5)[..., None]
    dark = col(scale(c.pal.ground, 0.45)) * (0.5 + 0.7 * tex)[..., None] * (0.35 + 0.65 * depth)
    rock = dark + col(mix(c.pal.horizon, c.pal.sun, 0.3)) * (0.3 * rim)[..., None]
    over(c.img, rock, rock_a)
    return floor
