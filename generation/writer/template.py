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
from generation.writer.base import PreviousEpisode, Script, WriteRequest
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


def _words(parts: Sequence[str]) -> int:
    return sum(len(p.split()) for p in parts)


# Templates name characters through these markers; the first mention of someone the story has
# not met yet becomes their full introduction. clean() strips control characters from user
# text, so a marker can only ever come from a template.
_LEAD, _OTHER = "\x00L\x00", "\x00O\x00"


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


def _cast(premise: str, beats: Sequence[str], earlier: Sequence[str], rng: random.Random) -> _Cast:
    """Who and where: whatever the story so far established, else what the premise suggests."""
    met = _first_found(bank.CHARACTERS, lambda c: c.short, earlier)
    named = _first_found(bank.CHARACTERS, lambda c: c.short, [premise])
    roles = _first_found(bank.CHARACTERS, lambda c: c.role, [premise.lower()])
    lead = (met or named or roles or [rng.choice(bank.CHARACTERS)])[0]
    rest = [
        c for c in [*met, *_first_found(bank.CHARACTERS, lambda c: c.short, beats)] if c != lead
    ]
    other = rest[0] if rest else rng.choice([c for c in bank.CHARACTERS if c != lead])
    story = random.Random(_digest(premise))  # settings hang on the story, so they hold unspoken

    def recall(items: Sequence[T], name: Callable[[T], str], texts: Sequence[str]) -> T:
        return [*_first_found(items, name, texts), story.choice(items)][0]

    return _Cast(
        lead,
        other,
        frozenset(c.short for c in met),
        recall(bank.PLACES, lambda p: p.name, [*earlier, premise]),
        recall(bank.SHIPS, lambda s: s, [*earlier, premise]),
        recall(bank.THINGS, lambda t: t.spoken, earlier),
    )


class TemplateWriter:
    """Offline, deterministic writer: same request, same script.

    Only English has templates; for any other ``context.language`` it still writes English
    rather than failing. Ideas are woven in anonymously; crediting authors is the post's job.
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
        proper = _proper_nouns([premise, show, beat, *ideas, *earlier])
        beats_so_far = [beat, *(clean(p.beat) for p in reversed(previous))]
        cast = _cast(premise, beats_so_far, earlier, rng)
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
            "prev": as_clause(clean(previous[-1].beat), proper) if previous else "",
        }

        def pick(templates: Sequence[str], **extra: str) -> list[str]:
            usable = [t for t in templates if ("{show}" not in t or show)]
            usable = [t for t in usable if ("{prev}" not in t or slots["prev"])]
            return [_sentence(t, {**slots, **extra}) for t in rng.sample(usable, len(usable))]

        target = _target_words(request.target_seconds)
        openers = pick(bank.OPENERS_FIRST if number == 1 else bank.OPENERS_LATER)
        beat_clause = as_clause(beat, proper)
        imperative = beat_clause.split()[0].lower() in bank.IMPERATIVE_VERBS
        beats = pick(bank.IMPERATIVE_FRAMES if imperative else bank.BEAT_FRAMES, beat=beat_clause)

        def woven(frames: Sequence[str]) -> list[str]:
            return [
                _sentence(f, {**slots, "idea": as_clause(i, proper)})
                for f, i in zip(frames, ideas, strict=False)
            ]

        closers = pick(bank.ENDINGS if request.is_final else bank.CLIFFHANGERS)
        if request.is_final:
            closers = [f"{c} {bank.THE_END}" for c in closers]
        core = [openers[0], beats[0], *woven(rng.sample(bank.IDEA_FRAMES, len(ideas))), closers[0]]
        if _words(core) > target * 1.15:  # tight budget: fall back to the shortest frames
            short = [min(o, key=lambda s: len(s.split())) for o in (openers, beats, closers)]
            core = [short[0], short[1], *woven(sorted(bank.IDEA_FRAMES, key=len)), short[2]]

        object_line = pick(bank.OBJECT_FILLERS)[0]
        fillers = pick(bank.FILLERS)
        fillers.insert(0 if rng.random() < 0.6 else len(fillers) // 2, object_line)
        chosen = _fill(_words(core), target, fillers)
        body = " ".join([core[0], *chosen[:1], *core[1:-1], *chosen[1:], core[-1]])
        body = _introduce(body, _LEAD, cast.lead, cast.lead.short in cast.met)
        narration = " ".join(
            _introduce(body, _OTHER, cast.other, cast.other.short in cast.met).split()
        )
        names = {"short": cast.lead.short, "oshort": cast.other.short, "room": slots["room"]}
        if not re.search(rf"\b{cast.other.short}\b", narration):
            names.pop("oshort")  # no next beat about someone the listeners have not met
        shown = object_line in chosen or any(cast.thing.spoken in t for t in earlier)
        obj = cast.thing.short if shown else ""
        return Script(
            title=f"Episode {number}: {_title(beat, rng, request.is_final)}",
            narration=narration,
            subtitles=split_lines(narration, SUBTITLE_WIDTH),
            image_prompt=_image_prompt(clean(ctx.style, 120), beat, cast, rng),
            options=() if request.is_final else _options(request, names, obj, beat, previous, rng),
            lore=_lore(cast, narration),
        )


def _lore(cast: _Cast, narration: str) -> tuple[Lore, ...]:
    """The people and the place this episode puts on stage, for the story bible."""
    people = [c for c in (cast.lead, cast.other) if re.search(rf"\b{c.short}\b", narration)]
    entries = [Lore("character", c.short, c.full, c.visual, keywords=(c.role,)) for c in people]
    entries.append(Lore("place", cast.place.name, cast.place.at, cast.place.visual))
    return tuple(entries)


def _fill(count: int, target: int, fillers: Sequence[str]) -> list[str]:
    """Atmosphere sentences, in order, until the narration is about ``target`` words long."""
    chosen: list[str] = []
    for filler in fillers:
        if count >= target - 2:
            break
        if count + len(filler.split()) <= target + 3:
            chosen.append(filler)
            count += len(filler.split())
    return chosen


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _target_words(seconds: float) -> int:
    if not math.isfinite(seconds) or seconds <= 0:
        seconds = 20.0
    return max(10, min(400, round(WORDS_PER_SECOND * seconds)))


def _title(beat: str, rng: random.Random, is_final: bool) -> str:
    if is_final and rng.random() < 0.5:
        return rng.choice(bank.FINAL_TITLES)
    words = [w.strip(",;:") for w in beat.rstrip(_TRAILING).split()]
    article = next((i for i, w in enumerate(words) if w.lower() in ("the", "a", "an")), None)
    phrase: list[str] = []
    for word in words[article + 1 : article + 3] if article is not None else []:
        if word.lower() in bank.SMALL_WORDS or not word.replace("'", "").isalpha():
            break
        phrase.append(_capitalised(word[:14]))
    if phrase and rng.random() < 0.6:
        return rng.choice(bank.TITLE_FROM_BEAT).format(p=" ".join(phrase))
    return rng.choice(bank.TITLES)


def _image_prompt(style: str, beat: str, cast: _Cast, rng: random.Random) -> str:
    scene = [cast.lead.visual, cast.place.visual, cast.thing.visual, rng.choice(bank.LIGHTS)]
    look = f"{rng.choice(bank.MOODS)} mood, retro 1970s science fiction, film grain"
    return ", ".join(p for p in [style, clean(beat, 120), *scene, look] if p)


def _norm(text: str) -> str:
    return " ".join(text.lower().rstrip(_TRAILING).split())


def _options(
    request: WriteRequest,
    slots: dict[str, str],
    obj: str,
    beat: str,
    previous: Sequence[PreviousEpisode],
    rng: random.Random,
) -> tuple[str, ...]:
    """2..max_options distinct next beats, none repeating this beat or an earlier one."""
    wanted = min(4, max(2, request.max_options))
    taken = {_norm(beat), *(_norm(p.beat) for p in previous)}
    templates = [*bank.OPTIONS, *(bank.OBJECT_OPTIONS if obj else ())]
    templates = [t for t in templates if "{oshort}" not in t or "oshort" in slots]
    out: list[str] = []
    for template in rng.sample(templates, len(templates)):
        option = _sentence(template, {**slots, "obj": obj}).rstrip(_TRAILING)
        if len(option) <= OPTION_MAX_CHARS and _norm(option) not in taken:
            taken.add(_norm(option))
            out.append(option)
        if len(out) == wanted:
            break
    return tuple(out)
