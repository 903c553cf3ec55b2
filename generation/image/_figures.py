"""Characters drawn in their bible look: flat 1970s paperback-cover figures, lit from one side."""

from __future__ import annotations

import math

import numpy as np

from generation.image._cast import Look
from generation.image._paint import (
    RGB,
    Canvas,
    Point,
    Shape,
    box,
    col,
    ellipse,
    mix,
    over,
    paint_shapes,
    raster,
    scale,
    smoothstep,
)
from generation.image._props import glow
from generation.image._scenes import Placed

Part = tuple[list[Point], RGB]
_DARK = (0.06, 0.05, 0.06)


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float) -> list[Point]:
    return ellipse(cx, cy, rx, ry, math.radians(a0), math.radians(a1), n=16)


def _hair(look: Look) -> tuple[list[Part], list[Part]]:
    """Hair behind the head and hair over it, by style; a helmet or hood hides it."""
    hc = look.hair
    back: list[Part] = []
    front: list[Part] = []
    if look.head in ("helmet", "hood"):
        return back, front
    if look.hair_style == "long":
        back.append(([(-0.074, -0.93), (0.074, -0.93), (0.09, -0.76), (-0.09, -0.76)], hc))
    elif look.hair_style == "curly":
        back.append((ellipse(0.0, -0.925, 0.092, 0.085, n=24), hc))
    elif look.hair_style == "bun":
        back.append((ellipse(0.0, -0.99, 0.035, 0.03, n=16), hc))
    if look.hair_style != "bald":
        thick = 0.05 if look.hair_style == "cropped" else 0.065
        front.append((_arc(0.0, -0.918, 0.067, thick, 180.0, 360.0), hc))
        if look.hair_style != "cropped":
            front.append((box(-0.068, -0.93, -0.05, -0.88), hc))
            front.append((box(0.05, -0.93, 0.068, -0.88), hc))
    if look.beard:
        front.append((_arc(0.0, -0.885, 0.058, 0.06, 0.0, 180.0), hc))
    return back, front


def _head(look: Look) -> tuple[list[Part], list[Part]]:
    """What sits behind the face and over it: helmet, hood, goggles, headphones or a hat."""
    acc = look.gear
    back: list[Part] = []
    front: list[Part] = []
    if look.head == "helmet":
        back.append((ellipse(0.0, -0.91, 0.1, 0.1, n=28), acc))
        front.append((ellipse(0.012, -0.905, 0.065, 0.048, n=20), (0.05, 0.07, 0.1)))
        front.append((ellipse(0.03, -0.92, 0.018, 0.01, n=8), (0.85, 0.9, 0.95)))
    elif look.head == "hood":
        back.append((ellipse(0.0, -0.915, 0.092, 0.095, n=24), scale(look.coat, 0.8)))
        back.append(([(-0.09, -0.9), (0.09, -0.9), (0.13, -0.8), (-0.13, -0.8)], look.coat))
        front.append((_arc(0.0, -0.93, 0.07, 0.06, 180.0, 360.0), scale(look.coat, 0.8)))
    elif look.head == "goggles":
        front.append((box(-0.066, -0.93, 0.066, -0.905), _DARK))
        for x in (-0.027, 0.027):
            front.append((ellipse(x, -0.918, 0.022, 0.018, n=12), acc))
    elif look.head == "headphones":
        front.append((_arc(0.0, -0.93, 0.074, 0.075, 180.0, 360.0), _DARK))
        for x in (-0.068, 0.068):
            front.append((ellipse(x, -0.9, 0.022, 0.03, n=12), scale(acc, 0.6)))
    elif look.head == "hat":
        front.append((box(-0.105, -0.975, 0.105, -0.955), scale(acc, 0.8)))
        front.append((box(-0.062, -1.05, 0.062, -0.96), acc))
    return back, front


def _body(look: Look) -> list[Part]:
    """Legs, coat, torso and arms; x across (height units), feet at 0, head towards -1."""
    b, coat = look.build, look.coat
    sw, ww = 0.13 * b, 0.1 * b
    parts: list[Part] = []
    if look.garment != "robe":
        for s in (-1.0, 1.0):
            parts.append(([(s * ww, -0.5), (s * 0.005, -0.5), (s * 0.02, -0.03),
                           (s * 0.078, -0.03)], look.legs))  # fmt: skip
            parts.append((box(min(s * 0.088, s * 0.012), -0.065, max(s * 0.088, s * 0.012), 0.0),
                          _DARK))  # fmt: skip
    hem = {"coat": -0.22, "robe": -0.015}.get(look.garment)
    if hem is not None:
        flare = 0.15 if look.garment == "coat" else 0.18
        parts.append(([(-ww, -0.53), (ww, -0.53), (flare * b, hem), (-flare * b, hem)], coat))
        parts.append((box(-0.004, -0.52, 0.004, hem), scale(coat, 0.55)))
    low = -0.44 if look.garment == "jacket" else -0.5
    parts.append(([(-sw + 0.02, -0.83), (sw - 0.02, -0.83), (sw, -0.8), (ww * 1.05, low),
                   (-ww * 1.05, low), (-sw, -0.8)], coat))  # fmt: skip
    for s in (-1.0, 1.0):
        arm = [(sw - 0.045, -0.81), (sw + 0.012, -0.8), (sw + 0.036, -0.6), (sw + 0.032, -0.44),
               (sw - 0.012, -0.44), (sw - 0.02, -0.6)]  # fmt: skip
        parts.append(([(s * x, y) for x, y in arm], scale(coat, 0.92)))
        parts.append((ellipse(s * (sw + 0.01), -0.42, 0.026, 0.03, n=12), look.hands))
    if look.garment != "robe":
        parts.append((box(-ww * 1.04, -0.53, ww * 1.04, -0.505), scale(look.accent, 0.8)))
    parts.append(([(-0.035, -0.83), (0.035, -0.83), (0.0, -0.795)], look.skin))
    return parts


def _prop(look: Look) -> list[Part]:
    """What the character carries, on their right (the lamp hand) or slung across."""
    sw = 0.13 * look.build
    if look.prop == "satchel":
        return [
            (
                [(-sw, -0.82), (-sw + 0.03, -0.83), (sw * 0.9, -0.5), (sw * 0.9 - 0.03, -0.49)],
                (0.2, 0.12, 0.07),
            ),
            (box(sw * 0.6, -0.56, sw + 0.06, -0.43), (0.42, 0.26, 0.12)),
        ]
    if look.prop == "rifle":
        return [([(-0.2, -0.5), (-0.17, -0.53), (0.22, -0.78), (0.2, -0.75)], (0.1, 0.1, 0.11))]
    if look.prop == "staff":
        return [(box(sw + 0.0, -1.08, sw + 0.02, 0.0), (0.35, 0.22, 0.1))]
    if look.prop == "lantern":
        x = sw + 0.01
        return [(box(x - 0.004, -0.42, x + 0.004, -0.37), _DARK),
                (box(x - 0.03, -0.38, x + 0.03, -0.3), (0.55, 0.42, 0.18)),
                (box(x - 0.02, -0.37, x + 0.02, -0.315), (1.0, 0.85, 0.5))]  # fmt: skip
    return []


def figure_parts(look: Look) -> list[Part]:
    """Every polygon of the character, back to front, in height units."""
    hair_back, hair_front = _hair(look)
    head_back, head_front = _head(look)
    face: list[Part] = [
        (box(-0.026, -0.86, 0.026, -0.8), scale(look.skin, 0.85)),
        (ellipse(0.0, -0.905, 0.058, 0.072, n=24), look.skin),
    ]
    if look.android:
        face += [(box(x - 0.012, -0.915, x + 0.012, -0.905), (0.6, 0.95, 1.0)) for x in (-0.024,
                 0.024)]  # fmt: skip
        face.append((box(-0.002, -0.975, 0.002, -0.85), scale(look.skin, 0.7)))
    else:
        face += [(box(x - 0.008, -0.915, x + 0.008, -0.905), _DARK) for x in (-0.024, 0.024)]
    return [*hair_back, *head_back, *_body(look), *face, *hair_front, *head_front, *_prop(look)]


def paint_character(c: Canvas, who: Placed, light_x: float, light: RGB) -> None:
    """One character in the foreground: a soft floor shadow, the figure, side light and rim."""
    tall = who.height * c.h * who.look.stature
    x, foot = who.x * c.w, who.foot * c.h
    face = 1.0 if light_x >= x else -1.0
    paint_shapes(c, [(ellipse(x, foot, tall * 0.2, tall * 0.03, n=20), _DARK)], opacity=0.45)
    shapes: list[Shape] = [
        ([(x + px * tall * face, foot + py * tall) for px, py in pts], rgb)
        for pts, rgb in figure_parts(who.look)
    ]
    hit = raster(c, shapes)
    if hit is None:
        return
    x0, y0, rgba = hit
    rgb, alpha = rgba[..., :3], rgba[..., 3]
    across = (c.xs[:, x0 : x0 + alpha.shape[1]] - x) * face / max(tall * 0.14, 1e-3)
    lit = (0.6 + 0.48 * smoothstep(-0.8, 0.8, across))[..., None]
    shift = max(1, round(tall / 140))
    rim = np.clip(alpha - np.roll(alpha, int(face) * shift, axis=1), 0.0, 1.0)
    shaded = rgb * lit + col(light) * (0.55 * rim)[..., None]
    shaded += (col(mix(light, (0.5, 0.5, 0.5), 0.5)) - shaded) * 0.06
    over(c.img[y0 : y0 + alpha.shape[0], x0 : x0 + alpha.shape[1]], shaded, alpha)
    if who.look.prop == "lantern":
        gx = x + (0.13 * who.look.build + 0.01) * tall * face
        glow(c, gx, foot - 0.34 * tall, tall * 0.05, (1.0, 0.75, 0.4), 0.9)
        glow(c, gx, foot - 0.34 * tall, tall * 0.22, (1.0, 0.6, 0.3), 0.18)


def paint_cast(c: Canvas, cast: tuple[Placed, ...], light_x: float, light: RGB) -> None:
    """The characters, back to front (smaller, further ones first)."""
    for who in sorted(cast, key=lambda p: p.foot):
        paint_character(c, who, light_x, light)
