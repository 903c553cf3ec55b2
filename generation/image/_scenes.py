"""Which scene a still shows: keyword rules over the prompt, then the seed for what is left open.

A setting word ("cryo bay", "storm", "salt flats") beats a generic one ("ship", "station"),
and among settings the first one named wins: prompts lead with the beat, and the place's
standing description follows it. The cast's looks are left out of the search, so a
character's "lab coat" never turns the scene into a laboratory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from generation.image._cast import Look, cast_looks
from generation.image._paint import RGB

SceneKind = Literal[
    "cryo", "corridor", "airlock", "bridge", "engine", "lab",
    "ship", "orbit", "wreck", "storm", "base", "city", "ocean", "ice", "desert", "mountains",
    "cave",
]  # fmt: skip
Craft = Literal["none", "ship", "station"]
KINDS: tuple[SceneKind, ...] = get_args(SceneKind)
INTERIORS: frozenset[SceneKind] = frozenset(KINDS[:6])
SPACE: frozenset[SceneKind] = frozenset({"ship", "orbit"})
# Without a setting word the seed chooses, mostly open landscapes as before.
_FALLBACK: tuple[tuple[SceneKind, float], ...] = (
    ("mountains", 0.2), ("desert", 0.14), ("ocean", 0.12), ("city", 0.06), ("ice", 0.06),
    ("base", 0.05), ("storm", 0.04), ("wreck", 0.04), ("cave", 0.04), ("ship", 0.05),
    ("orbit", 0.04), ("corridor", 0.04), ("bridge", 0.03), ("cryo", 0.03), ("engine", 0.02),
    ("airlock", 0.02), ("lab", 0.02),
)  # fmt: skip

# kind tier: phrases (regular expressions, whole words). Tier 2 names a setting, tier 1 hints.
_RULES = r"""
cryo 2: cryo\w* | stasis | sleepers? | hibernation | (?:sleep|stasis|cryo) ?pods? | freezers?
corridor 2: corridors? | hallways? | passageways? | gangways? | cargo holds? | vaults?
corridor 2: hangars? | bulkheads? | (?:in|inside) the walls | maintenance shafts?
airlock 2: airlocks? | hatch(?:es)? | docking (?:port|ring|collar) | spacewalk | eva
bridge 2: bridge | helm | cockpit | flight deck | command deck | observation deck | viewscreen
bridge 2: radio (?:shack|room) | control room
bridge 1: mutiny | mutineers?
engine 2: engine ?rooms? | engines? | reactors? | reactor gallery | turbines? | furnaces?
engine 2: (?:power|drive|warp) core | boiler | generators?
lab 2: labs? | laboratory | laboratories | hydroponics(?: bay)? | specimens? | experiments?
lab 2: infirmary | med ?bay | sick ?bay | greenhouse
wreck 2: wrecks? | wreckage | wrecked | derelict | crashed | crash site | hulks? | buried ship
storm 2: storms? | sandstorms? | dust ?storms? | tempest | lightning | blizzards? | hurricane
storm 2: cyclone | gale
base 2: base | outposts? | relay | relays | beacons? | radio mast | masts? | antennas? | camp
base 2: bunkers? | research station | listening post | landing pad
city 2: city | cities | colony | colonies | domes? | towers? | settlements? | ruins | streets
city 2: metropolis | spires?
ocean 2: oceans? | seas? | water | lakes? | shore | beach | tides? | waves | flooded | drowned
ocean 2: underwater | harbou?r
ice 2: ice | icy | frozen | frost | snow | glaciers? | tundra | ice moon | permafrost
desert 2: deserts? | dunes? | salt | sands? | salt flats? | flats | wasteland | badlands
mountains 2: mountains? | peaks? | ridges? | crags? | cliffs? | canyons? | valley | summit
cave 2: caves? | caverns? | mines? | tunnels? | grotto | underground | catacombs?
ship 1: ships? | spaceships? | starships? | rockets? | freighters? | cruisers? | shuttles?
ship 1: fleet | vessels? | hull
orbit 1: stations? | orbital | orbit | satellites? | wheel | asteroids? | nebula | deep space
corridor 1: aboard | inside | interior
"""
_LIGHTS: tuple[tuple[str, RGB], ...] = (
    (r"emergency|red alert|red (?:light|glow)|alarm", (1.0, 0.22, 0.16)),
    (r"amber|sodium|orange (?:light|glow)|console glow", (1.0, 0.62, 0.26)),
    (r"blue (?:light|glow|starlight)|cold blue|moonlight", (0.45, 0.66, 1.0)),
    (r"green (?:light|glow)|radar glow", (0.42, 1.0, 0.52)),
)


def _compile() -> list[tuple[SceneKind, int, re.Pattern[str]]]:
    rules = []
    for line in _RULES.strip().splitlines():
        head, _, body = line.partition(":")
        kind, tier = head.split()
        alts = "|".join(a.strip() for a in body.split(" | "))  # spaces only for reading
        rules.append((_kind(kind), int(tier), re.compile(rf"(?<![\w-])(?:{alts})(?![\w-])")))
    return rules


def _kind(name: str) -> SceneKind:
    for kind in KINDS:
        if kind == name:
            return kind
    raise ValueError(name)


_COMPILED = _compile()


@dataclass(frozen=True)
class Placed:
    """A character in the frame: centre x (0..1 of width), feet and height (0..1 of height)."""

    look: Look
    x: float
    foot: float
    height: float

    def torso(self, w: int, h: int) -> tuple[int, int, int, int]:
        """Pixel box (left, top, right, bottom) well inside the character's clothed chest."""
        tall = self.height * h * self.look.stature
        half = 0.06 * tall * self.look.build
        cx, top = self.x * w, self.foot * h - 0.78 * tall
        return int(cx - half), int(top), int(cx + half), int(self.foot * h - 0.56 * tall)


@dataclass(frozen=True)
class Scene:
    """What goes into one still, decided from the prompt's words and then the seed."""

    kind: SceneKind
    craft: Craft
    city: bool
    figure: bool  # a small, anonymous figure somewhere in a landscape
    cast: tuple[Placed, ...]
    light: RGB | None  # a lamp colour the prompt names ("emergency red")

    @property
    def interior(self) -> bool:
        return self.kind in INTERIORS


def choose_kind(text: str) -> SceneKind | None:
    """The setting the text names: the highest tier, then the earliest mention."""
    low = text.lower()
    best: tuple[int, int, SceneKind] | None = None
    for kind, tier, pattern in _COMPILED:
        m = pattern.search(low)
        if m and (best is None or (-tier, m.start()) < (best[0], best[1])):
            best = (-tier, m.start(), kind)
    return None if best is None else best[2]


def _mentions(text: str, kind: SceneKind) -> bool:
    return any(k == kind and p.search(text.lower()) for k, _, p in _COMPILED)


_FIGURE = re.compile(
    r"\b(?:astronauts?|explorers?|figures?|travell?ers?|pilots?|captain|strangers?|wanderers?"
    r"|crew|someone|silhouettes?)\b"
)


def plan_scene(prompt: str, rng: np.random.Generator) -> Scene:
    """Keywords in the prompt choose the scene; whatever they leave open, the seed picks."""
    looks, text = cast_looks(prompt)
    rolls = rng.random(6)
    kinds, weights = zip(*_FALLBACK, strict=True)
    fallback = kinds[int(np.searchsorted(np.cumsum(weights) / sum(weights), rolls[0]))]
    kind = choose_kind(text) or fallback
    craft: Craft = "ship" if rolls[1] < 0.3 else "station" if rolls[1] < 0.5 else "none"
    if _mentions(text, "ship") or kind == "ship":
        craft = "ship"
    elif _mentions(text, "orbit") or kind == "orbit":
        craft = "station"
    light = next((rgb for pat, rgb in _LIGHTS if re.search(pat, text.lower())), None)
    return Scene(
        kind=kind,
        craft=craft,
        city=kind == "city" or _mentions(text, "city") or bool(rolls[2] < 0.2),
        figure=bool(_FIGURE.search(text.lower())) or bool(rolls[4] < 0.4),
        cast=_place_cast(looks, kind in INTERIORS, rng),
        light=light,
    )


def _place_cast(
    looks: tuple[Look, ...], inside: bool, rng: np.random.Generator
) -> tuple[Placed, ...]:
    """Characters stand in the foreground, spread across the frame, the lead the largest."""
    if not looks:
        return ()
    slots = {1: [(0.27, 0.0)], 2: [(0.24, 0.0), (0.76, 0.04)],
             3: [(0.2, 0.0), (0.8, 0.03), (0.52, 0.12)]}[len(looks)]  # fmt: skip
    flip = rng.random() < 0.5
    size = rng.uniform(0.5, 0.6) if inside else rng.uniform(0.4, 0.5)
    out = []
    for look, (x, back) in zip(looks, slots, strict=True):
        foot = (0.97 if inside else 0.95) - back * 0.6 + float(rng.uniform(-0.015, 0.015))
        out.append(Placed(look, 1.0 - x if flip else x, foot, float(size) * (1.0 - back)))
    return tuple(out)
