"""The offline default writer: deterministic retro sci-fi radio-serial scripts from word banks."""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeVar

from generation.clip.subtitles import split_lines
from generation.writer import _banks as bank
from generation.writer import _banks_scenes as lines
from generation.writer import _compose as compose
from generation.writer import _facts as facts
from generation.writer import _scenes
from generation.writer.base import Script, WriteRequest
from story_state.memory import Lore

T = TypeVar("T")

WORDS_PER_SECOND = 2.5
SUBTITLE_WIDTH = 42
OPTION_MAX_CHARS = 60
INPUT_MAX_CHARS = 200
_MAX_WORD_CHARS = 30  # longer "words" are unspeakable and would overflow a subtitle line
_MAX_IDEAS = 2

_MARKUP = re.compile(r"\{[^{}]*\}|<[^<>]*>|[{}<>\\]")
_TRAILING = ".!?,;:…-–— "
_SENTENCE_END = (".", "!", "?", ":", ";", '"')


def clean(text: str, limit: int = INPUT_MAX_CHARS) -> str:
    """Untrusted text → one safe line: no control characters or markup, clipped at a word."""
    text = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)
    words = [w[:_MAX_WORD_CHARS] for w in _MARKUP.sub(" ", text).split()]
    out = ""
    for word in words:
        if len(out) + len(word) + 1 > limit:
            break
        out = f"{out} {word}" if out else word
    return out


def as_clause(text: str, proper: frozenset[str]) -> str:
    """Lower-case the first letter (unless it starts a proper noun) and drop end punctuation."""
    text = text.rstrip(_TRAILING).strip()
    if not text:
        return text
    first = text.split()[0].strip("\"'’,")
    keep = first in proper or (len(first) > 1 and first.isupper()) or first in ("I", "I'm")
    return text if keep else text[0].lower() + text[1:]


def _digest(*parts: object) -> int:
    key = "\x1f".join(str(p) for p in parts).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")


def _proper_nouns(texts: Sequence[str]) -> frozenset[str]:
    """Capitalised words seen mid-sentence in the story so far, plus the banks' names."""
    found = {w for c in bank.CHARACTERS for w in c.full.split() if w[0].isupper()}
    found.update(w for s in bank.SHIPS for w in s.split() if w[0].isupper())
    for text in texts:
        tokens = text.split()
        for before, token in itertools.pairwise(tokens):
            word = token.strip("\"'’.,;:!?()")
            if word[:1].isupper() and not before.endswith(_SENTENCE_END):
                found.add(word)
    return frozenset(found)


def _first_found(items: Sequence[T], name: Callable[[T], str], texts: Sequence[str]) -> list[T]:
    """Bank items named in ``texts``, in order of first mention (texts searched in order)."""
    hits: list[T] = []
    for text in texts:
        spots: list[tuple[int, T]] = []
        for item in items:
            m = re.search(rf"\b{re.escape(name(item))}\b", text)
            if m and item not in hits:
                spots.append((m.start(), item))
        hits.extend(item for _, item in sorted(spots, key=lambda s: s[0]))
    return hits


def _sentence(template: str, slots: dict[str, str]) -> str:
    text = template.format(**slots)
    return text[0].upper() + text[1:]


_LEAD, _OTHER = compose.LEAD, compose.OTHER  # who the templates name; see _compose


def _introduce(text: str, marker: str, who: bank.Character, known: bool) -> str:
    head, sep, tail = text.partition(marker)
    if not sep:
        return text
    name = who.short if known else who.full
    if not head.rstrip() or head.rstrip().endswith((".", "!", "?")):
        name = name[0].upper() + name[1:]
    return head + name + tail.replace(marker, who.short)


class _Cast(NamedTuple):
    lead: bank.Character
    other: bank.Character
    met: frozenset[str]  # short names the listeners already know
    place: bank.Place
    ship: str
    thing: bank.Thing


def _cast(
    premise: str,
    beats: Sequence[str],
    earlier: Sequence[str],
    rng: random.Random,
    gone: frozenset[str] = frozenset(),
) -> _Cast:
    """Who and where: whatever the story so far established, else what the premise suggests.

    Characters in ``gone`` (dead or missing) are off the stage.
    """
    here = [c for c in bank.CHARACTERS if c.short not in gone] or list(bank.CHARACTERS)
    met = _first_found(here, lambda c: c.short, earlier[::-1])  # in story order: a steady lead
    named = _first_found(here, lambda c: c.short, [premise])
    roles = _first_found(here, lambda c: c.role, [premise.lower()])
    lead = (met or named or roles or [rng.choice(here)])[0]
    now = _first_found(here, lambda c: c.short, beats[:1])  # whoever this beat names
    rest = [c for c in [*now, *met, *_first_found(here, lambda c: c.short, beats)] if c != lead]
    other = rest[0] if rest else rng.choice([c for c in here if c != lead])
    story = random.Random(_digest(premise))  # settings hang on the story, so they hold unspoken

    def recall(items: Sequence[T], name: Callable[[T], str], texts: Sequence[str]) -> T:
        return [*_first_found(items, name, texts), story.choice(items)][0]

    return _Cast(
        lead,
        other,
        frozenset(c.short for c in _first_found(bank.CHARACTERS, lambda c: c.short, earlier)),
        recall(bank.PLACES, lambda p: p.name, [*earlier, premise]),
        recall(bank.SHIPS, lambda s: s, [*earlier, premise]),
        recall(bank.THINGS, lambda t: t.spoken, earlier),
    )


class TemplateWriter:
    """Offline, deterministic writer: same request, same script.

    Each episode stages its beat as a scene: a recap of the last beat (episode 1 states the
    premise instead, the only time it is said), the beat happening to the cast, the community's
    ideas happening in it too, what it costs, and a cliffhanger (or, at the end, a close).
    The facts the story has established rule out next beats that would repeat or contradict
    them. Only English has templates; for any other ``context.language`` it still writes
    English rather than failing. Ideas are woven in anonymously; crediting authors is the
    post's job.
    """

    def write(self, request: WriteRequest) -> Script:
        rng = random.Random(_digest(request.seed, request.number, request.beat))
        ctx = request.context
        number = max(1, request.number)
        show = clean(ctx.title, 60)
        premise = clean(ctx.premise) or bank.DEFAULT_PREMISE
        previous = sorted(ctx.previous, key=lambda p: p.number)
        earlier = [clean(p.narration, 4000) for p in reversed(previous)]  # latest first
        beat = clean(request.beat).rstrip(_TRAILING) or rng.choice(bank.DEFAULT_BEATS)
        ideas = [t for t in (clean(i.text, 160).rstrip(_TRAILING) for i in request.ideas) if t][
            :_MAX_IDEAS
        ]
        ideas = [i for i in ideas if not _same(i, beat) and not _same(i, premise)]
        proper = _proper_nouns([premise, show, beat, *ideas, *earlier])
        beats_so_far = [beat, *(clean(p.beat) for p in reversed(previous))]
        known = facts.facts_in(
            [
                *(clean(f) for f in ctx.facts),
                *(clean(p.beat) for p in previous),
                *earlier,
            ]
        )
        told_facts = {text: facts.facts_in([text]) for text in [beat, *ideas]}
        settled = {f.text for f in known}
        new = {
            f.text: (f, text)
            for text, fs in told_facts.items()
            for f in fs
            if f.text not in settled
        }
        # Whoever is dead or missing, this episode's dead included, no longer acts in it.
        gone = facts.gone([*known, *(f for f, _ in new.values())])
        cast = _cast(premise, beats_so_far, earlier, rng, gone)
        told = _scenes.analyse(beat, proper)
        is_premise = _same(beat, premise)
        story_ends = request.is_final and bool(_ENDING.search(beat))  # "End the story here" won
        noun = _scenes.key_noun(_scenes.analyse(premise, proper) if is_premise else told, proper)
        noun = "" if story_ends else noun
        last_beat = clean(previous[-1].beat).rstrip(_TRAILING) if previous else ""
        last_is_premise = bool(last_beat) and _same(last_beat, premise)
        slots = {
            "short": _LEAD,
            "oshort": _OTHER,
            "ship": cast.ship,
            "place": cast.place.name,
            "at": cast.place.at,
            "object": cast.thing.spoken,
            "room": rng.choice(bank.ROOMS),
            "show": show,
            "premise": _capitalised(premise.rstrip(_TRAILING)),
            "noun": noun,
            "prev": "" if last_is_premise else as_clause(last_beat, proper),
            "prevnoun": _scenes.key_noun(_scenes.analyse(last_beat, proper), proper),
            "beat": as_clause(beat, proper),
        }

        def pick(templates: Sequence[str], **extra: str) -> list[str]:
            filled = {**slots, **extra}
            usable = [t for t in templates if all(filled.get(s) for s in _SLOT.findall(t))]
            return [_sentence(t, filled) for t in rng.sample(usable, len(usable))]

        opening = _opening(pick, number, earlier)
        action: list[str] = []
        if not is_premise and not story_ends:
            frames = _FRAMES[told.kind]
            if cast.lead.short in told.names:  # the beat's own subject acts; no "Varga ... Varga"
                frames = tuple(f for f in frames if "{short}" not in f)
            action = pick(frames)
        reactions = [] if story_ends else pick(lines.REACTIONS if noun else lines.REACTIONS_PLAIN)
        if request.is_final:
            results = pick(lines.RESOLUTIONS if noun else lines.RESOLUTIONS_PLAIN)
        else:
            results = pick(lines.CONSEQUENCES if noun else lines.CONSEQUENCES_PLAIN)
        closers = _closers(pick, request.is_final, earlier)
        woven = [_idea(pick, idea, proper, i) for i, idea in enumerate(ideas)]

        object_line = pick(bank.OBJECT_FILLERS)[0]
        fillers = [f for f in pick(bank.FILLERS) if not earlier or f not in earlier[0]]
        fillers.insert(0 if rng.random() < 0.6 else len(fillers) // 2, object_line)
        scene = compose.Scene(opening, action, reactions, woven, results, closers)
        body, chosen = compose.assemble(
            scene,
            fillers,
            _target_words(request.target_seconds),
            someone_in_beat=bool(told.names),
        )
        body = _introduce(body, _LEAD, cast.lead, cast.lead.short in cast.met)
        narration = " ".join(
            _introduce(body, _OTHER, cast.other, cast.other.short in cast.met).split()
        )
        names = {"short": cast.lead.short, "oshort": cast.other.short, "room": slots["room"]}
        if not re.search(rf"\b{cast.other.short}\b", narration):
            names.pop("oshort")  # no next beat about someone the listeners have not met
        shown = object_line in chosen or any(cast.thing.spoken in t for t in earlier)
        obj = cast.thing.short if shown else ""
        options: tuple[str, ...] = ()
        if not request.is_final:
            used = [beat, *(clean(p.beat) for p in previous)]
            options = _options(
                request, names, obj, used, [*known, *(f for f, _ in new.values())], rng
            )
        return Script(
            title=f"Episode {number}: {_scenes.title(beat, told, rng, request.is_final)}",
            narration=narration,
            subtitles=split_lines(narration, SUBTITLE_WIDTH),
            image_prompt=_image_prompt(clean(ctx.style, 120), beat, cast, rng),
            options=options,
            lore=(*_lore(cast, narration), *(Lore("fact", f.text, src) for f, src in new.values())),
        )


_SLOT = re.compile(r"\{(\w+)\}")
_ENDING = re.compile(r"\b(?:story|tale)\b.*\bend\b|\bend the story\b", re.IGNORECASE)
_FRAMES = {"order": lines.ORDER_FRAMES, "event": lines.EVENT_FRAMES, "thing": lines.THING_FRAMES}
_Pick = Callable[..., list[str]]


def _same(a: str, b: str) -> bool:
    """Whether two texts tell the same thing (a beat that is the premise, give or take)."""
    x, y = _norm(a), _norm(b)
    if not x or not y:
        return False
    short, long = sorted((x, y), key=len)
    if len(short.split()) >= 4 and f" {short} " in f" {long} ":
        return True
    wx, wy = set(x.split()), set(y.split())
    return len(wx & wy) / len(wx | wy) >= 0.6


def _opening(pick: _Pick, number: int, earlier: Sequence[str]) -> list[str]:
    """Episode 1 states the premise; later ones recap the last beat, never as the last did."""
    if number == 1:
        return pick(lines.OPENERS_FIRST)
    last = _scenes.recap_form(earlier[0]) if earlier else None
    forms = [t for i, t in enumerate(lines.RECAPS) if i != last]
    return pick(forms) or pick(lines.RECAPS_PLAIN)


def _closers(pick: _Pick, is_final: bool, earlier: Sequence[str]) -> list[str]:
    if is_final:
        return [f"{c} {bank.THE_END}" for c in pick(bank.ENDINGS)]
    recent = " ".join(earlier[:3])
    fresh = [c for c in pick(bank.CLIFFHANGERS) if c not in recent]
    return fresh or pick(bank.CLIFFHANGERS)


def _idea(pick: _Pick, idea: str, proper: frozenset[str], index: int) -> list[str]:
    """A community idea as something that happens in the scene (or that the crew decides).

    The first idea takes every other frame and the second the rest, so two never share one.
    """
    kind = _scenes.analyse(idea, proper).kind
    frames = {"order": lines.IDEA_ORDERS, "event": lines.IDEA_EVENTS}.get(kind, lines.IDEA_THINGS)
    return pick(frames[index % 2 :: 2], idea=as_clause(idea, proper))


def _lore(cast: _Cast, narration: str) -> tuple[Lore, ...]:
    """The people and the place this episode puts on stage, for the story bible."""
    people = [c for c in (cast.lead, cast.other) if re.search(rf"\b{c.short}\b", narration)]
    entries = [Lore("character", c.short, c.full, c.visual, keywords=(c.role,)) for c in people]
    entries.append(Lore("place", cast.place.name, cast.place.at, cast.place.visual))
    return tuple(entries)


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _target_words(seconds: float) -> int:
    if not math.isfinite(seconds) or seconds <= 0:
        seconds = 20.0
    return max(10, min(400, round(WORDS_PER_SECOND * seconds)))


def _image_prompt(style: str, beat: str, cast: _Cast, rng: random.Random) -> str:
    scene = [cast.lead.visual, cast.place.visual, cast.thing.visual, rng.choice(bank.LIGHTS)]
    look = f"{rng.choice(bank.MOODS)} mood, retro 1970s science fiction, film grain"
    return ", ".join(p for p in [style, clean(beat, 120), *scene, look] if p)


def _norm(text: str) -> str:
    """Lower case, words only: how two beats are compared."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _options(
    request: WriteRequest,
    slots: dict[str, str],
    obj: str,
    used: Sequence[str],
    known: Sequence[facts.Fact],
    rng: random.Random,
) -> tuple[str, ...]:
    """2..max_options distinct next beats: none told before on this path, none against a fact."""
    wanted = min(4, max(2, request.max_options))
    taken = {_norm(b) for b in used}
    templates = [*bank.OPTIONS, *(bank.OBJECT_OPTIONS if obj else ())]
    templates = [t for t in templates if "{oshort}" not in t or "oshort" in slots]
    out: list[str] = []
    for template in rng.sample(templates, len(templates)):
        option = _sentence(template, {**slots, "obj": obj}).rstrip(_TRAILING)
        if len(option) > OPTION_MAX_CHARS or _norm(option) in taken:
            continue
        taken.add(_norm(option))
        if not facts.contradicts(option, known):
            out.append(option)
        if len(out) == wanted:
            break
    return tuple(out)
