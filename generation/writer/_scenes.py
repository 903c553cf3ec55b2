"""Reading a beat for the template writer: its kind, key nouns, a title, the recap it follows."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import NamedTuple

from generation.writer import _banks_scenes as scenes

_PUNCT = "\"'’.,;:!?()…-–—"
_BREAK = (",", ";", ":", ".", "!", "?", "…", "—", "–")
_POSSESSIVE = re.compile(r"[’']s$")


class Beat(NamedTuple):
    """What the writer needs to know about a beat to stage it."""

    kind: str  # "order" ("Follow the trail"), "event" ("The signal repeats"), "thing" ("Mutiny")
    phrases: tuple[str, ...]  # its noun phrases without article, the key one first
    names: tuple[str, ...]  # the proper names it mentions


def _verb_forms(base: str) -> set[str]:
    forms = {base, base + "s", base + "es", base + "ed", base + "d", base + "ing"}
    if base.endswith("y"):
        forms |= {base[:-1] + "ies", base[:-1] + "ied"}
    if base.endswith("e"):
        forms.add(base[:-1] + "ing")
    if (
        len(base) > 2
        and base[-1] not in "aeiouwy"
        and base[-2] in "aeiou"
        and base[-3] not in "aeiou"
    ):
        forms |= {base + base[-1] + "ing", base + base[-1] + "ed"}
    return forms


VERB_FORMS = frozenset(f for v in scenes.VERBS for f in _verb_forms(v)) | scenes.IRREGULAR_VERBS


def _core(token: str) -> str:
    return token.strip(_PUNCT)


def _stops(word: str, before: str, after: str) -> bool:
    """Whether ``word`` cannot continue a noun phrase, given the words around it.

    A base-form verb ends a phrase only after a plural ("the stars go"); after a singular it is
    still a noun ("the distress call"). A word in -s just before an article is a verb the banks
    do not know ("a courier crosses a ...").
    """
    if word in scenes.VERBS:
        return before.endswith("s") and not before.endswith(("ss", "'s", "’s"))
    return (
        word in VERB_FORMS
        or word in scenes.SMALL_WORDS
        or word in scenes.DETERMINERS
        or word in scenes.ADVERBS
        or word in scenes.PRONOUNS
        or (word.endswith("ly") and len(word) > 5 and word not in scenes.NOT_ADVERBS)
        or (word.endswith("ing") and len(word) > 5)
        or (word.endswith("s") and not word.endswith("ss") and after in scenes.DETERMINERS)
        or not any(c.isalpha() for c in word)
    )


def _opens(word: str) -> bool:
    """Whether ``word`` can be the first word of a noun phrase after an article."""
    return not (
        word in scenes.IRREGULAR_VERBS
        or word in scenes.SMALL_WORDS
        or word in scenes.DETERMINERS
        or word in scenes.ADVERBS
        or word in scenes.PRONOUNS
        or not any(c.isalpha() for c in word)
    )


def analyse(text: str, proper: frozenset[str]) -> Beat:
    """A beat's kind, noun phrases (key first) and names, by a few rules of English word order."""
    tokens = text.split()
    cores = [_core(t) for t in tokens]
    lows = [c.lower() for c in cores]
    names = tuple(dict.fromkeys(c for c in cores if c in proper and c[:1].isupper()))
    # (words, role: 0 what is acted on, 1 who acts, 2 after a preposition; where it starts)
    found: list[tuple[tuple[str, ...], int, int]] = []
    i = 0
    while i < len(tokens):
        low = lows[i]
        opens = low in scenes.DETERMINERS or (
            i == 0
            and cores[i] not in proper
            and low not in scenes.IMPERATIVE_VERBS
            and low not in VERB_FORMS
            and _opens(low)
        )
        if opens:
            j = i + 1 if low in scenes.DETERMINERS else i
            run: list[str] = []
            while j < len(tokens) and cores[j]:
                after = lows[j + 1] if j + 1 < len(lows) else ""
                if _stops(lows[j], lows[j - 1], after) if run else not _opens(lows[j]):
                    break
                run.append(cores[j])
                j += 1
                if tokens[j - 1].endswith(_BREAK):
                    break
            words = [w for w in run if w not in names] if len(run) > 1 else run
            if words and not all(w in proper for w in words):
                before = lows[i - 1] if i else ""
                role = 2 if before in scenes.PREPOSITIONS else 0 if before in VERB_FORMS else 1
                found.append((tuple(words[-3:]), role, i))
            i = max(j, i + 1)
            continue
        i += 1
    # The key phrase: a bare noun that opens the beat ("Mutiny in the hold"), else the longest,
    # and between equals what is acted on, then who acts, then the rest.
    kind = _kind(lows)
    ranked = sorted(found, key=lambda f: (not (kind == "thing" and f[2] == 0), -len(f[0]), f[1]))
    phrases = tuple(dict.fromkeys(_phrase(f[0]) for f in ranked if _phrase(f[0])))
    return Beat(kind, phrases, names)


def _phrase(words: Sequence[str]) -> str:
    """The phrase's words, without a possessive left hanging at its end."""
    kept = list(words[1:] if len(words) > 1 and words[0].lower() == "own" else words)
    if kept:
        kept[-1] = _POSSESSIVE.sub("", kept[-1])
    return " ".join(w for w in kept if w)


def _kind(lows: Sequence[str]) -> str:
    if not lows:
        return "thing"
    first, second = lows[0], (lows[1] if len(lows) > 1 else "")
    if first in scenes.NOMINAL_HEADS and (not second or second in scenes.PREPOSITIONS):
        return "thing"
    if first in scenes.IMPERATIVE_VERBS:
        return "order"
    if not any(w in VERB_FORMS for w in lows):
        return "thing"
    return "event"


def key_noun(beat: Beat, proper: frozenset[str]) -> str:
    """The key phrase as it reads after "the": lower case, unless it is a name."""
    if not beat.phrases:
        return ""
    words = beat.phrases[0].split()
    return " ".join(w if w in proper else w.lower() for w in words)


def _title_case(words: Sequence[str]) -> str:
    out = []
    for i, word in enumerate(words):
        low = word.lower()
        if i and low in scenes.SMALL_WORDS:
            out.append(low)
        else:
            out.append(word[:1].upper() + word[1:])
    return " ".join(out)


def dangling(title: str) -> bool:
    """Whether a title ends on a word that needs another after it ("of the", "Ship's")."""
    last = title.split()[-1] if title.split() else ""
    low = last.lower().strip(_PUNCT)
    return (
        not low
        or low in scenes.SMALL_WORDS
        or low in scenes.DETERMINERS
        or bool(_POSSESSIVE.search(last))
        or last.endswith(_BREAK)
    )


def _fitting(form: str, phrase: str, name: str = "") -> str:
    """``form`` filled with as much of ``phrase`` as fits, trimmed from the front (the head noun
    of an English noun phrase comes last); "" when not even the head noun fits."""
    words = phrase.split()
    for start in range(len(words)):
        title = form.format(p=_title_case(words[start:]), name=name)
        if len(title) <= scenes.TITLE_MAX_CHARS and not dangling(title):
            return title
    return ""


def title(text: str, beat: Beat, rng: random.Random, is_final: bool) -> str:
    """A title made of the beat's own words, whole words only, never ending mid-phrase."""
    candidates: list[str] = []
    words = [w.strip(",;:") for w in text.rstrip(_PUNCT).split()]
    whole = _title_case(words)
    if words and len(whole) <= scenes.TITLE_MAX_CHARS and not dangling(whole):
        candidates.append(whole)
    forms = scenes.FINAL_TITLE_FORMS if is_final else scenes.TITLE_FORMS
    for i, phrase in enumerate(beat.phrases[:2]):
        for form in forms if i == 0 else forms[:1]:
            candidates.append(_fitting(form, phrase))
        for name in beat.names[:1]:
            for form in scenes.TITLE_NAME_FORMS:
                candidates.append(_fitting(form, phrase, name))
    candidates = [c for c in dict.fromkeys(candidates) if c]
    if candidates:
        return rng.choice(candidates)
    return _fallback_title(words)


def _fallback_title(words: Sequence[str]) -> str:
    """The beat's first words, cut at a word boundary and never on a connecting word."""
    kept: list[str] = []
    for word in words:
        if len(_title_case([*kept, word])) > scenes.TITLE_MAX_CHARS:
            break
        kept.append(word)
    while kept and dangling(_title_case(kept)):
        kept.pop()
    return _title_case(kept) if kept else "The Long Static"


_RECAP_PATTERNS = tuple(
    re.compile("^" + re.sub(r"\\\{\w+\\\}", ".+?", re.escape(t)), re.IGNORECASE)
    for t in scenes.RECAPS
)


def recap_form(narration: str) -> int | None:
    """Which recap form an episode opened with, if any."""
    for i, pattern in enumerate(_RECAP_PATTERNS):
        if pattern.match(narration):
            return i
    return None
