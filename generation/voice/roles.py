"""Who speaks which words: narration cut into the narrator's and each character's runs.

Shared by the voices that give characters voices of their own (Piper, Coqui).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

Segment = tuple[str | None, str]  # (character name or None for the narrator, words)
_QUOTES: Final = {'"': '"', "“": "”", "«": "»", "„": "“"}


def split_voices(text: str, voices: Iterable[str]) -> list[Segment]:
    """Cut narration into (character or None, words) runs for the characters in ``voices``.

    ``NAME: words`` at the start of a line gives the rest of the line to NAME (surrounding
    quotes dropped); ``NAME: "words"`` anywhere gives the quoted words to NAME. Names match
    whole words, ignoring case; the ``NAME:`` label itself is not spoken.
    """
    by_key = {n.casefold(): n for n in voices if n}
    if not by_key:
        return [(None, " ".join(text.split()))] if text.strip() else []
    names = "|".join(re.escape(n) for n in sorted(by_key, key=len, reverse=True))
    label = re.compile(rf"(?<!\w)({names})\s*:\s*", re.IGNORECASE)
    segments: list[Segment] = []

    def add(who: str | None, words: str) -> None:
        words = " ".join(words.split())
        if not words:
            return
        if segments and segments[-1][0] == who:
            segments[-1] = (who, f"{segments[-1][1]} {words}")
        else:
            segments.append((who, words))

    for line in text.splitlines():
        pos = 0
        for match in label.finditer(line):
            if match.start() < pos:
                continue
            who, after = by_key[match.group(1).casefold()], match.end()
            close = _QUOTES.get(line[after : after + 1])
            end = line.find(close, after + 1) if close else -1
            if end > after:
                add(None, line[pos : match.start()])
                add(who, line[after + 1 : end])
                pos = end + 1
            elif not line[pos : match.start()].strip():
                add(who, line[after:].strip().strip('"“”«»„'))
                pos = len(line)
                break
        add(None, line[pos:])
    return segments
