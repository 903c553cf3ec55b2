"""The template writer tells a serial: a simulated audience steers 20 stories of 6 episodes.

Each episode is written, a poll winner is picked from its options (sometimes a reply from the
community instead), and the winner becomes the next episode's beat, as the runner does. The
facts each episode proposes for the story bible come back in the next episode's context.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass

import pytest

from bot.loop.captions import clip_caption
from generation.writer import _banks as bank
from generation.writer import _banks_scenes as lines
from generation.writer._facts import facts_in
from generation.writer.base import Idea, PreviousEpisode, Script, StoryContext, WriteRequest
from generation.writer.template import TemplateWriter
from story_state.models import Episode

PREMISES = (
    "On the salt flats of a dying moon, a crew of miners finds a derelict ship that should "
    "not exist.",
    "A lone courier crosses a dead salt planet carrying a message nobody should read.",
    "The relay beacons along the outer rim have gone silent, one by one.",
    "Captain Ilse Varga wakes from cryo to find the Persephone adrift and her crew gone.",
)
# Winners that come from replies rather than from the writer's options.
COMMUNITY = (
    "A dust storm uncovers a buried ship",
    "{name} is killed in the airlock",
    "A cat is hiding in the vents",
    "Hide in the vents until the patrol passes",
    "{name} vanishes during the night watch",
    "The ship's cook starts a rebellion",
)
WOVEN = ("the beacon speaks in the captain's own voice", "someone has been drinking the coolant")
AUTHOR = "zed_listener"
SEEDS = range(20)
EPISODES = 6
CONNECTORS = frozenset("of the a an and or in on at to for with from into by as is".split())
NAMES = tuple(c.short for c in bank.CHARACTERS)


@dataclass(frozen=True)
class Told:
    request: WriteRequest
    script: Script
    facts: tuple[str, ...]  # the story bible's facts after this episode


def norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def content_words(text: str) -> set[str]:
    return {w for w in norm(text).split() if len(w) >= 3 and w not in CONNECTORS}


def simulate(seed: int, pass_facts: bool = True) -> list[Told]:
    premise = PREMISES[seed % len(PREMISES)]
    audience = random.Random(seed)
    previous: list[PreviousEpisode] = []
    bible: list[str] = []
    beat = premise  # the runner plans episode 1 with the premise as its beat
    told: list[Told] = []
    for number in range(1, EPISODES + 1):
        ideas: tuple[Idea, ...] = ()
        if number > 1 and audience.random() < 0.4:
            ideas = (Idea(audience.choice(WOVEN), (AUTHOR,)),)
        context = StoryContext(
            "Salt",
            premise,
            "35mm film still",
            "en",
            tuple(previous),
            facts=tuple(bible) if pass_facts else (),
        )
        request = WriteRequest(
            context,
            number,
            beat,
            ideas,
            seed=seed * 1000 + number,
            is_final=number == EPISODES,
        )
        script = TemplateWriter().write(request)
        bible += [e.name for e in script.lore if e.kind == "fact" and e.name not in bible]
        told.append(Told(request, script, tuple(bible)))
        previous.append(PreviousEpisode(number, script.title, beat, script.narration))
        if script.options:
            if audience.random() < 0.3:
                cast = [n for n in NAMES if re.search(rf"\b{n}\b", script.narration)]
                beat = audience.choice(COMMUNITY).format(name=audience.choice(cast or ["Pell"]))
            else:
                beat = audience.choice(script.options)
    return told


STORIES = {seed: simulate(seed) for seed in SEEDS}
ALL = [t for story in STORIES.values() for t in story]


def test_the_same_seed_tells_the_same_story() -> None:
    assert simulate(3) == STORIES[3]
    assert simulate(4) != STORIES[3]


def test_no_episode_announces_its_beat_as_a_form() -> None:
    for t in ALL:
        narration = t.script.narration
        assert "choice is made" not in narration.lower(), narration
        assert not re.search(r"rumou?r has it|someone whispers", narration, re.I), narration
        assert "cannot shake what happened last time" not in narration


@pytest.mark.parametrize("seed", SEEDS)
def test_the_premise_is_told_once_in_episode_one(seed: int) -> None:
    story = STORIES[seed]
    premise = story[0].request.context.premise.rstrip(".").lower()
    assert story[0].script.narration.lower().count(premise) == 1
    words = norm(premise).split()
    shingles = {" ".join(words[i : i + 6]) for i in range(len(words) - 5)}
    for t in story[1:]:
        later = norm(t.script.narration)
        assert not [s for s in shingles if s in later], (t.request.number, t.script.narration)


def test_each_episode_dramatises_its_beat() -> None:
    """The beat happens in the scene (its own words), someone acts, and something follows."""
    for t in ALL:
        beat = t.request.beat.rstrip(".")
        narration = t.script.narration
        if t.request.number > 1:  # episode 1's beat is the premise, told by the opener
            at = narration.lower().find(beat.lower())
            assert at > 0, (beat, narration)
            assert len(narration) - at - len(beat) > 20, narration  # not the last thing said
        assert any(re.search(rf"\b{n}\b", narration) for n in NAMES), narration


def test_the_winners_words_are_never_announced_after_a_colon_frame() -> None:
    frames = re.compile(r"(the order comes down the line|so it is decided|makes the call):")
    assert not any(frames.search(t.script.narration.lower()) for t in ALL)


def test_community_ideas_happen_in_the_scene_and_credits_stay_in_the_caption() -> None:
    woven = [t for t in ALL if t.request.ideas]
    assert len(woven) >= 10
    for t in woven:
        narration = t.script.narration
        assert t.request.ideas[0].text in narration
        assert AUTHOR not in narration and "story ideas from" not in narration.lower()
        episode = Episode(number=t.request.number, title=t.script.title, narration=narration)
        caption = clip_caption(episode, [AUTHOR], 2000, voters=3)
        assert caption.count(AUTHOR) == 1 and caption.count("Story ideas from") == 1


RECAPS = [
    re.compile("^" + re.sub(r"\\\{(\w+)\\\}", "(?P<\\1>.+?)", re.escape(form)), re.I)
    for form in (*lines.RECAPS, *lines.RECAPS_PLAIN)
]


def recap(narration: str) -> tuple[int, str]:
    hits = [(i, m.group(0)) for i, p in enumerate(RECAPS) if (m := p.match(narration))]
    assert len(hits) == 1, narration
    return hits[0]


def test_recaps_name_the_last_beat_and_never_repeat_the_form_in_a_row() -> None:
    used: set[int] = set()
    for story in STORIES.values():
        forms = []
        for before, t in itertools.pairwise(story):
            form, text = recap(t.script.narration)
            last_beat = before.request.beat
            assert content_words(text) & content_words(last_beat), (text, last_beat)
            forms.append(form)
        assert all(a != b for a, b in itertools.pairwise(forms)), forms
        used.update(forms)
    assert len(used) >= 6


def title_words() -> set[str]:
    forms = (*lines.TITLE_FORMS, *lines.FINAL_TITLE_FORMS, *lines.TITLE_NAME_FORMS)
    return {
        w for form in forms for w in norm(form.replace("{p}", "").replace("{name}", "")).split()
    }


def assert_good_title(title: str, beat: str, number: int) -> None:
    assert title.startswith(f"Episode {number}: ")
    name = title.split(": ", 1)[1]
    assert 0 < len(name) <= 40, title
    said = norm(beat).split()
    words = norm(name).split()
    assert set(words) & content_words(beat), (title, beat)  # made of the beat's own words
    assert set(words) <= set(said) | title_words(), (title, beat)  # whole words only
    last = name.split()[-1]
    assert last.lower() not in CONNECTORS, title
    assert not re.search(r"['’]s$", last) and not last.endswith((",", ":", ";", "-")), title


def test_titles_come_from_the_beat_and_end_on_a_whole_phrase() -> None:
    for t in ALL:
        assert_good_title(t.script.title, t.request.beat, t.request.number)


@pytest.mark.parametrize(
    "beat",
    [
        "A derelict ship's engine wakes",
        "Echoes of the derelict ship's captain",
        "The extraordinarily magnificent interplanetary refrigeration apparatus malfunctions",
        "Mutiny in the cargo hold",
        "Follow the salt trail north",
        "The dead captain's log is found",
        "Nobody trusts the pilot's",
        "Varga runs from the",
        "The crew of the",
    ],
)
def test_long_and_possessive_beats_still_make_whole_titles(beat: str) -> None:
    context = StoryContext("Salt", PREMISES[0], "", "en")
    for seed in range(30):
        for final in (False, True):
            request = WriteRequest(context, 2, beat, seed=seed, is_final=final)
            assert_good_title(TemplateWriter().write(request).title, beat, 2)


def contradicts(option: str, facts: tuple[str, ...]) -> str:
    """The fact an option goes against, by rules written here independently of the writer."""
    for fact in facts:
        m = re.fullmatch(r"(\w+) is (dead|missing)", fact)
        if m and re.search(rf"\b{m.group(1)}\b", option):
            return fact
        if fact == "the ship has been found" and re.search(
            r"\b(uncover|find|found|discover)\w*\b.*\bship\b|\b(buried|derelict) ship\b",
            option,
            re.I,
        ):
            return fact
        if fact == "the air supply is failing" and re.search(r"\bair supply\b", option, re.I):
            return fact
    return ""


def test_options_never_repeat_a_beat_of_this_path_or_go_against_a_fact() -> None:
    tested = {"dead": 0, "missing": 0, "ship": 0}
    for story in STORIES.values():
        for i, t in enumerate(story):
            used = {norm(s.request.beat) for s in story[: i + 1]}
            for option in t.script.options:
                assert norm(option) not in used, (option, used)
                assert not contradicts(option, t.facts), (option, contradicts(option, t.facts))
                assert not {f.text for f in facts_in([option])} & set(t.facts), option
            if t.script.options:
                tested["dead"] += any(f.endswith(" is dead") for f in t.facts)
                tested["missing"] += any(f.endswith(" is missing") for f in t.facts)
                tested["ship"] += "the ship has been found" in t.facts
    assert min(tested.values()) >= 3, tested  # the simulation really reached those facts


def test_the_dead_and_the_missing_no_longer_act() -> None:
    checked = 0
    for story in STORIES.values():
        for before, t in itertools.pairwise(story):
            gone = [f.split()[0] for f in before.facts if f.endswith((" is dead", " is missing"))]
            recap_text = recap(t.script.narration)[1]
            scene = t.script.narration[len(recap_text) :]
            for name in gone:
                if name not in t.request.beat and all(name not in i.text for i in t.request.ideas):
                    assert not re.search(rf"\b{name}\b", scene), (name, t.script.narration)
                    checked += 1
    assert checked >= 3


def test_a_fact_from_the_bible_rules_out_options_without_the_story_behind_it() -> None:
    """An operator's fact ("Mara is dead"), or the runner's list, works on its own."""
    previous = (PreviousEpisode(1, "Episode 1: Salt", "Mara crosses the flats", "Mara waits."),)
    offered = {"Mara": 0, "ship": 0}
    for seed in range(40):
        for facts in ((), ("Mara is dead", "the ship has been found")):
            context = StoryContext("Salt", PREMISES[1], "", "en", previous, facts=facts)
            request = WriteRequest(context, 2, "The signal repeats, closer", seed=seed)
            script = TemplateWriter().write(request)
            scene = script.narration[len(recap(script.narration)[1]) :]
            mara = any("Mara" in o for o in script.options) or "Mara" in scene
            ship = any("buried ship" in o for o in script.options)
            if facts:
                assert not mara and not ship, (script.narration, script.options)
            else:
                offered["Mara"] += mara
                offered["ship"] += ship
    assert min(offered.values()) > 0, offered  # without the facts, both do come up


def test_facts_go_to_the_bible_in_words_that_read_back_as_the_same_fact() -> None:
    proposed = {e.name for t in ALL for e in t.script.lore if e.kind == "fact"}
    assert {"the ship has been found"} <= proposed
    assert any(f.endswith(" is dead") for f in proposed)
    for fact in proposed:
        assert [f.text for f in facts_in([fact])] == [fact]


def test_the_last_episode_tells_the_last_winner_and_closes_the_story() -> None:
    for story in STORIES.values():
        last = story[-1]
        beat = last.request.beat.rstrip(".")
        assert last.request.is_final and last.script.options == ()
        assert beat.lower() in last.script.narration.lower(), (beat, last.script.narration)
        assert last.script.narration.endswith("The end.")
        assert "choice is made" not in last.script.narration.lower()


def test_an_ending_chosen_by_the_poll_closes_the_story_without_a_cliffhanger() -> None:
    context = StoryContext("Salt", PREMISES[0], "", "en", STORIES[0][3].request.context.previous)
    for seed in range(10):
        script = TemplateWriter().write(
            WriteRequest(context, 4, "The story comes to its end", seed=seed, is_final=True)
        )
        assert script.narration.endswith("The end.") and script.options == ()
        assert not any(c in script.narration for c in bank.CLIFFHANGERS)


@pytest.mark.parametrize(
    ("text", "fact"),
    [
        ("Captain Ilse Varga dies in the dark", "Varga is dead"),
        ("Lind is killed in the airlock", "Mara is dead"),  # the options call her Mara
        ("Quill vanishes on night watch", "Quill is missing"),
        ("Trade the compass for passage", "the compass is gone"),
        ("A dust storm uncovers a buried ship", "the ship has been found"),
        ("Sable was never human", "Sable is not human"),
        ("The signal repeats, closer", ""),
    ],
)
def test_beats_become_facts(text: str, fact: str) -> None:
    assert [f.text for f in facts_in([text])] == ([fact] if fact else [])


def test_two_ideas_in_one_episode_never_share_a_frame() -> None:
    ideas = (Idea("a cat is hiding in the vents"), Idea("the coolant has turned to syrup"))
    context = StoryContext("Salt", PREMISES[0], "", "en", STORIES[0][2].request.context.previous)
    for seed in range(30):
        request = WriteRequest(context, 3, "Trust the android", ideas, seed=seed, target_seconds=40)
        narration = TemplateWriter().write(request).narration
        frames = [narration[: narration.index(i.text)].rsplit(".", 1)[-1] for i in ideas]
        assert frames[0].strip() != frames[1].strip(), narration
