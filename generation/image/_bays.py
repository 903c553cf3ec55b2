"""The ship's working bays: cryo sleep, the engine room and a laboratory."""

from __future__ import annotations

import math

import numpy as np

from generation.image._decks import Lit
from generation.image._paint import (
    RGB,
    Canvas,
    Point,
    Shape,
    col,
    ellipse,
    mix,
    over,
    paint_shapes,
    scale,
    smoothstep,
)
from generation.image._props import glow
from generation.image._room import Finish, Room, capsule, mist, paint_shell, wash

_FROST = (0.62, 0.92, 1.0)


def _wall_pod(room: Room, x: float, d0: float, d1: float, shell: RGB) -> list[Shape]:
    """A sleeper pod set into a side wall: rounded top, frosted glowing lid, a shape inside."""
    top, bottom = room.floor - (room.floor - room.top) * 0.78, room.floor * 0.98
    n = 10

    def outline(inset: float) -> list[Point]:
        a, b = d0 + (d1 - d0) * inset, d1 - (d1 - d0) * inset
        y0, y1 = top + (bottom - top) * inset * 0.6, bottom - (bottom - top) * inset * 0.4
        arc = [(a + (b - a) * k / n, y0 + (1.0 - math.sin(math.pi * k / n)) * (y1 - y0) * 0.12)
               for k in range(n + 1)]  # fmt: skip
        return [room.at(x, y, t) for t, y in arc] + [room.at(x, y1, b), room.at(x, y1, a)]

    return [(outline(0.0), shell), (outline(0.14), _FROST), (outline(0.32), scale(_FROST, 0.45))]


def paint_cryo(c: Canvas, lamp: RGB | None) -> Lit:
    """Rows of frosted sleeper pods down both walls, one standing pod in the middle, mist."""
    p = c.pal
    light = lamp or _FROST
    room = Room(c, c.w * c.uniform(0.44, 0.56), c.h * c.uniform(0.38, 0.46),
                c.uniform(0.28, 0.38), 0.25)  # fmt: skip
    white = mix(p.hull, (0.9, 0.95, 1.0), 0.45)
    fin = Finish(white, scale(p.hull, 0.45), scale(white, 0.75), scale(white, 0.6), light,
                 scale(mix(light, white, 0.5), 0.55), ribs=1.0, strip=0.15, fog=0.2)  # fmt: skip
    paint_shell(room, fin)
    pods: list[Shape] = []
    step = 0.5
    for k in reversed(range(int(room.deep / step))):  # far pods first
        for s in (-1.0, 1.0):
            x = (room.left if s < 0 else room.right) * 0.97
            pods += _wall_pod(room, x, k * step + 0.05, k * step + step * 0.8, scale(p.hull, 0.7))
    paint_shapes(c, pods)
    d = room.deep * c.uniform(0.35, 0.5)
    cx, cy = room.at(0.0, room.floor * 0.5, d)
    f = 1.0 / (1.0 + d)
    hw, hh = room.right * 0.16 * f, room.floor * 0.48 * f
    hero: list[Shape] = [
        (capsule(cx, cy, hw * 1.18, hh * 1.06), scale(p.hull, 0.75)),
        (capsule(cx, cy, hw, hh * 0.96), mix(_FROST, white, 0.3)),
        (ellipse(cx, cy - hh * 0.62, hw * 0.32, hw * 0.36, n=20), scale(_FROST, 0.35)),
        (capsule(cx, cy + hh * 0.1, hw * 0.42, hh * 0.62), scale(_FROST, 0.4)),
        ([(cx - hw * 1.3, cy + hh * 0.98), (cx + hw * 1.3, cy + hh * 0.98),
          (cx + hw * 1.4, cy + hh * 1.12), (cx - hw * 1.4, cy + hh * 1.12)], scale(p.hull, 0.4)),
    ]  # fmt: skip
    paint_shapes(c, hero)
    glow(c, cx, cy, hw * 1.4, light, 0.35)
    for lx in (cx - hw, cx, cx + hw):
        glow(c, lx, cy + hh * 1.05, max(1.0, hw * 0.06), light, 1.0)
    mist(c, room.vy, mix(light, (1.0, 1.0, 1.0), 0.4), 0.35)
    return cx, light


def _cylinder(c: Canvas, cx: float, hw: float, y0: float, y1: float, metal: RGB, hot: RGB) -> None:
    """A reactor column facing the camera: round shading, glowing rings, a white-hot core."""
    x0, x1 = max(0, int(cx - hw)), min(c.w, int(cx + hw) + 1)
    r0, r1 = max(0, int(y0)), min(c.h, int(y1) + 1)
    if x1 <= x0 or r1 <= r0:
        return
    nx = (c.xs[:, x0:x1] - cx) / max(hw, 1.0)
    ys = c.ys[r0:r1]
    roundness = np.sqrt(np.clip(1.0 - nx * nx, 0.0, 1.0))
    body = col(metal) * (0.15 + 0.85 * roundness**1.5)[..., None]
    period = max(4.0, (y1 - y0) / 7.0)
    ring = 1.0 - smoothstep(0.04, 0.09, np.abs((ys - y0) / period % 1.0 - 0.5))
    core = (1.0 - smoothstep(0.12, 0.22, np.abs(nx))) * smoothstep(0.15, 0.3, (ys - y0) / (y1 - y0))
    core = core * (1.0 - smoothstep(0.7, 0.85, (ys - y0) / (y1 - y0)))
    heat = np.clip(ring * roundness + core * 1.4, 0.0, 1.4)
    body = body + col(hot) * heat[..., None]
    inside = np.clip(hw - np.abs(c.xs[:, x0:x1] - cx) + 0.5, 0.0, 1.0) * np.ones_like(ys)
    over(c.img[r0:r1, x0:x1], body, inside)


def paint_engine(c: Canvas, lamp: RGB | None) -> Lit:
    """A tall, hot machine hall: the reactor column, pipe runs on the walls, steam."""
    p = c.pal
    hot = lamp or (1.0, 0.55, 0.18)
    room = Room(c, c.w * c.uniform(0.4, 0.6), c.h * c.uniform(0.45, 0.55),
                c.uniform(0.28, 0.38))  # fmt: skip
    iron = mix(p.ground, p.hull, 0.35)
    fin = Finish(iron, scale(p.ground, 1.2), scale(p.ground, 0.7), scale(iron, 0.7),
                 hot, scale(hot, 0.22), ribs=1.8, rib_width=0.12, strip=0.0, wall_lights=True,
                 fog=0.22)  # fmt: skip
    paint_shell(room, fin)
    pipes: list[Shape] = []
    for s in (-1.0, 1.0):
        x = (room.left if s < 0 else room.right) * 0.96
        for _ in range(int(c.rng.integers(3, 6))):
            y = room.top + (room.floor - room.top) * c.uniform(0.1, 0.6)
            thick = c.h * c.uniform(0.015, 0.04)
            pipes.append((room.side(x, y, y + thick, 0.0, room.deep), scale(p.hull, 0.5)))
            pipes.append((room.side(x, y, y + thick * 0.3, 0.0, room.deep), mix(p.hull, hot, 0.4)))
    paint_shapes(c, pipes)
    d = room.deep * c.uniform(0.45, 0.65)
    cx, top = room.at(room.right * c.uniform(-0.25, 0.25), room.top, d)
    _, bottom = room.at(0.0, room.floor, d)
    hw = c.w * 0.16 / (1.0 + d)
    _cylinder(c, cx, hw, top, bottom, scale(p.hull, 0.55), hot)
    wash(c, cx, (top + bottom) / 2, c.unit * 0.25, scale(hot, 0.4), 0.6)
    mist(c, c.h * 0.2, mix(hot, (0.8, 0.8, 0.8), 0.6), 0.22)
    return cx, hot


def paint_lab(c: Canvas, lamp: RGB | None) -> Lit:
    """A clean laboratory: benches of glowing glassware, a specimen tank, tape-reel computers."""
    p = c.pal
    light = lamp or (0.72, 1.0, 0.78)
    room = Room(c, c.w * c.uniform(0.42, 0.58), c.h * c.uniform(0.4, 0.48),
                c.uniform(0.32, 0.42), 0.15)  # fmt: skip
    white = mix(p.hull, (0.95, 0.95, 0.9), 0.5)
    fin = Finish(white, scale(p.hull, 0.5), scale(white, 0.8), scale(white, 0.7), light,
                 scale(mix(light, white, 0.6), 0.5), ribs=0.9, strip=0.14, fog=0.16)  # fmt: skip
    paint_shell(room, fin)
    d = room.deep
    kit: list[Shape] = []
    for k in range(3):  # computers on the back wall: tape reels and lamp grids
        x = room.left * 0.6 + (room.right - room.left) * 0.6 * k / 2
        kit.append((room.front(x - c.w * 0.08, room.top * 0.6, x + c.w * 0.08, room.floor,
                               d - 0.02), scale(p.hull, 0.4)))  # fmt: skip
        for yy in (room.top * 0.35, room.floor * 0.1):
            for dx in (-0.04, 0.04):
                rx, ry = room.at(x + c.w * dx, yy, d - 0.03)
                kit.append((ellipse(rx, ry, c.w * 0.03 * room.back, c.w * 0.03 * room.back,
                                    n=16), scale(p.hull, 0.15)))  # fmt: skip
    bench = scale(p.hull, 0.6)
    glass: list[tuple[float, float, RGB]] = []
    for s in (-1.0, 1.0):
        edge = room.left if s < 0 else room.right
        x0, x1 = sorted((edge, edge * 0.62))
        kit += room.prism(x0, x1, room.floor * 0.42, room.floor, 0.05, d * 0.95, bench)
        for _ in range(int(c.rng.integers(4, 8))):
            t = c.uniform(0.1, d * 0.9)
            liquid = (light, p.stripe, (0.9, 0.3, 0.7), (1.0, 0.7, 0.2))[int(c.rng.integers(4))]
            glass.append((t, edge * 0.8, liquid))
    for t, x, liquid in sorted(glass, key=lambda g: -g[0]):
        fx, fy = room.at(x, room.floor * 0.42, t)
        r = c.h * 0.03 / (1.0 + t)
        kit.append((ellipse(fx, fy - r, r, r, n=14), liquid))
        kit.append(([(fx - r * 0.25, fy - r * 1.8), (fx + r * 0.25, fy - r * 1.8),
                     (fx + r * 0.25, fy - r * 3.2), (fx - r * 0.25, fy - r * 3.2)],
                    mix(liquid, (1, 1, 1), 0.6)))  # fmt: skip
    paint_shapes(c, kit)
    td = d * 0.5
    cx, cy = room.at(0.0, (room.top + room.floor) * 0.3, td)
    f = 1.0 / (1.0 + td)
    hw, hh = c.w * 0.07 * f, (room.floor - room.top) * 0.4 * f
    tank: list[Shape] = [
        (capsule(cx, cy, hw, hh), mix(light, p.zenith, 0.35)),
        (ellipse(cx, cy - hh * 0.1, hw * 0.45, hh * 0.25, n=20), scale(p.ground, 0.8)),
        ([(cx - hw * 0.3, cy + hh * 0.05), (cx - hw * 0.05, cy + hh * 0.05),
          (cx - hw * 0.45, cy + hh * 0.6), (cx - hw * 0.55, cy + hh * 0.55)], scale(p.ground, 0.8)),
        ([(cx + hw * 0.05, cy + hh * 0.05), (cx + hw * 0.3, cy + hh * 0.05),
          (cx + hw * 0.55, cy + hh * 0.55), (cx + hw * 0.45, cy + hh * 0.6)], scale(p.ground, 0.8)),
        (capsule(cx, cy - hh, hw * 1.15, hh * 0.08), scale(p.hull, 0.5)),
        (capsule(cx, cy + hh, hw * 1.15, hh * 0.08), scale(p.hull, 0.5)),
    ]  # fmt: skip
    paint_shapes(c, tank)
    glow(c, cx, cy, hw * 1.5, light, 0.3)
    for _, x, liquid in glass:
        gx, gy = room.at(x, room.floor * 0.42, _)
        glow(c, gx, gy - c.h * 0.03 / (1.0 + _), max(1.0, c.h * 0.02 / (1.0 + _)), liquid, 0.4)
    return cx, light
