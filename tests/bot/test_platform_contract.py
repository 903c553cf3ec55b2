"""The Platform port's contract, run against every implementation: local, Mastodon, Bluesky, X.

Each implementation talks to a real server on loopback (the story database, mastodon-mock, a
real Takahe, the reference AT Protocol PDS and AppView, a scripted X checked against X's OpenAPI
spec). What an implementation cannot do
is stated by its harness (``reads``, ``finds_earlier_posts``, each with a reason) and the test
then checks the documented fallback instead of skipping.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.platforms.base import Media, OutgoingPost, Poll, PostRef
from bot.platforms.mastodon.text import html_to_text
from story_state import migrate
from story_state.db import make_engine, session_factory
from story_state.errors import PermanentError
from tests.bot.mastodon_fixtures import MockMastodon
from tests.bot.platform_harness import (
    BlueskyHarness,
    Harness,
    LocalHarness,
    MastodonHarness,
    TakaheHarness,
    XHarness,
    XWorld,
    episode_files,
)
from tests.bot.x_fixtures import FakeX

CAPTION = "Episode 1: The derelict. The miners find a ship half buried in the salt flats."
OPTIONS = ("The miners rebel", "They flee", "They hide")


@pytest.fixture(params=["local", "mastodon", "takahe", "bluesky", "x", "x-post-only"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    kind: str = request.param
    if kind == "local":
        url = f"sqlite:///{tmp_path / 'storybot.db'}"
        migrate.upgrade(url)
        engine = make_engine(url)
        factory = session_factory(engine)
        yield LocalHarness(factory)
        engine.dispose()
    elif kind == "mastodon":
        with MockMastodon(tmp_path) as mock:
            yield MastodonHarness(mock)
    elif kind == "takahe":
        yield TakaheHarness(request.getfixturevalue("takahe"))
    elif kind == "bluesky":
        blue = BlueskyHarness(request.getfixturevalue("bluesky"), tmp_path / "bluesky.session")
        yield blue
        blue.close()
    else:
        fake = FakeX()
        try:
            yield XHarness(XWorld(fake), post_only=kind == "x-post-only")
        finally:
            fake.close()
        assert not fake.unexpected, f"requests X was not scripted for: {fake.unexpected}"


def clip_post(tmp_path: Path, name: str) -> OutgoingPost:
    clip = episode_files(tmp_path / "episode-001")
    media = Media(clip, "Narrated still image. Narration: the miners dig.")
    return OutgoingPost(f"salt:1:clip:{name}", CAPTION, media=(media,))


def poll_post(name: str, clip: PostRef) -> OutgoingPost:
    closes = datetime.now(UTC) + timedelta(hours=1)
    return OutgoingPost(
        f"salt:1:poll:{name}",
        "What happens next?",
        in_reply_to=clip.remote_id,
        poll=Poll(OPTIONS, closes),
    )


def thread(h: Harness, tmp_path: Path) -> tuple[PostRef, PostRef]:
    clip = h.platform.publish(clip_post(tmp_path, h.name))
    return clip, h.platform.publish(poll_post(h.name, clip))


def plain(text: str) -> str:
    return (html_to_text(text) if "<" in text else text).strip()


# -- the contract ------------------------------------------------------------------------------


def test_limits_are_sane(harness: Harness) -> None:
    limits = harness.platform.limits()
    assert limits.max_poll_options >= len(OPTIONS) >= 2
    assert limits.max_option_chars >= max(map(len, OPTIONS))
    assert limits.max_post_chars >= len(CAPTION)
    assert 1 <= limits.min_poll_minutes <= 60 <= limits.max_poll_minutes
    assert limits.can_read is harness.reads, harness.reads_reason


def test_clip_then_poll_in_reply(harness: Harness, tmp_path: Path) -> None:
    clip, poll = thread(harness, tmp_path)
    for ref in (clip, poll):
        assert ref.platform == harness.name == harness.platform.name
        assert ref.remote_id
    assert clip.remote_id != poll.remote_id
    assert harness.parent_of(poll) == clip.remote_id
    assert harness.parent_of(clip) is None
    assert harness.bot_posts() == 2 + harness.posts_per_option * len(OPTIONS)


def test_publish_is_idempotent(harness: Harness, tmp_path: Path) -> None:
    clip, poll = thread(harness, tmp_path)
    assert harness.platform.publish(clip_post(tmp_path, harness.name)) == clip
    assert harness.platform.publish(poll_post(harness.name, clip)) == poll
    assert harness.bot_posts() == 2 + harness.posts_per_option * len(OPTIONS)

    restarted = harness.restarted()
    if harness.finds_earlier_posts:
        assert restarted.publish(clip_post(tmp_path, harness.name)) == clip
        assert restarted.publish(poll_post(harness.name, clip)) == poll
    else:
        # The documented fallback: refuse loudly and let the outbox hold the post.
        with pytest.raises(PermanentError, match="duplicate content"):
            restarted.publish(clip_post(tmp_path, harness.name))
    assert harness.bot_posts() == 2 + harness.posts_per_option * len(OPTIONS), harness.finds_reason


def test_replies_from_followers_only(harness: Harness, tmp_path: Path) -> None:
    clip, poll = thread(harness, tmp_path)
    idea = harness.reply_as("bob", poll, "The miners rebel against the company")
    other = harness.reply_as("carol", clip, "They flee into the dunes")
    nested = harness.reply_as("carol", idea, "Agreed, rebellion!")  # a reply to a reply
    harness.like("carol", idea)
    thanks = harness.platform.publish(
        OutgoingPost("salt:1:thanks", "Thanks for all the ideas, crew!", in_reply_to=poll.remote_id)
    )

    replies = harness.platform.fetch_replies((clip, poll))

    if not harness.reads:
        assert replies == [], harness.reads_reason
        return
    by_id = {r.remote_id: r for r in replies}
    assert set(by_id) == {idea.remote_id, other.remote_id}
    assert thanks.remote_id not in by_id and nested.remote_id not in by_id
    first, second = by_id[idea.remote_id], by_id[other.remote_id]
    assert (first.in_reply_to, second.in_reply_to) == (poll.remote_id, clip.remote_id)
    assert first.author_handle.split("@")[0] == harness.handle("bob")
    assert second.author_handle.split("@")[0] == harness.handle("carol")
    assert plain(first.text).endswith("The miners rebel against the company")
    assert (first.likes, second.likes) == (1, 0)
    assert all(r.platform == harness.name and r.posted_at.tzinfo is not None for r in replies)
    assert harness.platform.fetch_replies((PostRef("elsewhere", clip.remote_id),)) == []


def test_tally_counts_votes_in_option_order(harness: Harness, tmp_path: Path) -> None:
    _, poll = thread(harness, tmp_path)
    harness.vote_as("bob", poll, 2)
    harness.vote_as("carol", poll, 2)
    if not harness.reads:
        with pytest.raises(PermanentError, match="post-only"):
            harness.platform.fetch_tally(poll)
        return
    tally = harness.platform.fetch_tally(poll)
    assert (tally.platform, tally.counts, tally.voters, tally.closed) == (
        harness.name,
        (0, 2, 0),
        2,
        False,
    )
    assert harness.restarted().fetch_tally(poll).counts == (0, 2, 0)


def test_tally_of_a_post_without_poll(harness: Harness, tmp_path: Path) -> None:
    clip = harness.platform.publish(clip_post(tmp_path, harness.name))
    with pytest.raises(PermanentError):
        harness.platform.fetch_tally(clip)


def test_a_deleted_post_does_not_hide_the_other_replies(harness: Harness, tmp_path: Path) -> None:
    clip, poll = thread(harness, tmp_path)
    idea = harness.reply_as("bob", clip, "Open the hatch")
    orphan = harness.reply_as("carol", poll, "Bury it again")
    harness.delete(poll)
    replies = harness.platform.fetch_replies((clip, poll))
    if harness.reads:
        # Whether a reply to the deleted post still counts differs (mentions and search still
        # find it on Mastodon and X; the sandbox unlinks it): only the others are promised.
        ids = [r.remote_id for r in replies]
        assert ids[0] == idea.remote_id and set(ids) <= {idea.remote_id, orphan.remote_id}
    else:
        assert replies == [], harness.reads_reason
    # A fresh adapter: the Mastodon one that made the poll reads it by its cached poll id,
    # which mastodon-mock still serves after the status is gone.
    with pytest.raises(PermanentError):
        harness.restarted().fetch_tally(poll)
