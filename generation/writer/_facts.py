"""Story facts for the template writer: what a beat establishes, and which next beats it rules out.

A fact is kept in the story bible in plain words ("Mara is dead", "the ship has been found"),
and those words read back as the same fact, so a fact an operator types in works too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from generation.writer import _banks as bank
from generation.writer import _banks_scenes as scenes


class Fact(NamedTuple):
    text: str  # as the story bible keeps it
    rules_out: tuple[re.Pattern[str], ...]  # a next beat matching one repeats or contradicts it
    gone: str = ""  # the character this fact takes off the stage (dead or missing)


_NAME = r"(?P<who>[A-Z][\w'’-]*)"
_I = re.IGNORECASE
# Someone dies or vanishes: every later beat that names them contradicts it.
_DEAD = (
    rf"\b{_NAME}\s+(?i:dies|died|is dead|is killed|was killed|gets killed|is murdered|"
    r"was murdered|is shot dead|perishes|has died|does not survive|did not survive)\b",
    rf"(?i:\bkills?|\bkilled|\bmurders?|\bshoots?)\s+{_NAME}",
    rf"(?i:\bdeath of)\s+{_NAME}",
)
_MISSING = (
    rf"\b{_NAME}\s+(?i:vanishes|vanished|has vanished|disappears|disappeared|has disappeared|"
    r"goes missing|is missing|is gone|is taken|was taken|is lost)\b",
)
_NOT_HUMAN = (
    rf"\b{_NAME}\s+(?i:was never human|is not human|is no human|is an android|is a machine|"
    r"is a robot)\b",
)
_COMMAND = (rf"\b{_NAME}\s+(?i:takes command|is in command|seizes command)\b",)


def _named(
    patterns: Sequence[str], fact: str, rest: str, gone: bool
) -> Callable[[str], list[Fact]]:
    """A rule about someone: ``fact`` for each name the patterns find, ruling out beats that
    name them (followed by ``rest``, when given)."""
    compiled = [re.compile(p) for p in patterns]

    def find(text: str) -> list[Fact]:
        out = []
        for pattern in compiled:
            for m in pattern.finditer(text):
                who = _short_name(m.group("who"))
                if not who:
                    continue
                ruled = rf"\b{re.escape(who)}\b{rest}"
                out.append(Fact(fact.format(who=who), (re.compile(ruled),), who if gone else ""))
        return out

    return find


# Things that happen once: a later beat saying them again repeats the story.
_ONCE: tuple[tuple[str, str], ...] = (
    (
        r"\b(?:uncover|find|found|discover|dig|dug|unearth|locate|spot)\w*\b[^.]*?"
        r"\b(?:ship|wreck|derelict)\b|\b(?:buried|derelict|wrecked|ghost) (?:ship|hulk)\b|"
        r"\bship (?:has been|is|was) (?:found|discovered|uncovered)\b",
        "the ship has been found",
    ),
    (
        r"\bcaptain[’']s log\b[^.]*?\b(?:found|recovered|turns up)\b|"
        r"\b(?:find|finds|found|recover\w*)\b[^.]*?\blog\b",
        "the captain's log has been found",
    ),
    (
        r"\bair(?: supply)? (?:starts to fail|begins to fail|is failing|fails|runs? (?:out|low)|"
        r"is running out)\b",
        "the air supply is failing",
    ),
    (r"\bstars (?:go|went|have gone|are going) out\b", "the stars have gone out"),
    (r"\bsecond moon\b", "a second moon has risen"),
    (
        r"\bburn\w*\b[^.]*?\bcharts\b|\bcharts (?:are|were|have been) burn\w*",
        "the star charts are burned",
    ),
    (
        r"\b(?:steal|steals|stole|stolen)\b[^.]*?\bshuttle\b|\bshuttle (?:is|has been) stolen\b",
        "the shuttle has been stolen",
    ),
    (r"\bwak\w*\b[^.]*?\bsleeper\b|\bsleeper (?:wakes|is awake|awakens)\b", "the sleeper is awake"),
    (
        r"\bopen\w*\b[^.]*?\bsealed hatch\b|\bsealed hatch (?:opens|is open)\b",
        "the sealed hatch is open",
    ),
    (r"\bbeacon\b[^.]*?\btrap\b", "the beacon was a trap"),
    (r"\bcomputer\b[^.]*?\b(?:lie|lies|lying|lied)\b", "the ship's computer is lying"),
    (
        r"\bdecod\w*\b[^.]*?\bnumbers station\b|\bnumbers station (?:is|has been) decoded\b",
        "the numbers station has been decoded",
    ),
    (
        r"\bstranger (?:answers|has answered)\b|\bdistress call is answered\b",
        "a stranger has answered the distress call",
    ),
    (r"\b(?:someone|something) is living in the walls\b", "someone is living in the walls"),
    (r"\bwar fleet\b", "an old war fleet is out there"),
    (
        r"\bmessage (?:arrives |has arrived )?from the future\b",
        "a message has arrived from the future",
    ),
    (r"\bdead colony (?:sends|has sent) a reply\b", "the dead colony has sent a reply"),
)


def _once(pattern: str, fact: str) -> Callable[[str], list[Fact]]:
    compiled = re.compile(pattern, _I)
    return lambda text: [Fact(fact, (compiled,))] if compiled.search(text) else []


_OBJECTS = "|".join(re.escape(t.short) for t in bank.THINGS)
_GONE = re.compile(
    r"\b(?:trade|trades|traded|bury|buries|buried|lose|loses|destroy\w*|sell|sells|sold|"
    rf"smash\w*|throw|throws|threw|burn|burns|burned)\b[^.]*?\bthe (?P<a>{_OBJECTS})\b|"
    rf"\bthe (?P<b>{_OBJECTS}) (?:is|was|has been) (?:gone|lost|destroyed|buried|traded)\b",
    _I,
)


def _thing_gone(text: str) -> list[Fact]:
    """An object traded, buried or destroyed: later beats that use it contradict that."""
    out = []
    for m in _GONE.finditer(text):
        obj = (m.group("a") or m.group("b")).lower()
        out.append(Fact(f"the {obj} is gone", (re.compile(rf"\b{re.escape(obj)}\b", _I),)))
    return out


_RULES: tuple[Callable[[str], list[Fact]], ...] = (
    _named(_DEAD, "{who} is dead", "", gone=True),
    _named(_MISSING, "{who} is missing", "", gone=True),
    _named(_NOT_HUMAN, "{who} is not human", r"\s+(?i:was never human|is not human)", gone=False),
    _named(_COMMAND, "{who} is in command", r"\s+(?i:takes command|is in command)", gone=False),
    *(_once(p, f) for p, f in _ONCE),
    _thing_gone,
)
_NOT_NAMES = scenes.PRONOUNS | scenes.DETERMINERS | scenes.SMALL_WORDS


def _short_name(word: str) -> str:
    """How the options name a character: a bank character's short name, else the word itself."""
    word = re.sub(r"[’']s$", "", word).strip("'’-")
    if not word or word.lower() in _NOT_NAMES:
        return ""
    for character in bank.CHARACTERS:  # "Lind" is Mara; "Captain" alone is nobody in particular
        if word == character.short or word in character.full.split()[1:]:
            return character.short
    return word


def facts_in(texts: Iterable[str]) -> list[Fact]:
    """Every fact the texts establish, each once, in order of first mention."""
    seen: dict[str, Fact] = {}
    for text in texts:
        for rule in _RULES:
            for fact in rule(text):
                seen.setdefault(fact.text, fact)
    return list(seen.values())


def contradicts(beat: str, known: Sequence[Fact]) -> bool:
    """Whether a next beat would tell a known fact again, or go against it."""
    texts = {f.text for f in known}
    if any(pattern.search(beat) for fact in known for pattern in fact.rules_out):
        return True
    return any(f.text in texts for f in facts_in([beat]))


def gone(known: Sequence[Fact]) -> frozenset[str]:
    """Characters who are dead or missing, so no longer on stage."""
    return frozenset(f.gone for f in known if f.gone)
