"""Near-duplicate grouping: examples and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from story_state.cluster import group_texts, stem, tokens


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("rebellion", "rebel"),
        ("rebel", "rebel"),
        ("miners", "min"),
        ("mining", "min"),
        ("stopped", "stop"),
        ("sun", "sun"),
        ("is", "is"),
    ],
)
def test_stem(word: str, expected: str) -> None:
    assert stem(word) == expected


def test_the_issue_example_merges() -> None:
    groups = group_texts(
        [
            "the miners rebel",
            "Miners rebel!!",
            "the mining crew starts a rebellion",
            "a second sun rises",
        ]
    )
    assert [g.members for g in groups] == [[0, 1, 2], [3]]


def test_unrelated_ideas_stay_apart() -> None:
    texts = ["the radio picks up a voice", "the water is poisoned", "a child draws a map"]
    assert len(group_texts(texts)) == 3
    assert tokens("What happens next? Maybe they should think") != frozenset()


words = st.sampled_from("ship salt moon miner android signal storm colony captain cargo".split())
texts = st.lists(st.lists(words, min_size=1, max_size=6).map(" ".join), max_size=60)


@settings(max_examples=60, deadline=None)
@given(texts)
def test_every_text_is_in_exactly_one_group_and_grouping_is_deterministic(
    items: list[str],
) -> None:
    groups = group_texts(items)
    members = sorted(m for g in groups for m in g.members)
    assert members == list(range(len(items)))
    assert [g.members for g in group_texts(items)] == [g.members for g in groups]


@settings(max_examples=60, deadline=None)
@given(texts)
def test_identical_token_sets_always_share_a_group(items: list[str]) -> None:
    where = {}
    for n, g in enumerate(group_texts(items)):
        for m in g.members:
            where[m] = n
    for i, a in enumerate(items):
        for j, b in enumerate(items):
            if tokens(a) == tokens(b):
                assert where[i] == where[j]


def test_threshold_one_groups_only_equal_sets() -> None:
    groups = group_texts(["red ship", "ship red", "red ship moon"], threshold=1.0)
    assert [g.members for g in groups] == [[0, 1], [2]]
    with pytest.raises(ValueError):
        group_texts(["x"], threshold=0)


def _members(groups: list, texts: list[str]) -> list[set[str]]:  # type: ignore[type-arg]
    return sorted(({texts[i] for i in g.members} for g in groups), key=lambda m: sorted(m))


def test_embeddings_join_paraphrases_that_share_no_words() -> None:
    texts = ["the miners rebel", "the crew mutinies", "a stowaway hides aboard", "miners rebel!!"]
    # Unit-ish vectors: the first two (and the fourth) point one way, the stowaway another.
    vectors = [(1.0, 0.1, 0.0), (0.95, 0.2, 0.05), (0.0, 0.1, 1.0), (1.0, 0.12, 0.0)]
    words_only = _members(group_texts(texts), texts)
    assert {"the miners rebel", "miners rebel!!"} in words_only
    assert {"the crew mutinies"} in words_only  # no shared words: apart
    joined = _members(group_texts(texts, vectors=vectors), texts)
    assert joined == [
        {"a stowaway hides aboard"},
        {"the miners rebel", "the crew mutinies", "miners rebel!!"},
    ]
    # An idea with no stored vector keeps its word-based grouping only.
    partial = _members(group_texts(texts, vectors=[vectors[0], None, vectors[2], None]), texts)
    assert {"the crew mutinies"} in partial


def test_embedding_links_do_not_drift_away_from_the_first_idea() -> None:
    # a ~ b and b ~ c, but c is far from a: single links alone would chain all three.
    texts = ["alpha plan", "bravo scheme", "charlie idea"]
    a, b, c = (1.0, 0.0), (0.9, 0.436), (0.62, 0.785)
    groups = _members(group_texts(texts, vectors=[a, b, c], vector_threshold=0.88), texts)
    assert {"charlie idea"} in groups and {"alpha plan", "bravo scheme"} in groups
