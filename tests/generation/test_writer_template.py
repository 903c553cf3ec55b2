"""The offline template writer: deterministic, tells the beat, stays within screen limits."""

from __future__ import annotations

import re

import pytest

from generation.writer.base import Idea, PreviousEpisode, Script, StoryContext, WriteRequest
from generation.writer.template import TemplateWriter

CONTEXT = StoryContext(
    title="Salt & Static",
    premise="A lone courier crosses a dead salt planet carrying a message nobody should read.",
    style="35mm film still, grainy, 1970s sci-fi",
    language="en",
)
BEAT = "The distress beacon starts broadcasting again."
IDEAS = (
    Idea("the beacon speaks in the captain's own voice", ("ana",)),
    Idea("A cat is hiding in the vents!", ("bo", "cy")),
)


def write(**changes: object) -> Script:
    fields: dict[str, object] = {"context": CONTEXT, "number": 1, "beat": BEAT, "seed": 7}
    fields.update(changes)
    return TemplateWriter().write(WriteRequest(**fields))  # type: ignore[arg-type]


def words(text: str) -> list[str]:
    return text.split()


def assert_within_limits(script: Script, max_options: int = 4, final: bool = False) -> None:
    assert script.title.startswith("Episode ")
    assert script.narration and script.image_prompt
    assert all(0 < len(line) <= 42 for line in script.subtitles)
    assert words(" ".join(script.subtitles)) == words(script.narration)
    for text in (script.title, script.narration, script.image_prompt, *script.options):
        assert not re.search(r"[\x00-\x1f\x7f{}<>\\]", text), text
    if final:
        assert script.options == ()
    else:
        assert 2 <= len(script.options) <= max_options
        assert len(set(script.options)) == len(script.options)
        for option in script.options:
            assert len(option) <= 60 and option[0].isupper() and not option.endswith(".")


def test_same_request_gives_the_same_script() -> None:
    assert write(ideas=IDEAS) == write(ideas=IDEAS)


def test_different_seeds_give_different_narration() -> None:
    narrations = {write(seed=seed).narration for seed in range(6)}
    assert len(narrations) == 6


def test_the_beat_is_told_lightly_adapted() -> None:
    narration = write().narration
    assert "the distress beacon starts broadcasting again." in narration
    assert "again.." not in narration


def test_proper_noun_at_the_start_of_a_beat_keeps_its_capital() -> None:
    assert "Varga opens the sealed hatch" in write(beat="Varga opens the sealed hatch").narration


def test_ideas_are_woven_in() -> None:
    narration = write(ideas=IDEAS, target_seconds=30).narration.lower()
    assert "the beacon speaks in the captain's own voice" in narration
    assert "a cat is hiding in the vents" in narration


def test_at_most_two_ideas_are_used() -> None:
    ideas = (*IDEAS, Idea("a third idea about moths"))
    assert "moths" not in write(ideas=ideas, target_seconds=40).narration


@pytest.mark.parametrize("max_options", [2, 3, 4])
def test_options_fit_the_poll(max_options: int) -> None:
    script = write(max_options=max_options, beat="The signal repeats, closer")
    assert_within_limits(script, max_options)
    assert "The signal repeats, closer" not in script.options


def test_options_never_repeat_the_beat() -> None:
    for seed in range(40):
        beat = write(seed=seed).options[0]
        assert beat not in write(seed=seed, beat=beat).options


def test_final_episode_ends_the_story_without_options() -> None:
    script = write(is_final=True, number=5)
    assert_within_limits(script, final=True)
    assert script.narration.endswith("The end.")
    assert not write(number=5).narration.endswith("The end.")


LENGTHS = [(s, False) for s in (12, 16, 20, 30, 48, 60)] + [(s, True) for s in (20, 30, 48)]


@pytest.mark.parametrize(("seconds", "with_ideas"), LENGTHS)
def test_length_follows_the_target(seconds: float, with_ideas: bool) -> None:
    ideas = IDEAS if with_ideas else ()  # two ideas and a premise alone fill a 16 s clip
    for seed in range(20):
        count = len(words(write(seed=seed, target_seconds=seconds, ideas=ideas).narration))
        assert abs(count - 2.5 * seconds) <= 0.3 * 2.5 * seconds, (seed, count)


def test_style_prefixes_the_image_prompt_with_scene_nouns() -> None:
    prompt = write().image_prompt
    assert prompt.startswith(CONTEXT.style + ", ")
    assert "distress beacon" in prompt


def test_first_episode_opens_from_the_premise() -> None:
    assert "A lone courier crosses a dead salt planet" in write().narration


def test_later_episode_carries_the_cast_on() -> None:
    first = write()
    lead = next(n for n in ("Mara", "Varga", "Quill", "Sable") if n in first.narration)
    previous = PreviousEpisode(1, first.title, BEAT, first.narration)
    context = StoryContext(CONTEXT.title, CONTEXT.premise, CONTEXT.style, "en", (previous,))
    second = write(context=context, number=2, beat=first.options[0])
    assert second.title.startswith("Episode 2: ")
    assert lead in second.narration


HOSTILE = [
    "word " * 2000,
    "x" * 10_000,
    "Open\x00 the\x1b[31m hatch\r\n\t\u202e now\x7f",
    "<script>alert('x')</script> the hatch opens",
    "{\\an8}{\\pos(1,1)}The hatch opens\\N\\h{",
    "",
    "   ...!!!   ",
]


@pytest.mark.parametrize("beat", HOSTILE)
def test_hostile_input_stays_within_limits(beat: str) -> None:
    context = StoryContext(beat, beat, beat, "xx", (PreviousEpisode(1, beat, beat, beat),))
    ideas = (Idea(beat, (beat,)), Idea(beat))
    script = write(context=context, number=2, beat=beat, ideas=ideas, target_seconds=20)
    assert_within_limits(script)
    assert len(words(script.narration)) <= 200
    assert len(script.image_prompt) <= 600


def test_surrogates_and_odd_numbers_do_not_crash() -> None:
    script = write(beat="\ud800 lost", number=0, max_options=9, target_seconds=float("nan"))
    assert_within_limits(script)
    assert script.title.startswith("Episode 1: ")


def test_other_languages_still_get_english() -> None:
    context = StoryContext("T", "A premise", "", "de")
    assert_within_limits(write(context=context))


CASES = [(seed, number) for seed in (0, 1, 99, 2**31 - 1) for number in (1, 2, 7)]


@pytest.mark.parametrize(("seed", "number"), CASES)
def test_table_of_seeds_and_episodes(seed: int, number: int) -> None:
    previous = tuple(
        PreviousEpisode(n, f"Episode {n}: Before", f"Beat {n}", f"Narration {n}.")
        for n in range(1, number)
    )
    context = StoryContext(CONTEXT.title, CONTEXT.premise, "", "en", previous)
    script = write(context=context, number=number, seed=seed, ideas=IDEAS[:1])
    assert_within_limits(script)
    assert script.title.startswith(f"Episode {number}: ")
    assert "the distress beacon starts broadcasting again" in script.narration
    assert not script.image_prompt.startswith(",")
