"""The story engine's decisions: pure functions of their inputs, a seeded RNG and ``now``."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from story_state.cluster import STOPWORDS, centrality, group_texts

_STOP = STOPWORDS
# A community option is the idea in its people's own words; longer ones are cut at a word.
COMMUNITY_MAX_CHARS = 50


@dataclass(frozen=True)
class SuggestionIn:
    id: int
    author: str  # one key per person, e.g. a contributor id
    text: str
    likes: int = 0
    boosts: int = 0
    platform: str = "local"
    vector: tuple[float, ...] | None = None  # an embedding of ``text``, when one is stored


@dataclass(frozen=True)
class Cluster:
    key: str  # the representative text
    suggestion_ids: tuple[int, ...]
    authors: tuple[str, ...]
    support: float
    why: str


@dataclass(frozen=True)
class OptionSpec:
    label: str  # as the poll shows it
    beat: str  # what the episode will tell if it wins
    source: str  # "writer" | "community" | "ending"
    authors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    position: int  # 1-based winning option
    totals: tuple[int, ...]
    reason: str
    per_platform: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


# A stored idea as ranking reads it: id, person (a contributor id), text, likes, boosts,
# platform and embedding (or None).
IdeaRow = tuple[int, int, str, int, int, str, list[float] | None]


def one_per_person(rows: Sequence[IdeaRow]) -> list[SuggestionIn]:
    """Each person's best-supported idea (most likes and boosts, then the earliest), in id
    order: a person who replied ten times counts once (``cluster_suggestions``)."""
    best: dict[int, IdeaRow] = {}
    for row in rows:
        held = best.get(row[1])
        if held is None:
            best[row[1]] = row
            continue
        support, held_support = row[3] + row[4], held[3] + held[4]
        if support > held_support or (support == held_support and row[0] < held[0]):
            best[row[1]] = row
    return [
        SuggestionIn(
            id, str(person), text, likes, boosts, platform, tuple(vector) if vector else None
        )
        for id, person, text, likes, boosts, platform, vector in sorted(best.values(), key=_idea_id)
    ]


def _idea_id(row: IdeaRow) -> int:
    return row[0]


def _engagement_scale(suggestions: Sequence[SuggestionIn]) -> dict[str, float]:
    """Per platform, one like is worth 1 / (mean likes + boosts per reply there), at most 1.

    A busy instance where every reply gets ten likes must not drown a quiet one.
    """
    totals: dict[str, list[int]] = {}
    for s in suggestions:
        totals.setdefault(s.platform, []).append(s.likes + s.boosts)
    return {p: 1.0 / max(1.0, sum(v) / len(v)) for p, v in totals.items()}


def cluster_suggestions(
    suggestions: Sequence[SuggestionIn],
    rng: random.Random,
    threshold: float = 0.5,
    vector_threshold: float = 0.8,
) -> list[Cluster]:
    """Merge near-duplicate ideas and rank the clusters: most distinct people first.

    Support = distinct authors + likes and boosts (normalised per platform); it orders
    clusters backed by as many people, so likes never lift one person's idea over an idea
    that more people asked for. The caller passes one suggestion per person (their
    best-supported); a person in several clusters counts once in each. A cluster's key is
    its most representative member's text (``centrality``; then the most liked, then the
    first). Ties are broken by the seeded ``rng``; ``why`` records the sums.
    """
    scale = _engagement_scale(suggestions)
    clusters = []
    vectors = [s.vector for s in suggestions]
    embedded = vectors if any(v is not None for v in vectors) else None
    texts = [s.text for s in suggestions]
    for group in group_texts(texts, threshold, embedded, vector_threshold):
        members = [suggestions[i] for i in group.members]
        authors = tuple(dict.fromkeys(m.author for m in members))
        raw = sum(m.likes + m.boosts for m in members)
        engagement = sum((m.likes + m.boosts) * scale[m.platform] for m in members)
        if len(members) == 1:
            best = members[0]  # most clusters of a busy round: nothing to choose between
        else:
            central = centrality([m.text for m in members])
            best = members[
                max(
                    range(len(members)),
                    key=lambda i: (
                        *central[i],
                        members[i].likes + members[i].boosts,
                        -members[i].id,
                    ),
                )
            ]
        support = round(len(authors) + engagement, 3)
        clusters.append(
            Cluster(
                key=best.text,
                suggestion_ids=tuple(m.id for m in members),
                authors=authors,
                support=support,
                why=(
                    f"{len(authors)} people + {raw} likes/boosts "
                    f"(worth {engagement:.2f} after per-platform scaling) = {support:g}"
                ),
            )
        )
    tiebreak = [rng.random() for _ in clusters]
    order = sorted(
        range(len(clusters)),
        key=lambda i: (-len(clusters[i].authors), -clusters[i].support, tiebreak[i]),
    )
    return [clusters[i] for i in order]


def fit_label(text: str, max_chars: int) -> str:
    """A poll label within ``max_chars``: drop filler words first, then cut at a word."""
    text = " ".join(text.split()).rstrip(".!?")
    if len(text) <= max_chars:
        return text
    words = text.split(" ")
    kept = [w for i, w in enumerate(words) if i == 0 or w.lower() not in _STOP]
    squeezed = " ".join(kept)
    if len(squeezed) <= max_chars:
        return squeezed
    label = _whole_words(squeezed, max_chars - 1)
    while label.split(" ")[-1].lower() in _STOP and " " in label:
        label = label.rsplit(" ", 1)[0]
    return label + "…"


def _whole_words(text: str, limit: int) -> str:
    """The most whole words that fit ``limit``; only a first word longer than that is cut."""
    kept = ""
    for word in text.split(" "):
        joined = f"{kept} {word}" if kept else word
        if len(joined) > limit:
            break
        kept = joined
    return (kept or text[:limit]).rstrip(" ,;:-–—")


def community_label(text: str, max_chars: int) -> str:
    """An idea as a poll option in its own words: at most ``COMMUNITY_MAX_CHARS`` (or the
    platform's limit, if smaller), cut at a word with "…" when longer; no words dropped."""
    limit = max(2, min(COMMUNITY_MAX_CHARS, max_chars))
    text = " ".join(text.split()).rstrip(".!?")
    if len(text) <= limit:
        return text
    return _whole_words(text, limit - 1) + "…"


def community_pick(clusters: Sequence[Cluster], current_beat: str = "") -> Cluster | None:
    """The idea backed by the most distinct people (then support, then rank), unless it is
    the beat being told now."""
    eligible = [c for c in clusters if c.key.strip() and c.key.strip() != current_beat.strip()]
    return max(eligible, key=lambda c: (len(c.authors), c.support), default=None)


def build_options(
    writer_options: Sequence[str],
    clusters: Sequence[Cluster],
    *,
    max_options: int,
    max_chars: int,
    current_beat: str = "",
) -> list[OptionSpec]:
    """The next poll: the writer's beats plus the community's idea as a wildcard.

    The wildcard is ``community_pick``: the idea the most people asked for, whatever was
    woven into the episode as a rumour; its slot is kept even when a writer beat reads the
    same (the writer's copy gives way).
    """
    max_options = max(2, min(4, max_options))
    top = community_pick(clusters, current_beat)
    community = None
    if top is not None:
        label = community_label(top.key, max_chars)
        if label:
            community = OptionSpec(label, top.key.strip(), "community", top.authors)
    specs: list[OptionSpec] = []
    labels = {community.label.lower()} if community else set()
    writer_slots = max_options - 1 if community else max_options
    for beat in writer_options:
        if len(specs) >= writer_slots:
            break
        label = fit_label(beat, max_chars)
        if label and label.lower() not in labels and beat.strip() != current_beat.strip():
            labels.add(label.lower())
            specs.append(OptionSpec(label, beat.strip(), "writer"))
    if community is not None:
        specs.append(community)
    return specs


def decide(
    options: Sequence[OptionSpec],
    tallies: Mapping[str, Sequence[int]],
    rng: random.Random,
) -> Decision:
    """Pick the winner: most votes summed over platforms.

    Ties among the leaders are broken by the seeded ``rng`` (and the reason says so). With
    no votes at all, a community option wins if there is one, else the first writer option.
    """
    if not options:
        raise ValueError("a poll needs at least one option")
    totals = [0] * len(options)
    for counts in tallies.values():
        for i, n in enumerate(counts[: len(options)]):
            totals[i] += int(n)
    per_platform = {name: tuple(counts) for name, counts in tallies.items()}
    if sum(totals) == 0:
        for i, option in enumerate(options):
            if option.source == "community":
                return Decision(i + 1, tuple(totals), "no votes: the community idea", per_platform)
        return Decision(1, tuple(totals), "no votes: the writer's first option", per_platform)
    best = max(totals)
    leaders = [i for i, n in enumerate(totals) if n == best]
    if len(leaders) == 1:
        reason = f"most votes ({best})"
        winner = leaders[0]
    else:
        winner = rng.choice(leaders)
        reason = f"tie at {best} votes between options {[i + 1 for i in leaders]}: seeded draw"
    return Decision(winner + 1, tuple(totals), reason, per_platform)


def ideas_for(clusters: Sequence[Cluster], winner: OptionSpec, limit: int = 2) -> list[Cluster]:
    """Community ideas to weave into the next episode besides the winning beat."""
    chosen = [c for c in clusters if c.key.strip() != winner.beat]
    return chosen[:limit]
