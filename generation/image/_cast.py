"""Characters in an image prompt: who is in shot, and the fixed look their bible text implies.

Upstream (``story_state.memory.image_prompt_with_cast``) puts each character's look first, as
``"Name, look; Other, look; the prompt"``. A look is derived from the name and that text
alone (never from the episode's seed), so a character wears the same colours every episode.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

from generation.image._paint import RGB, mix, scale

Garment = Literal["jacket", "coat", "robe", "suit"]
Hair = Literal["cropped", "short", "long", "bun", "curly", "bald"]
Head = Literal["none", "helmet", "hood", "goggles", "headphones", "hat"]
Prop = Literal["none", "lantern", "satchel", "rifle", "staff"]
MAX_CAST = 3

_COLOURS: dict[str, RGB] = {
    "red": (0.78, 0.14, 0.12), "crimson": (0.62, 0.07, 0.12), "scarlet": (0.85, 0.16, 0.1),
    "maroon": (0.42, 0.08, 0.1), "burgundy": (0.45, 0.07, 0.14), "orange": (0.93, 0.45, 0.1),
    "amber": (0.92, 0.6, 0.15), "rust": (0.6, 0.25, 0.1), "copper": (0.72, 0.4, 0.2),
    "brass": (0.74, 0.6, 0.26), "gold": (0.86, 0.68, 0.18), "golden": (0.86, 0.68, 0.18),
    "yellow": (0.92, 0.8, 0.18), "mustard": (0.78, 0.62, 0.14), "olive": (0.42, 0.44, 0.16),
    "green": (0.18, 0.52, 0.24), "teal": (0.08, 0.45, 0.45), "cyan": (0.2, 0.7, 0.78),
    "turquoise": (0.2, 0.66, 0.62), "blue": (0.15, 0.3, 0.72), "navy": (0.08, 0.12, 0.36),
    "purple": (0.42, 0.17, 0.55), "violet": (0.5, 0.25, 0.7), "lavender": (0.68, 0.58, 0.82),
    "pink": (0.9, 0.5, 0.6), "magenta": (0.78, 0.15, 0.55), "white": (0.92, 0.92, 0.88),
    "cream": (0.9, 0.85, 0.7), "ivory": (0.9, 0.87, 0.76), "silver": (0.76, 0.78, 0.82),
    "platinum": (0.86, 0.85, 0.8), "grey": (0.5, 0.5, 0.52), "gray": (0.5, 0.5, 0.52),
    "black": (0.07, 0.07, 0.08), "brown": (0.38, 0.23, 0.12), "tan": (0.7, 0.54, 0.36),
    "khaki": (0.6, 0.56, 0.38), "beige": (0.78, 0.7, 0.55), "auburn": (0.55, 0.2, 0.1),
    "blonde": (0.88, 0.75, 0.42), "blond": (0.88, 0.75, 0.42), "ginger": (0.8, 0.4, 0.14),
    "porcelain": (0.9, 0.88, 0.86), "chrome": (0.8, 0.82, 0.86), "steel": (0.55, 0.58, 0.62),
}  # fmt: skip
_NOUNS = {
    "coat": "jacket blazer shirt sweater vest tunic uniform armour armor jersey cardigan "
    "coat greatcoat overcoat trenchcoat parka duster raincoat "
    "robe robes gown dress cloak cape poncho habit "
    "suit jumpsuit spacesuit flightsuit overalls coveralls scrubs fatigues",
    "hair": "hair beard bearded moustache mustache mohawk braid braids ponytail bun curls",
    "skin": "skin face android robot synthetic cyborg",
    "hands": "hands gloves gloved fingers",
    "head": "helmet hood hooded cowl goggles visor headphones headset hat cap fedora beret",
}
_NOUN = {word: part for part, words in _NOUNS.items() for word in words.split()}
_GARMENT: dict[str, Garment] = {
    **dict.fromkeys("coat greatcoat overcoat trenchcoat parka duster raincoat".split(), "coat"),
    **dict.fromkeys("robe robes gown dress cloak cape poncho habit".split(), "robe"),
    **dict.fromkeys(
        "suit jumpsuit spacesuit flightsuit overalls coveralls scrubs fatigues".split(), "suit"
    ),
}
_HAIR: dict[str, Hair] = {
    **dict.fromkeys("cropped buzzed crew shorn short".split(), "cropped"),
    **dict.fromkeys("long flowing braid braids braided ponytail".split(), "long"),
    **dict.fromkeys("bun topknot".split(), "bun"),
    **dict.fromkeys("curly curls afro wild".split(), "curly"),
    **dict.fromkeys("bald shaved shaven".split(), "bald"),
}
_HEAD: dict[str, Head] = {
    **dict.fromkeys("helmet visor spacesuit".split(), "helmet"),
    **dict.fromkeys("hood hooded cowl".split(), "hood"),
    **dict.fromkeys("goggles".split(), "goggles"),
    **dict.fromkeys("headphones headset".split(), "headphones"),
    **dict.fromkeys("hat cap fedora beret".split(), "hat"),
}
_PROP: dict[str, Prop] = {
    **dict.fromkeys("lantern lamp torch flashlight".split(), "lantern"),
    **dict.fromkeys("satchel bag backpack rucksack".split(), "satchel"),
    **dict.fromkeys("rifle gun blaster pistol carbine".split(), "rifle"),
    **dict.fromkeys("staff cane stick spear".split(), "staff"),
}
_HAIR_NOUNS = frozenset("bald shaved shaven braid braids ponytail bun topknot curls afro".split())
_THIN = frozenset("gaunt thin wiry lanky slender skinny tall lean bony".split())
_BROAD = frozenset("broad stout burly heavy big hulking massive heavyset".split())
_SMALL = frozenset("small short young little slight child kid".split())
_OLD = frozenset("old elderly aged grizzled ancient grey-bearded white-haired".split())
# Colours nobody named come from these, picked by a hash of the name and look.
_CLOTH = ("mustard", "rust", "teal", "olive", "burgundy", "navy", "tan", "orange", "brown", "green",
          "purple", "khaki", "cream", "blue")  # fmt: skip
_HAIRS = ("black", "brown", "auburn", "blonde", "black", "brown")
_SKINS: tuple[RGB, ...] = (
    (0.93, 0.76, 0.62), (0.82, 0.62, 0.46), (0.66, 0.45, 0.3), (0.45, 0.3, 0.2), (0.3, 0.2, 0.14),
)  # fmt: skip
_GEAR: dict[str, RGB] = {"helmet": (0.84, 0.82, 0.78), "goggles": _COLOURS["brass"]}
_PARTICLES = frozenset("the of de del della da di van von der den la le al bin du dos".split())
_NAME = re.compile(r"[^\W\d][\w'.\- ]{0,47}")


@dataclass(frozen=True)
class Look:
    """How one character is drawn: the same for the same name and bible text, always."""

    name: str
    coat: RGB
    legs: RGB
    skin: RGB
    hair: RGB
    hands: RGB
    accent: RGB  # belt and trim
    gear: RGB  # helmet, goggles, hat
    garment: Garment
    hair_style: Hair
    beard: bool
    head: Head
    prop: Prop
    build: float  # shoulder width, 1 = average
    stature: float  # height, 1 = average
    android: bool


def split_cast(prompt: str) -> tuple[tuple[tuple[str, str], ...], str]:
    """The leading ``Name, look`` segments, and the rest of the prompt (the scene itself)."""
    parts = prompt.split("; ")
    cast: list[tuple[str, str]] = []
    for part in parts[:-1]:  # the last segment is always the episode's own prompt
        name, sep, look = part.partition(", ")
        name = name.strip()
        if not (sep and look.strip() and _is_name(name)):
            break
        cast.append((name, look.strip()))
    return tuple(cast), "; ".join(parts[len(cast) :])


def _is_name(text: str) -> bool:
    """A proper name ("Mara Voss", "the android Sable"), not a clause ("Dawn in the cryo bay")."""
    words = text.split()
    if not (_NAME.fullmatch(text) and 1 <= len(words) <= 6 and words[-1][0].isupper()):
        return False
    return sum(not w[0].isupper() and w not in _PARTICLES for w in words) <= 2


def _digest(name: str, text: str) -> bytes:
    return hashlib.sha256(f"look\x1f{name.lower()}\x1f{text.lower()}".encode()).digest()


def _words(text: str) -> list[list[str]]:
    """Clauses of lower-case words; a hyphenated word keeps its parts too ("grey-bearded")."""
    clauses = re.split(r"[,;:()]|\bwith\b|\band\b", text.lower())
    out: list[list[str]] = []
    for clause in clauses:
        words: list[str] = []
        for word in re.findall(r"[a-z][a-z'-]*", clause):
            words.append(word)
            words.extend(p for p in word.split("-") if p != word and p)
        out.append(words)
    return out


def derive_look(name: str, text: str) -> Look:
    """Read colours, garment, hair, headgear, prop and build out of the bible's look text."""
    dig = _digest(name, text)
    named: dict[str, RGB] = {}
    garment: Garment = "jacket"
    hair: Hair = ("short", "long", "cropped", "bun", "short", "curly")[dig[0] % 6]
    head: Head = "none"
    prop: Prop = "none"
    flat = [w for clause in _words(text) for w in clause]
    for clause in _words(text):
        pending: RGB | None = None
        for i, word in enumerate(clause):
            if word in _COLOURS:
                pending = _COLOURS[word]
                if i > 0 and clause[i - 1] in ("faded", "washed", "worn", "dusty"):
                    pending = mix(pending, (0.62, 0.6, 0.56), 0.45)
                elif i > 0 and clause[i - 1] in ("dark", "deep", "stained"):
                    pending = scale(pending, 0.6)
                elif i > 0 and clause[i - 1] in ("pale", "light", "bright"):
                    pending = mix(pending, (1.0, 1.0, 1.0), 0.3)
            part = _NOUN.get(word)
            if part is not None and pending is not None:
                named.setdefault(part, pending)
                pending = None
        if pending is not None:
            named.setdefault("coat", pending)
    for clause in _words(text):
        # "long coat" is not long hair: style words count beside a hair word, or as one.
        about_hair = any(_NOUN.get(w) == "hair" for w in clause)
        for word in clause:
            if about_hair or word in _HAIR_NOUNS:
                hair = _HAIR.get(word, hair)
    for word in flat:
        garment = _GARMENT.get(word, garment) if garment == "jacket" else garment
        head = _HEAD.get(word, head) if head == "none" else head
        prop = _PROP.get(word, prop) if prop == "none" else prop
    words = set(flat)
    android = bool(words & {"android", "robot", "synthetic", "cyborg", "porcelain"})
    old = bool(words & _OLD)
    grey_hair = mix(_COLOURS["grey"], (0.9, 0.9, 0.88), 0.4)
    cloth = _COLOURS[_CLOTH[dig[1] % len(_CLOTH)]]
    coat = named.get("coat", cloth)
    if "faded" in words and "coat" not in named:
        coat = mix(coat, (0.62, 0.6, 0.56), 0.45)
    legs = coat if garment == "suit" else scale(_COLOURS[_CLOTH[dig[2] % len(_CLOTH)]], 0.55)
    skin = named.get("skin", (0.9, 0.88, 0.86) if android else _SKINS[dig[3] % len(_SKINS)])
    return Look(
        name=name,
        coat=coat,
        legs=legs,
        skin=skin,
        hair=named.get("hair", grey_hair if old else _COLOURS[_HAIRS[dig[4] % len(_HAIRS)]]),
        hands=named.get("hands", skin),
        accent=scale(coat, 0.45),
        gear=named.get("head", _GEAR.get(head, (0.3, 0.3, 0.32))),
        garment=garment,
        hair_style="bald" if android and "hair" not in named else hair,
        beard=bool(words & {"beard", "bearded", "moustache", "mustache"}),
        head=head,
        prop=prop,
        build=1.18 if words & _BROAD else 0.86 if words & _THIN else 1.0,
        stature=1.05 if "tall" in words else 0.92 if words & _SMALL else 1.0,
        android=android,
    )


def cast_looks(prompt: str) -> tuple[tuple[Look, ...], str]:
    """Up to three characters' looks, in the prompt's order, and the scene text left over."""
    cast, rest = split_cast(prompt)
    seen: set[str] = set()
    looks: list[Look] = []
    for name, text in cast:
        if name.lower() not in seen and len(looks) < MAX_CAST:
            seen.add(name.lower())
            looks.append(derive_look(name, text))
    return tuple(looks), rest
