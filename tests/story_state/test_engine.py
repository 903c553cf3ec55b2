"""The engine's decisions, as tables of cases."""

from __future__ import annotations

import random
from typing import Any

import pytest

from story_state.engine import (
    Cluster,
    OptionSpec,
    SuggestionIn,
    build_options,
    cluster_suggestions,
    decide,
    fit_label,
    one_per_person,
)


def rng() -> random.Random:
    return random.Random(7)


def test_near_duplicates_merge_and_support_adds_up() -> None:
    ideas = [
        SuggestionIn(1, "ana", "The miners rebel"),
        SuggestionIn(2, "ben", "the miners rebel!!"),
        SuggestionIn(3, "cy", "A stowaway in the hold", likes=1),
        SuggestionIn(4, "dara", "Miners rebel against the company"),
    ]
    clusters = cluster_suggestions(ideas, rng())
    assert clusters[0].authors == ("ana", "ben", "dara")
    assert clusters[0].support == 3
    assert set(clusters[0].suggestion_ids) == {1, 2, 4}
    assert clusters[1].key == "A stowaway in the hold"
    assert clusters[1].support == 2  # one author + one like


def test_one_person_counts_once_per_cluster() -> None:
    ideas = [SuggestionIn(i, "ana", "the miners rebel") for i in range(1, 6)]
    ideas.append(SuggestionIn(9, "ben", "a second sun rises"))
    ideas.append(SuggestionIn(10, "cy", "a second sun rises"))
    clusters = cluster_suggestions(ideas, rng())
    assert clusters[0].key == "a second sun rises"
    assert clusters[0].support == 2
    assert clusters[1].support == 1


def test_ties_are_broken_by_the_seed_and_reproducibly() -> None:
    ideas = [
        SuggestionIn(i, f"p{i}", text)
        for i, text in enumerate(["red door", "blue comet", "green wire", "black box"])
    ]
    orders = {tuple(c.key for c in cluster_suggestions(ideas, random.Random(s))) for s in range(20)}
    assert len(orders) > 1  # the seed matters
    again = [c.key for c in cluster_suggestions(ideas, random.Random(3))]
    assert again == [c.key for c in cluster_suggestions(ideas, random.Random(3))]


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("Open the hatch", 25, "Open the hatch"),
        ("Follow the salt trail to the north pole.", 25, "Follow salt trail north…"),
        ("The android remembers its past life", 25, "The android remembers…"),
        ("Supercalifragilisticexpialidocious", 10, "Supercali…"),
    ],
)
def test_fit_label(text: str, limit: int, expected: str) -> None:
    label = fit_label(text, limit)
    assert label == expected
    assert len(label) <= limit


def test_options_include_the_community_wildcard_and_fit() -> None:
    top = Cluster(
        "the mining crew starts a rebellion against the company", (1, 2), ("7", "8"), 5, ""
    )
    specs = build_options(
        ["Open the hatch", "The signal repeats, closer", "Mutiny in the mess hall"],
        [top],
        max_options=4,
        max_chars=25,
    )
    assert [s.source for s in specs] == ["writer", "writer", "writer", "community"]
    assert specs[-1].authors == ("7", "8")
    assert all(len(s.label) <= 25 for s in specs)
    assert len({s.label for s in specs}) == len(specs)


def test_options_respect_the_strictest_count_and_skip_duplicates() -> None:
    specs = build_options(["A", "a", "B", "C"], [], max_options=2, max_chars=50)
    assert [s.label for s in specs] == ["A", "B"]
    specs = build_options(
        ["Same beat", "Other"], [], max_options=4, max_chars=50, current_beat="Same beat"
    )
    assert [s.label for s in specs] == ["Other"]


OPTS = [
    OptionSpec("a", "A", "writer"),
    OptionSpec("b", "B", "writer"),
    OptionSpec("c", "C", "community", ("1",)),
]


@pytest.mark.parametrize(
    ("tallies", "winner", "reason_part"),
    [
        ({"local": [1, 5, 2]}, 2, "most votes"),
        ({"local": [3, 0, 0], "mastodon": [0, 2, 2]}, 1, "most votes"),
        ({"local": [0, 1, 0], "mastodon": [0, 0, 2]}, 3, "most votes"),
        ({"local": [0, 0, 0]}, 3, "no votes: the community idea"),
        ({}, 3, "no votes"),
    ],
)
def test_decide(tallies: dict[str, list[int]], winner: int, reason_part: str) -> None:
    decision = decide(OPTS, tallies, rng())
    assert decision.position == winner
    assert reason_part in decision.reason


def test_decide_tie_is_seeded_and_recorded() -> None:
    winners = {decide(OPTS, {"local": [2, 2, 0]}, random.Random(s)).position for s in range(30)}
    assert winners == {1, 2}
    decision = decide(OPTS, {"local": [2, 2, 0]}, random.Random(1))
    assert "tie" in decision.reason and decision.totals == (2, 2, 0)


def test_no_votes_no_community_option_takes_writers_first() -> None:
    decision = decide(OPTS[:2], {"local": [0, 0]}, rng())
    assert decision.position == 1


def test_one_per_person_keeps_each_persons_best_supported_idea_in_id_order() -> None:
    seeded = random.Random(5)
    rows = [
        (id, seeded.randrange(40), f"idea {id}", seeded.randrange(4), seeded.randrange(3),
         seeded.choice(["mastodon", "x"]), [0.5, 0.25] if id % 7 == 0 else None)
        for id in seeded.sample(range(1, 5000), 600)
    ]  # fmt: skip
    # The rule, said plainly: most likes and boosts, then the earliest (lowest id).
    best: dict[int, tuple[Any, ...]] = {}
    for row in sorted(rows):
        held = best.get(row[1])
        if held is None or row[3] + row[4] > held[3] + held[4]:
            best[row[1]] = row
    expected = [
        SuggestionIn(r[0], str(r[1]), r[2], r[3], r[4], r[5], tuple(r[6]) if r[6] else None)
        for r in sorted(best.values())
    ]
    assert one_per_person(rows) == expected
    assert len(expected) == len({row[1] for row in rows})
    assert one_per_person([]) == []
