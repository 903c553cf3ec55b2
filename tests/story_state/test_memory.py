"""Story memory: relevant bible entries, the cast of a shot, the rolling summary."""

from __future__ import annotations

from story_state.memory import Lore, image_prompt_with_cast, in_shot, relevant, update_summary

MARA = Lore(
    "character",
    "Mara",
    "the courier Mara Lind",
    "a hooded courier with a satchel",
    11,
    ("courier",),
)
MOSS = Lore("character", "Moss", "old engineer Moss", "a grey-bearded engineer in overalls", 12)
DRIFT = Lore("place", "the Cassini Drift", "a river of asteroids", "tumbling rocks")
FACT = Lore("fact", "The beacon", "The beacon repeats every 90 minutes")


def test_entries_are_triggered_by_name_part_or_keyword_and_facts_always_come() -> None:
    entries = [MARA, MOSS, DRIFT, FACT]
    assert relevant(entries, "Mara opens the hatch") == (MARA, FACT)
    assert relevant(entries, "the courier hesitates") == (MARA, FACT)
    assert relevant(entries, "They drift towards Cassini") == (DRIFT, FACT)
    assert relevant(entries, "Nobody", limit=1) == (FACT,)
    assert relevant(entries, "Mossy rocks") == (FACT,)  # whole words only


def test_the_cast_is_reinjected_into_the_image_prompt() -> None:
    cast = in_shot([MARA, MOSS, DRIFT], "a salt flat", "Mara and Moss argue")
    assert cast == (MARA, MOSS)
    prompt = image_prompt_with_cast("a salt flat at dusk", cast)
    assert prompt == (
        "Mara, a hooded courier with a satchel; Moss, a grey-bearded engineer in overalls; "
        "a salt flat at dusk"
    )
    assert image_prompt_with_cast("x", ()) == "x"


def test_summary_rolls_and_keeps_the_latest() -> None:
    summary = ""
    for n in range(1, 40):
        summary = update_summary(summary, n, f"Something important happens number {n}.")
    assert len(summary) <= 900
    assert summary.endswith("Episode 39: Something important happens number 39.")
    assert summary.startswith("Episode ")
