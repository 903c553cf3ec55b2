"""The poll's community option is the idea the most people asked for (issue 14).

Eight people asking for one idea in eight phrasings must be offered it in the next poll, in
its most representative wording, ahead of single-person ideas with many likes and whether
or not the idea was also woven into the episode as a rumour.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from sqlalchemy import select

from bot.app import App
from bot.platforms.local import LocalAction
from story_state.db import session_scope
from story_state.engine import (
    COMMUNITY_MAX_CHARS,
    Cluster,
    SuggestionIn,
    build_options,
    cluster_suggestions,
    community_label,
)
from story_state.lifecycle import EpisodeState
from story_state.models import Contributor, Episode, PollOption

MakeApp = Callable[..., App]

IDEA = "The miners rebel"  # the most representative of the eight phrasings below
PHRASINGS = [
    IDEA,
    "the miners should rebel!!",
    "Miners rebel against the company",
    "a miners' rebellion, please",
    "The mining crew rebels",
    "Rebellion of the miners now",
    "miners start a rebellion",
    "the miners rise up and rebel",
]
SINGLES = {  # one person each, liked a lot
    "A stowaway is found in the cargo hold": 120,
    "The radio picks up a voice from the salt": 30,
    "A second sun rises over the flats": 20,
}
WRITER = ["Open the hatch", "The signal repeats, closer", "Mutiny in the mess hall"]


def ideas() -> list[SuggestionIn]:
    many = [
        SuggestionIn(n + 1, f"fan{n}", text, platform="mastodon")
        for n, text in enumerate(PHRASINGS)
    ]
    few = [
        SuggestionIn(100 + n, f"solo{n}", text, likes=likes, platform="mastodon")
        for n, (text, likes) in enumerate(SINGLES.items())
    ]
    return few + many  # the liked ones first: order must not decide


def test_most_people_rank_first_and_become_the_community_option() -> None:
    clusters = cluster_suggestions(ideas(), random.Random(3))
    top = clusters[0]
    assert len(top.authors) == 8 and top.key == IDEA, clusters[:2]
    # Likes still order ideas backed by as many people.
    assert [c.key for c in clusters[1:]] == list(SINGLES)
    specs = build_options(WRITER, clusters, max_options=4, max_chars=50)
    community = [s for s in specs if s.source == "community"]
    assert [(s.label, s.beat, len(s.authors)) for s in community] == [(IDEA, IDEA, 8)]
    assert [s.source for s in specs] == ["writer", "writer", "writer", "community"]


def test_the_community_option_is_picked_by_people_whatever_the_order() -> None:
    liked = Cluster("A stowaway is found in the cargo hold", (100,), ("solo0",), 9.0, "")
    asked = Cluster(IDEA, tuple(range(1, 9)), tuple(f"fan{n}" for n in range(8)), 8.0, "")
    for clusters in ([liked, asked], [asked, liked]):
        specs = build_options(WRITER, clusters, max_options=3, max_chars=50)
        assert [s.beat for s in specs if s.source == "community"] == [IDEA]
    # The beat being told now is not offered again; the next idea is.
    specs = build_options(WRITER, [asked, liked], max_options=3, max_chars=50, current_beat=IDEA)
    assert [s.beat for s in specs if s.source == "community"] == [liked.key]


def test_a_writer_beat_reading_the_same_gives_way_to_the_community_option() -> None:
    asked = Cluster(IDEA, (1, 2), ("fan0", "fan1"), 2.0, "")
    specs = build_options([IDEA.lower(), *WRITER], [asked], max_options=3, max_chars=50)
    assert [(s.label, s.source) for s in specs] == [
        ("Open the hatch", "writer"),
        ("The signal repeats, closer", "writer"),
        (IDEA, "community"),
    ]


def test_community_labels_keep_their_words_and_fit() -> None:
    long = (
        "The mining crew of the salt flats rises up against the company that owns "
        "their air, and takes the reactor"
    )
    for limit in (100, 50, 25, 8):
        label = community_label(long, limit)
        assert len(label) <= min(COMMUNITY_MAX_CHARS, limit), (limit, label)
        kept = label.removesuffix("…").split()
        assert kept == long.split()[: len(kept)], label  # its words, in order, none dropped
        assert label.endswith("…")
    assert community_label("The miners rebel.", 50) == IDEA
    assert community_label("Supercalifragilisticexpialidocious", 10) == "Supercali…"


def test_eight_phrasings_reach_the_next_poll_not_only_a_rumour(
    sqlite_url: str, make_app: MakeApp
) -> None:
    app = make_app(sqlite_url)
    local = app.local
    assert local is not None
    app.runner.tick()  # episode 1 and its poll
    for n, text in enumerate(PHRASINGS):
        local.act(LocalAction(f"fan{n}", reply=text))
    for n, (text, likes) in enumerate(SINGLES.items()):
        reply_id = local.act(LocalAction(f"solo{n}", reply=text)).split()[1]
        for liker in range(likes):
            local.act(LocalAction(f"liker{liker}", like=reply_id))
    app.runner.close_round_now()
    app.runner.tick()  # episode 2 written, rendered and its poll opened
    with session_scope(app.factory) as session:
        second = session.scalars(select(Episode).where(Episode.number == 2)).one()
        assert second.state is EpisodeState.POLLING and second.round is not None
        assert IDEA in [i["text"] for i in second.ideas]  # woven in as a rumour, too
        options = session.scalars(
            select(PollOption)
            .where(PollOption.round_id == second.round.id)
            .order_by(PollOption.position)
        ).all()
        community = [o for o in options if o.source == "community"]
        assert [(o.label, o.beat) for o in community] == [(IDEA, IDEA)], [
            (o.label, o.source) for o in options
        ]
        people = {
            c.handle
            for c in session.scalars(
                select(Contributor).where(Contributor.id.in_(community[0].contributor_ids))
            )
        }
        assert people == {f"fan{n}" for n in range(8)}
