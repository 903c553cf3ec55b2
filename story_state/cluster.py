"""Near-duplicate ideas → clusters, fast: light stemming, Jaccard, and prefix filtering.

Two ideas are near-duplicates when the Jaccard similarity of their stemmed content-word sets
reaches the threshold ("the miners rebel", "Miners rebel!!" and "the mining crew starts a
rebellion" all meet at {min, rebel}). Comparing every pair would be quadratic; prefix
filtering (Bayardo et al., "Scaling up all pairs similarity search") makes it near-linear:
order each set's tokens rarest-first; two sets with Jaccard ≥ t must share a token among the
first ``|s| - ceil(t·|s|) + 1`` tokens of each, so only clusters sharing a prefix token are
compared at all. Identical token sets join in O(1), sets of incompatible sizes are skipped,
and each idea is compared with at most ``MAX_CHECKS`` clusters (oldest, so usually largest,
first), which keeps the worst case linear when thousands of ideas share common words.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
STOPWORDS = frozenset(
    "a an the and or but of to in on at for with into onto from by is are was were be been it "
    "its they them their then that this these those some just so very i we you he she his her "
    "our your my me us what who should would could will can do does did has have had not no "
    "happens happen next maybe think against about".split()
)
MAX_CHECKS = 64
_SUFFIXES = ("ations", "ation", "ings", "ing", "ions", "ion", "ers", "er", "ed", "es", "s", "ly")


def stem(word: str) -> str:
    """A deliberately light stemmer: enough to meet "rebellion"/"rebel", "mining"/"miners"."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]  # rebell → rebel, stopp → stop
    return word


def tokens(text: str) -> frozenset[str]:
    words = [w.lower() for w in _WORD.findall(text)]
    content = [stem(w) for w in words if w not in STOPWORDS]
    return frozenset(content or (stem(w) for w in words))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


@dataclass
class Group:
    """A cluster being built: its representative's tokens and its members' indexes."""

    tokens: frozenset[str]
    members: list[int] = field(default_factory=list)


def group_texts(texts: Sequence[str], threshold: float = 0.5) -> list[Group]:
    """Greedy single pass: each text joins the first group whose representative is similar.

    Groups come out in order of their first member; deterministic for a given input order.
    """
    if not 0 < threshold <= 1:
        raise ValueError("threshold must be in (0, 1]")
    sets = [tokens(t) for t in texts]
    freq: Counter[str] = Counter(tok for s in sets for tok in s)

    def prefix(s: frozenset[str]) -> list[str]:
        ordered = sorted(s, key=lambda tok: (freq[tok], tok))
        return ordered[: len(ordered) - math.ceil(threshold * len(ordered)) + 1]

    groups: list[Group] = []
    exact: dict[frozenset[str], int] = {}
    index: dict[str, list[int]] = defaultdict(list)  # prefix token → group numbers
    for i, s in enumerate(sets):
        if (known := exact.get(s)) is not None:
            groups[known].members.append(i)
            continue
        best, best_sim, checks = -1, 0.0, 0
        low, high = threshold * len(s), len(s) / threshold
        seen: set[int] = set()
        for tok in prefix(s):
            for g in index.get(tok, ()):
                if g in seen:
                    continue
                seen.add(g)
                rep = groups[g].tokens
                if not low <= len(rep) <= high:
                    continue
                checks += 1
                sim = jaccard(s, rep)
                if sim >= threshold and sim > best_sim:
                    best, best_sim = g, sim
                if checks >= MAX_CHECKS:
                    break
            if checks >= MAX_CHECKS:
                break
        if best >= 0:
            groups[best].members.append(i)
            exact[s] = best
            continue
        groups.append(Group(s, [i]))
        exact[s] = len(groups) - 1
        for tok in prefix(s):
            index[tok].append(len(groups) - 1)
    return groups
