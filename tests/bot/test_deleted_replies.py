"""A reply its author deleted stops counting and is never credited (judged on the server)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import App
from bot.ideas.harvest import DELETED
from bot.platforms.mastodon.adapter import MastodonPlatform
from story_state.db import session_scope
from story_state.lifecycle import EpisodeState
from story_state.models import Credit, Episode, Post, Suggestion
from tests.bot.conftest import Clock
from tests.bot.mastodon_fixtures import MockMastodon


@pytest.fixture
def mock(tmp_path: Path) -> Iterator[MockMastodon]:
    with MockMastodon(tmp_path) as server:
        yield server


def test_a_deleted_reply_stops_counting_and_is_not_credited(
    sqlite_url: str, make_app: Callable[..., App], clock: Clock, mock: MockMastodon
) -> None:
    platform = MastodonPlatform(mock.base_url, "alice_token")
    app = make_app(sqlite_url, platforms={"mastodon": platform})
    for _ in range(6):
        app.runner.tick()
    with session_scope(app.factory) as session:
        episode = session.scalars(select(Episode)).one()
        assert episode.state is EpisodeState.POLLING
        poll_id = session.scalars(select(Post.remote_id).where(Post.kind == "poll")).one()
    bob = mock.client("bob").status_post(
        "@alice the miners rebel and take the reactor", in_reply_to_id=poll_id
    )
    mock.client("carol").status_post("@alice a storm buries the ship", in_reply_to_id=poll_id)
    app.runner.tick()  # harvested while the round is open
    with session_scope(app.factory) as session:
        assert [s.accepted for s in session.scalars(select(Suggestion))] == [True, True]

    mock.client("bob").status_delete(bob["id"])  # bob changes his mind
    app.runner.close_round_now()
    with session_scope(app.factory) as session:
        rows = {s.text: s for s in session.scalars(select(Suggestion))}
        gone = rows["the miners rebel and take the reactor"]
        assert (gone.accepted, gone.reject_reason) == (False, DELETED)
        names = {c.contributor.display_name for c in session.scalars(select(Credit))}
        assert not any("bob" in n.lower() for n in names), names
