"""The ASCII shortcuts read ASCII text exactly as the general (Unicode) code does.

Most replies are ASCII, so moderation and clustering take cheaper paths for them: simpler
character classes, a skeleton that is the text lower-cased, a blocklist pattern blind to case
searched once. Each shortcut is compared here with the general code on random ASCII text
built from the characters that matter (letters of both cases, digits, "_", punctuation,
spaces, tabs, line breaks).
"""

from __future__ import annotations

import random
import re
import string

import pytest

from story_state import cluster, injection, text
from story_state.text import compile_blocklist, reject_reason

ALPHABET = string.ascii_letters[:8] + "XYZ" + "0129_" + ".,-'!?:;@#/<>*" + "   \t\n"


def _samples(count: int = 3000, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    words = ["ignore", "previous", "instructions", "miners", "rebel", "darn", "i g n o r e"]
    out = []
    for _ in range(count):
        parts = [
            rng.choice(words)
            if rng.random() < 0.3
            else "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 6)))
            for _ in range(rng.randint(1, 8))
        ]
        out.append(rng.choice(("", " ", ".", "-")).join(parts))
    return out


SAMPLES = _samples()


@pytest.mark.parametrize(
    ("ascii_pattern", "general"),
    [
        (injection._INNER_PUNCT_ASCII, injection._INNER_PUNCT),
        (injection._SPACED_ASCII, injection._SPACED),
    ],
)
def test_ascii_patterns_match_as_the_general_ones(
    ascii_pattern: re.Pattern[str], general: re.Pattern[str]
) -> None:
    for sample in SAMPLES:
        for form in (sample, sample.lower()):
            assert ascii_pattern.findall(form) == general.findall(form), form
            assert ascii_pattern.sub("|", form) == general.sub("|", form), form


def test_words_split_from_ascii_text_are_the_ones_the_general_patterns_find() -> None:
    for sample in SAMPLES:
        lower = sample.lower()
        general = [w.lower() for w in cluster._WORD.findall(sample)]
        assert cluster._WORD_ASCII.findall(lower) == general, sample
        if "'" not in sample:
            assert cluster._ascii_words(sample) == general, sample
        assert text._ascii_words(sample) == text._WORDS.findall(lower), sample
        for form in (sample, lower):
            assert injection._ascii_letters(form) == injection._LETTERS.findall(form), form


def test_tokens_after_forget_are_the_same() -> None:
    before = [cluster.tokens(sample) for sample in SAMPLES[:500]]
    cluster.forget()
    assert [cluster.tokens(sample) for sample in SAMPLES[:500]] == before
    assert cluster.tokens("The miners rebel") == cluster.tokens("miners REBELLION")


def test_ascii_skeleton_is_the_text_lower_cased_without_controls() -> None:
    assert text.skeleton("Open THE\tHatch\x00") == "open thehatch"
    for sample in SAMPLES:
        assert text.skeleton(sample) == sample.lower().translate(text._ASCII_CONTROLS)


def test_a_pattern_that_turns_case_off_is_still_searched_in_the_skeleton() -> None:
    """(?-i:...) matches the lower-cased skeleton where it missed the text as typed."""
    sensitive = compile_blocklist(["re:(?-i:darn)"])
    assert reject_reason("DARN it all", "DARN it all", blocklist=sensitive) == "blocked word"
    assert text._case_blind(sensitive[0]) is False
    blind = compile_blocklist(["darn", r"re:\bbuy\s+now\b"])
    assert all(text._case_blind(pattern) for pattern in blind)
    assert reject_reason("DaRn it", "DaRn it", blocklist=blind) == "blocked word"
    assert reject_reason("BUY  now", "BUY  now", blocklist=blind) == "blocked word"
    assert reject_reason("darning socks", "darning socks", blocklist=blind) is None


SPECIAL = [
    *("WWW.x", "wWw.", "ww.w", "a:b", "<SCRIPT", "JavaScript:x", "< /a>", "x@y", "#tag"),
    *("http://", "İwww.", "ſcam", "SCAM!", "re-bel", "a.b", "a-b", "darnit", "_darn"),
]


def test_the_quick_looks_decide_as_the_patterns_do() -> None:
    for sample in [*SAMPLES, *SPECIAL]:
        assert text._reformable(sample) == bool(text._REFORMABLE.search(sample)), sample
        quick = ("<" in sample or ":" in sample) and text._MARKUP.search(sample)
        assert bool(quick) == bool(text._MARKUP.search(sample)), sample


def test_plain_words_skipped_by_a_substring_test_block_what_the_patterns_block() -> None:
    """A plain word's pattern is not searched in ASCII text that does not hold the word:
    the verdicts are those of searching every pattern in the text and its skeleton."""
    words = ["darn", "Rebel", "a.b", "i-g", "X_Y", "scam", "(?-i:x)", "naïve", "re:\\bbuy\\s+now"]
    blocklist = compile_blocklist(words)
    assert [text._plain_word(p) for p in blocklist[:4]] == ["darn", "rebel", "rebel", "a.b"]
    assert text._plain_word(compile_blocklist([r"re:\bbuy"])[0]) is None
    for sample in [*SAMPLES, *SPECIAL, "buy   now", "DARN", "i-G!", "x_y", "A.B", "(?-I:X)"]:
        cleaned = " ".join(sample.split())
        if text._ALNUM.search(cleaned) is None or "<" in cleaned:
            continue  # refused before the blocklist is read
        found = reject_reason(cleaned, cleaned, blocklist=blocklist, max_length=10**6)
        bare = text.skeleton(cleaned)
        searched = any(p.search(cleaned) or p.search(bare) for p in blocklist)
        if found in (None, "blocked word"):
            assert (found == "blocked word") == searched, sample
