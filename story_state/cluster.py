"""Near-duplicate ideas → clusters, fast: light stemming, Jaccard, and prefix filtering.

Two ideas are near-duplicates when the Jaccard similarity of their stemmed content-word sets
reaches the threshold ("the miners rebel", "Miners rebel!!" and "the mining crew starts a
rebellion" all meet at {min, rebel}). Comparing every pair would be quadratic; prefix
filtering (Bayardo et al., "Scaling up all pairs similarity search") makes it near-linear:
order each set's tokens rarest-first; two sets with Jaccard ≥ t must share a token among the
first ``|s| - ceil(t·|s|) + 1`` tokens of each, so only clusters sharing a prefix token are
compared at all. Identical token sets are one node, sets of incompatible sizes are skipped,
and each idea looks at no more than ``MAX_CHECKS`` earlier ideas (the most recent sharing a
rare token), which keeps the worst case linear when thousands of ideas share common words.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_WORD_ASCII = re.compile(r"[a-zA-Z0-9]+(?:'[a-zA-Z0-9]+)?")  # the same, in ASCII text
# ASCII text lower-cased, and what is no letter or digit a space (for bytes.translate, which
# takes a table, where str.translate looks each character up in a dict: 3x the time).
_LOWER_ALNUM = bytes(
    ord(chr(c).lower()) if c < 128 and chr(c).isalnum() else 32 for c in range(256)
)


def _ascii_words(text: str) -> list[str]:
    """The lower-cased runs of letters and digits of ASCII ``text``."""
    return text.encode("ascii").translate(_LOWER_ALNUM).decode("ascii").split()


STOPWORDS = frozenset(
    "a an the and or but of to in on at for with into onto from by is are was were be been it "
    "its they them their then that this these those some just so very i we you he she his her "
    "our your my me us what who should would could will can do does did has have had not no "
    "happens happen next maybe think against about".split()
)
MAX_CHECKS = 64
MAX_EMBEDDED = 4000  # ideas compared by embedding (all pairs); beyond this, words only
DRIFT_MARGIN = 0.1  # a link must stay within this of the cluster's first idea
_SUFFIXES = ("ations", "ation", "ings", "ing", "ions", "ion", "ers", "er", "ed", "es", "s", "ly")


@lru_cache(maxsize=1 << 16)  # a round's vocabulary is small next to its word count
def stem(word: str) -> str:
    """A deliberately light stemmer: enough to meet "rebellion"/"rebel", "mining"/"miners"."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]  # rebell → rebel, stopp → stop
    return word


@lru_cache(maxsize=1 << 16)  # grouping and then ranking a cluster read each text twice
def tokens(text: str) -> frozenset[str]:
    if text.isascii():  # most replies: lower-cased first, which cannot change a word here
        # Without an apostrophe a word is a run of letters and digits: split, not searched.
        words = _ascii_words(text) if "'" not in text else _WORD_ASCII.findall(text.lower())
    else:
        words = [w.lower() for w in _WORD.findall(text)]
    content: list[str] = []
    for word in words:
        found = _CONTENT.get(word)
        if found is None:
            found = _CONTENT[word] = "" if word in STOPWORDS else stem(word)
            if len(_CONTENT) > _CONTENT_MAX:
                _CONTENT.clear()
        if found:
            content.append(found)
    return frozenset(content or (stem(w) for w in words))


# A word's stem, or "" for a stop word: a round's vocabulary is small next to its word count.
_CONTENT: dict[str, str] = {}
_CONTENT_MAX = 1 << 16


def forget() -> None:
    """Empty the caches of stems and token sets (a benchmark's cold start)."""
    _CONTENT.clear()
    tokens.cache_clear()
    stem.cache_clear()


def centrality(texts: Sequence[str]) -> list[tuple[float, int]]:
    """How well each text says what the group says: (Jaccard similarity to the words that
    most of the texts use, how many texts use exactly its words).

    The most central member of a cluster is its most faithful wording: "The miners rebel"
    over "the mining crew rises up and rebels against the company at dawn".
    """
    sets = [tokens(t) for t in texts]
    used = Counter(tok for s in sets for tok in s)
    core = frozenset(tok for tok, n in used.items() if 2 * n > len(sets))
    same = Counter(sets)
    return [(jaccard(s, core), same[s]) for s in sets]


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


def group_texts(
    texts: Sequence[str],
    threshold: float = 0.5,
    vectors: Sequence[Sequence[float] | None] | None = None,
    vector_threshold: float = 0.8,
) -> list[Group]:
    """Single-link grouping: texts join when any two of them are similar enough.

    Similar means sharing enough (stemmed) words; with ``vectors`` (embeddings, one per
    text or None), also pointing the same way.

    Order-independent (unlike "compare with the first member"), deterministic, and groups
    come out in order of their first member.
    """
    if not 0 < threshold <= 1:
        raise ValueError("threshold must be in (0, 1]")
    sets = [tokens(t) for t in texts]
    freq: Counter[str] = Counter(tok for s in sets for tok in s)
    # Each token's place rarest-first (then alphabetical): a prefix is a set in this order.
    rank = {tok: r for r, tok in enumerate(sorted(freq, key=lambda tok: (freq[tok], tok)))}
    distinct = list(dict.fromkeys(sets))  # identical sets are one node
    parent = list(range(len(distinct)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # Each node's tokens as their places, ascending (rarest first): merged, not hashed.
    ranked = [sorted([rank[tok] for tok in s]) for s in distinct]
    index: list[list[int]] = [[] for _ in rank]  # a prefix token's place → earlier nodes
    sizes = [len(s) for s in distinct]
    seen = [False] * len(distinct)  # nodes compared with the current one already
    for i in range(len(distinct)):
        mine = ranked[i]
        size = sizes[i]
        prefix = mine[: size - math.ceil(threshold * size) + 1]
        low, high = threshold * size, size / threshold
        checks = 0
        touched: list[int] = []
        for place in prefix:
            for j in index[place][-MAX_CHECKS:]:  # the most recent ideas sharing this token
                checks += 1
                if seen[j]:
                    continue
                seen[j] = True
                touched.append(j)
                other = sizes[j]
                if not low <= other <= high:
                    continue
                shared = _shared(mine, ranked[j])  # jaccard(), inlined: the hot loop of a round
                if shared / (size + other - shared) >= threshold:
                    root = find(j)
                    # Single links may chain; staying near the cluster's first idea stops drift.
                    if find(i) != root:
                        first = _shared(mine, ranked[root])
                        if first / (size + sizes[root] - first) >= threshold / 2:
                            parent[find(i)] = root
            if checks >= MAX_CHECKS:
                break
        for j in touched:
            seen[j] = False
        for place in prefix:
            index[place].append(i)
    node_of = {s: n for n, s in enumerate(distinct)}
    if vectors is not None:
        _join_by_meaning(vectors, [node_of[s] for s in sets], find, parent, vector_threshold)
    groups: dict[int, Group] = {}
    for i, s in enumerate(sets):
        root = find(node_of[s])
        if root not in groups:
            groups[root] = Group(s)
        groups[root].members.append(i)
    return list(groups.values())


def _shared(a: list[int], b: list[int]) -> int:
    """How many places two ascending lists have in common (a merge: no set is built)."""
    i = j = count = 0
    while i < len(a) and j < len(b):
        x, y = a[i], b[j]
        if x == y:
            count += 1
            i += 1
            j += 1
        elif x < y:
            i += 1
        else:
            j += 1
    return count


def _join_by_meaning(
    vectors: Sequence[Sequence[float] | None],
    nodes: list[int],
    find: Callable[[int], int],
    parent: list[int],
    threshold: float,
) -> None:
    """Also join ideas whose embeddings point the same way (cosine >= ``threshold``).

    Paraphrases with no words in common ("the miners rebel" / "the crew mutinies") meet
    here. The same drift guard applies: a link must stay near the joined cluster's first
    idea. Ideas without a vector keep their lexical grouping only.
    """
    have = [i for i, v in enumerate(vectors) if v is not None and len(v)]
    if len(have) < 2 or len(have) > MAX_EMBEDDED:
        return
    try:
        matrix = np.array([vectors[i] for i in have], dtype=np.float32)
    except ValueError:  # vectors of different lengths: a model was changed mid-round
        return
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = matrix / np.where(norms == 0, np.float32(1.0), norms)
    similar = unit @ unit.T
    first: dict[int, int] = {}  # a cluster root → the row of its first idea (drift guard)
    for row, i in enumerate(have):
        first.setdefault(find(nodes[i]), row)
    for a in range(len(have)):
        for b in np.flatnonzero(similar[a, a + 1 :] >= threshold) + a + 1:
            root_a, root_b = find(nodes[have[a]]), find(nodes[have[int(b)]])
            if root_a == root_b:
                continue
            # The two clusters' first ideas must be close too, or links would chain away.
            if similar[first.get(root_a, a), first.get(root_b, int(b))] >= threshold - DRIFT_MARGIN:
                low, high = sorted((root_a, root_b))
                parent[high] = low
                first[low] = min(first.get(low, a), first.get(high, int(b)))
