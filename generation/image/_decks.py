"""The ship's thoroughfares and command: a ribbed corridor, an airlock, the bridge."""

from __future__ import annotations

import math

from generation.image._paint import RGB, Canvas, Shape, ellipse, mix, paint_shapes, scale
from generation.image._props import glow
from generation.image._room import Finish, Room, paint_shell, space_window, wash

Lit = tuple[float, RGB]  # where the key light is (x) and its colour, for the characters
_BLACK = (0.04, 0.04, 0.05)
_HAZARD = (0.95, 0.72, 0.1)


def paint_corridor(c: Canvas, lamp: RGB | None) -> Lit:
    """A long octagonal tube of ribs and ceiling lights, a glowing door at its end."""
    p = c.pal
    light = lamp or mix(p.lights, (1.0, 1.0, 1.0), 0.3)
    room = Room(c, c.w * c.uniform(0.42, 0.58), c.h * c.uniform(0.42, 0.52),
                c.uniform(0.09, 0.14), c.uniform(0.45, 0.65))  # fmt: skip
    wall = mix(p.hull, p.ground, c.uniform(0.2, 0.6))
    fin = Finish(wall, scale(p.ground, 1.6), scale(p.hull, 0.55), scale(light, 0.8), light,
                 scale(mix(light, p.ground, 0.55), 0.55), ribs=c.uniform(1.4, 2.2),
                 rib_width=0.14, strip=0.1, wall_lights=c.chance(0.6), fog=0.12)  # fmt: skip
    paint_shell(room, fin)
    d, hw, top = room.deep, 0.45 * room.right, 0.55 * room.top
    shapes: list[Shape] = []
    for s in (-1.0, 1.0):  # pipes along the upper walls
        x = room.left * 0.98 if s < 0 else room.right * 0.98
        for y in (room.top * 0.5, room.top * 0.38):
            shapes.append((room.side(x, y, y + c.h * 0.025, 0.0, d), scale(p.hull, 0.8)))
            shapes.append((room.side(x, y, y + c.h * 0.008, 0.0, d), mix(p.hull, light, 0.5)))
    door = room.front(-hw, top, hw, room.floor, d - 0.01)
    shapes.append((room.front(-hw * 1.15, top * 1.12, hw * 1.15, room.floor, d - 0.005), p.stripe))
    shapes.append((door, scale(wall, 0.5)))
    gap = c.w * 0.02
    shapes.append((room.front(-gap, top, gap, room.floor, d - 0.015), light))
    paint_shapes(c, shapes)
    gx, gy = room.at(0.0, top * 0.2, d)
    glow(c, gx, gy, c.unit * 0.05, light, 0.6)
    wash(c, gx, gy, c.unit * 0.25, scale(light, 0.3), 0.5)
    return room.vx, light


def _hatch(room: Room, cx: float, cy: float, r: float, open_: bool) -> list[Shape]:
    """A round pressure door ringed with hazard stripes, bolted, with a porthole."""
    p = room.c.pal
    shapes: list[Shape] = []
    n = 28
    for i in range(n):
        a0, a1 = 2 * math.pi * i / n, 2 * math.pi * (i + 1) / n
        ring = [
            (cx + math.cos(a) * r * k, cy + math.sin(a) * r * k)
            for a, k in ((a0, 1.25), (a1, 1.25), (a1 + 0.18, 1.02), (a0 + 0.18, 1.02))
        ]
        shapes.append((ring, _HAZARD if i % 2 else _BLACK))  # fmt: skip
    shapes.append((ellipse(cx, cy, r * 1.04, r * 1.04, n=48), scale(p.hull, 0.35)))
    if open_:
        return shapes
    shapes.append((ellipse(cx, cy, r * 0.96, r * 0.96, n=48), mix(p.hull, p.ground, 0.4)))
    shapes.append((ellipse(cx, cy, r * 0.7, r * 0.7, n=40), scale(p.hull, 0.6)))
    for k in range(8):
        a = 2 * math.pi * k / 8 + 0.2
        bx, by = cx + math.cos(a) * r * 0.84, cy + math.sin(a) * r * 0.84
        shapes.append((ellipse(bx, by, r * 0.05, r * 0.05, n=10), scale(p.hull, 0.9)))
    shapes.append((ellipse(cx, cy, r * 0.3, r * 0.3, n=32), scale(p.hull, 0.25)))
    return shapes


def paint_airlock(c: Canvas, lamp: RGB | None) -> Lit:
    """A short chamber closed by a great round hatch; red warning lamps either side."""
    p = c.pal
    light = lamp or (1.0, 0.26, 0.18)
    room = Room(c, c.w * c.uniform(0.44, 0.56), c.h * c.uniform(0.42, 0.5),
                c.uniform(0.42, 0.55), c.uniform(0.3, 0.5))  # fmt: skip
    grey = mix(p.hull, p.ground, 0.45)
    fin = Finish(grey, scale(p.ground, 1.5), scale(grey, 0.6), scale(grey, 0.8),
                 mix(light, p.lights, 0.3), scale(light, 0.18), ribs=2.2, rib_width=0.1,
                 strip=0.0, fog=0.1)  # fmt: skip
    paint_shell(room, fin)
    d = room.deep
    cx, cy = room.at(0.0, room.floor * 0.12, d)
    r = 0.34 * min(room.back * c.w, room.back * c.h * 1.2)
    open_ = c.chance(0.4)
    stripes: list[Shape] = []
    for i in range(10):  # hazard chevrons on the floor at the threshold
        x0 = room.left + (room.right - room.left) * i / 10
        x1 = x0 + (room.right - room.left) / 20
        stripes.append((room.flat(room.floor, x0, x1, d - 0.25, d - 0.1), _HAZARD))
    paint_shapes(c, stripes, opacity=0.75)
    paint_shapes(c, _hatch(room, cx, cy, r, open_))
    space_window(c, ellipse(cx, cy, r * (0.96 if open_ else 0.22), r * (0.96 if open_ else
                 0.22), n=40), open_)  # fmt: skip
    for s in (-1.0, 1.0):
        lx, ly = cx + s * r * 1.6, cy - r * 0.9
        paint_shapes(c, [(ellipse(lx, ly, r * 0.09, r * 0.09, n=16), mix(light, (1, 1, 1), 0.3))])
        glow(c, lx, ly, r * 0.12, light, 1.2)
        wash(c, lx, ly, c.unit * 0.2, scale(light, 0.25), 0.6)
    return cx, light


def paint_bridge(c: Canvas, lamp: RGB | None) -> Lit:
    """A low command deck: a wide window onto space, rows of lit consoles, the empty chair."""
    p = c.pal
    light = lamp or p.lights
    room = Room(c, c.w * c.uniform(0.4, 0.6), c.h * c.uniform(0.3, 0.38),
                c.uniform(0.5, 0.62), 0.2)  # fmt: skip
    dark = scale(p.hull, 0.3)
    fin = Finish(dark, scale(p.ground, 1.3), scale(dark, 0.8), dark, light,
                 scale(p.zenith, 0.8), ribs=1.0, strip=0.0, wall_lights=True, fog=0.05)  # fmt: skip
    paint_shell(room, fin)
    d = room.deep
    win = room.front(room.left * 0.92, room.top * 0.85, room.right * 0.92, room.floor * 0.3, d)
    space_window(c, win, True)
    bars: list[Shape] = []
    for k in range(1, 5):
        x = room.left * 0.92 + (room.right - room.left) * 0.92 * k / 5
        bars.append((room.front(x - c.w * 0.012, room.top * 0.85, x + c.w * 0.012,
                                room.floor * 0.3, d - 0.01), scale(p.hull, 0.2)))  # fmt: skip
    paint_shapes(c, bars)
    consoles: list[Shape] = []
    lights: list[Shape] = []
    for row, (d0, y0) in enumerate(((d * 0.75, 0.45), (d * 0.3, 0.55))):
        for s in (-1.0, 1.0):
            x0 = (room.right if s > 0 else room.left) * (0.95 if row else 0.85)
            x1 = x0 * (0.25 + 0.15 * row)
            xa, xb = min(x0, x1), max(x0, x1)
            top = room.floor * y0
            consoles += room.prism(xa, xb, top, room.floor, d0, d0 + 0.18, scale(p.hull, 0.45))
            for _ in range(int(c.rng.integers(10, 22))):
                lx = c.uniform(xa, xb)
                ly = top + (room.floor - top) * c.uniform(0.08, 0.45)
                rgb = (light, p.stripe, (0.5, 1.0, 0.6), (1.0, 0.3, 0.2))[int(c.rng.integers(4))]
                lights.append((room.front(lx, ly, lx + c.w * 0.012, ly + c.h * 0.01, d0 - 0.005),
                               rgb))  # fmt: skip
    paint_shapes(c, consoles + lights)
    u, y = c.unit, room.floor
    back = room.front(-u * 0.1, y * 0.3, u * 0.1, y * 0.8, d * 0.5)
    rest = room.front(-u * 0.05, y * 0.12, u * 0.05, y * 0.28, d * 0.5)
    paint_shapes(c, [(back, scale(p.hull, 0.15)), (rest, scale(p.hull, 0.12))])
    wx, wy = room.at(0.0, 0.0, d)
    wash(c, wx, wy, c.unit * 0.3, scale(mix(p.planet[0], light, 0.5), 0.25), 0.5)
    return wx, mix(p.planet[0], light, 0.5)
